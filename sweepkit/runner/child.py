"""Inside a function run's own process: become the run, call the function, end as W&B's
function agent ends a run.

A forked run first sets its SIGTERM handler (a stop while it sets up is quiet), then takes
its own process group (the terminal's Ctrl-C is its agent's to decide), its log as stdout
and stderr, the run's environment, and forgets the store. A stop (hyperband, Ctrl-C twice,
preemption) arrives as SIGTERM and raises `RunStopped` where the function is, so that its
`with wandb.init()` and `finally:` run; it prints as one line naming what stopped it (the
reason its agent left in the run's folder), not as a traceback.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import wandb

from sweepkit import proctree
from sweepkit.backends.store import redacted
from sweepkit.runner.target import resolve_function
from sweepkit.runner.workspace import STOP_FILE

STOPPED_BY_SIGTERM = 128 + signal.SIGTERM  # a function run's exit code when SIGTERM stopped it


def run_function_child(
    function: str | Callable[[], Any],
    env: dict[str, str],
    error_file: str,
    log_file: str,
    agent_fds: tuple[int, ...],
) -> None:
    """In the child: become the run's environment, call the function, report a failure."""
    # First: a stop that comes while the child is still setting up ends it quietly (its
    # agent says why), not with a traceback of this set-up.
    signal.signal(signal.SIGTERM, _raise_stopped)
    global _stop_file
    _stop_file = Path(error_file).with_name(STOP_FILE)
    try:
        _become_the_run(env, log_file, agent_fds)
    except RunStopped:
        sys.exit(STOPPED_BY_SIGTERM)
    sys.exit(call_function(function, error_file, log_file))


def _become_the_run(env: dict[str, str], log_file: str, agent_fds: tuple[int, ...]) -> None:
    for fd in agent_fds:  # the guard must see its pipe close when the agent dies, whatever we do
        os.close(fd)
    # Its own process group: a Ctrl-C in the terminal reaches the agent, which decides
    # whether the run finishes (first Ctrl-C) or is stopped (second).
    os.setpgrp()
    proctree.die_with_parent()
    fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    # A child forked from a script has the script's streams (rich's, under the live lines).
    sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
    for stream in (sys.stdout, sys.stderr):  # a line reaches the file (and the agent) at once
        stream.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    os.environ.update(env)
    _hide_the_store()
    # Our stop (hyperband, Ctrl-C twice) arrives as SIGTERM and raises RunStopped (above), so
    # that the function's `with wandb.init()` / try-finally blocks finish the wandb run on the
    # way out. The agent's own handlers, which a child forked from a script inherits, are not
    # the run's; a fork server's child has SIGINT ignored (`_start_fork_server`).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    _stops_print_one_line()


def _hide_the_store() -> None:
    """A run needs no store: its process forgets the agent's SWEEPKIT_STORE, and the agent's
    command line, which a forked run inherits as its sys.argv and wandb records with the run
    (uploaded by `wandb sync`), names it without its password."""
    os.environ.pop("SWEEPKIT_STORE", None)
    sys.argv = [redacted(arg) for arg in sys.argv]


def call_function(function: str | Callable[[], Any], error_file: str, log_file: str | None) -> int:
    """Call the run's function as W&B's function agent does; 0 if it ended well, else 1 with
    its traceback in `error_file` and in the run's output (unless that already ends with it).
    A run its agent stopped (RunStopped) exits 143 and says why in one line."""
    try:
        try:
            (resolve_function(function) if isinstance(function, str) else function)()
        except SystemExit as exc:
            if exc.code not in (None, 0):  # sys.exit(0) is a function that is done
                raise
        if wandb.run is not None:  # as W&B's function agent: finish the run the function left open
            wandb.finish()
        return 0
    except BaseException as exc:
        said = exc.line if isinstance(exc, RunStopped) else traceback.format_exc()
        Path(error_file).write_text(said)
        if log_file is None or not _ends_with(log_file, said.strip().splitlines()[-1]):
            sys.stderr.write(said if said.endswith("\n") else f"{said}\n")
        if wandb.run is not None:  # its exit record tells the agent the run is over
            with contextlib.suppress(Exception):
                wandb.finish(exit_code=1)
        return STOPPED_BY_SIGTERM if isinstance(exc, RunStopped) else 1


def _ends_with(log_file: str, line: str) -> bool:
    """Whether the run's output already ends with this line (an exception's last line, which
    `with wandb.init()` prints on the way out): once is enough."""
    with open(log_file, "rb") as file:
        file.seek(max(0, file.seek(0, os.SEEK_END) - 4096))
        lines = file.read().decode(errors="replace").strip().splitlines()
    return bool(lines) and lines[-1] == line.strip()


class RunStopped(KeyboardInterrupt):
    """SIGTERM in a function run: its agent's stop (the reason in its scratch folder's
    STOP_FILE), or a scheduler's (Slurm signals every process of a task). A
    KeyboardInterrupt, so that the user's code treats it as Ctrl-C; said in one line, as
    a stop on purpose is no crash."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.line = f"sweepkit: {reason}"


_stop_file: Path | None = None  # the run's STOP_FILE, in a run's own process
OUTSIDE_STOP = "stopped by SIGTERM from outside its agent (a scheduler, scancel or kill)"


def _raise_stopped(signum: int, frame: Any) -> None:
    try:
        reason = _stop_file.read_text().strip() if _stop_file is not None else ""
    except OSError:
        reason = ""
    raise RunStopped(reason or OUTSIDE_STOP)


def _stops_print_one_line() -> None:
    """In a run's own process: wandb's `with wandb.init()` prints the traceback of whatever
    ends the block, which for our stop reads like a crash in the user's code; a stop prints
    its one line instead (through `traceback`, whoever prints it)."""
    if getattr(traceback.print_exception, "sweepkit_stop_aware", False):
        return
    print_exception = traceback.print_exception

    def print_stop_in_one_line(exc: Any, /, *args: Any, **kwargs: Any) -> None:
        value = args[0] if args else kwargs.get("value", exc)
        if isinstance(value, RunStopped):
            file = kwargs.get("file") or (args[3] if len(args) > 3 else None) or sys.stderr
            print(value.line, file=file)
            return
        print_exception(exc, *args, **kwargs)

    print_stop_in_one_line.sweepkit_stop_aware = True  # type: ignore[attr-defined]
    traceback.print_exception = print_stop_in_one_line  # type: ignore[assignment]
