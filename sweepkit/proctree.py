"""A run's processes, found and ended together (Linux `/proc`; elsewhere only the run itself).

A run is started in a process group of its own, so its children (a data
loader's workers, a `subprocess`, a `sleep`) share it. A child that leaves the
group (`setsid`, a daemon) still carries the run's environment: every run gets
a token in ``SWEEPKIT_RUN``, and any process whose environment holds it
belongs to the run, as Jenkins' ProcessTreeKiller finds a build's strays by
its ``BUILD_ID``. (A process forked without exec keeps its parent's original
environment block in `/proc`; those are found by their group, or not at all
if they left it: the one gap, said in docs/fault-tolerance.md.)
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import signal
import time
from collections.abc import Iterable

TOKEN_VARIABLE = "SWEEPKIT_RUN"
PROC = "/proc"
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with_parent() -> None:
    """Linux: have the kernel send this process SIGTERM when its parent dies.

    Called in a child before it runs (`preexec_fn`, or first thing after the
    fork): a run must not outlive its agent (else it trains on, unrecorded,
    while its config is retried elsewhere), nor a worker its launcher.
    """
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return  # not Linux: crash recovery still works, an orphan just finishes unrecorded
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def new_token(run_id: str) -> str:
    """A value for ``SWEEPKIT_RUN`` that no other run on this machine has."""
    return f"{run_id}.{secrets.token_hex(6)}"


def members(pgid: int, token: str, *, proc: str = PROC) -> set[int]:
    """Live processes of the run: in its process group, or carrying its token.

    >>> members(2**22 + 12345, "no-such-run", proc="/nonexistent")
    set()
    """
    return _scan(pgid, TOKEN_VARIABLE, token, proc)


def carrying(variable: str, value: str) -> set[int]:
    """Live processes whose environment (as they were started) sets `variable` to `value`."""
    return _scan(None, variable, value, PROC)


def _scan(pgid: int | None, variable: str, value: str, proc: str) -> set[int]:
    needle = f"{variable}={value}".encode()
    found = set()
    me = os.getpid()
    try:
        entries = os.listdir(proc)
    except OSError:
        return found
    for entry in entries:
        if not entry.isdigit() or int(entry) == me:
            continue
        pid = int(entry)
        try:
            with open(f"{proc}/{entry}/stat", "rb") as file:
                # pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses
                fields = file.read().rsplit(b")", 1)[1].split()
            if fields[0] == b"Z":  # a zombie has ended; its parent will reap it
                continue
            if int(fields[2]) == pgid:
                found.add(pid)
                continue
            with open(f"{proc}/{entry}/environ", "rb") as file:
                if needle in file.read().split(b"\0"):
                    found.add(pid)
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile, or not ours to read
    return found


def signal_all(pids: Iterable[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)


def end_tree(pgid: int, token: str, grace_s: float, *, term_first: bool = True) -> set[int]:
    """End every process of the run: SIGTERM, then SIGKILL what is left after `grace_s`.

    Returns:
        The processes that were there to end.
    """
    alive = members(pgid, token)
    ended = set(alive)
    if term_first and alive:
        signal_all(alive, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while alive and time.monotonic() < deadline:
            time.sleep(0.05)
            alive = members(pgid, token)
    for _ in range(50):  # a process may start another as it dies: sweep until none is left
        if not alive:
            break
        signal_all(alive, signal.SIGKILL)
        ended |= alive
        time.sleep(0.02)
        alive = members(pgid, token)
    return ended
