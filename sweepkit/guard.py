"""The agent's guard: a small process that ends the agent's runs if the agent dies.

The kernel's death signal (`PR_SET_PDEATHSIG`) tells a run that its agent is
gone, but a run may ignore SIGTERM or swallow the KeyboardInterrupt it
becomes, and its own children never hear it. So each agent starts this guard
(stdlib only: it starts in milliseconds) in a session of its own, and tells it
through a pipe which runs are going. When the pipe closes without the agent
having said the runs ended (the agent was SIGKILLed, or crashed), the guard
ends every process of those runs (`sweepkit.proctree`): SIGTERM, then SIGKILL
after a grace. Its only state is the pipe: nothing to clean up.

Protocol, one line each: ``watch PGID TOKEN`` and ``forget TOKEN``.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from typing import IO

from sweepkit import proctree

GRACE_S = 10.0  # time a run has, after its agent died, to finish its wandb run


class Guard:
    """The agent's side: start the guard, tell it about runs. A context manager."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Guard:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "sweepkit.guard"],
            stdin=subprocess.PIPE,
            # It says nothing, and must not hold the agent's output open (`agent | tee`).
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # the terminal's Ctrl-C and hang-up are not for it
        )
        return self

    def _say(self, line: str) -> None:
        assert self._process is not None and self._process.stdin is not None
        with contextlib.suppress(BrokenPipeError):  # a guard killed by hand: runs still end
            self._process.stdin.write(f"{line}\n".encode())
            self._process.stdin.flush()

    def fileno(self) -> int:
        """The agent's end of the pipe (a child forked from the agent must close it)."""
        assert self._process is not None and self._process.stdin is not None
        return self._process.stdin.fileno()

    def watch(self, pgid: int, token: str) -> None:
        self._say(f"watch {pgid} {token}")

    def forget(self, token: str) -> None:
        self._say(f"forget {token}")

    def __exit__(self, *exc: object) -> None:
        assert self._process is not None and self._process.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self._process.stdin.close()  # with nothing watched, the guard just exits
        self._process.wait()


def serve(commands: IO[str], grace_s: float = GRACE_S) -> None:
    """Read commands until the pipe closes, then end the runs still watched."""
    watched: dict[str, int] = {}
    for line in commands:
        verb, *args = line.split()
        if verb == "watch":
            watched[args[1]] = int(args[0])
        elif verb == "forget":
            watched.pop(args[0], None)
    if not watched:
        return
    # Each run got SIGTERM from the kernel already (its agent died); now every process of it.
    for token, pgid in watched.items():
        proctree.signal_all(proctree.members(pgid, token), signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(proctree.members(p, t) for t, p in watched.items()):
        time.sleep(0.1)
    for token, pgid in watched.items():
        proctree.end_tree(pgid, token, 0.0, term_first=False)


if __name__ == "__main__":
    serve(sys.stdin)
