"""What an agent shows while it works.

On a terminal, the agent's lines and its runs' output scroll, and the last
line(s) stay put, redrawn with the sweep's progress: runs finished of the
grid (or `run_cap`), failed, running, the best metric so far, this agent's
runs of its `--count`, and with workers one line per worker. Anywhere else (a
log file, CI, `nohup`) nothing is redrawn and the lines are printed as they
come.

Run output reaches the agent through files (`OutputTail`), never pipes: a
run or worker whose reader died must not block or get SIGPIPE, and the file
stays for `sweepkit status ID --run RUN`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.text import Text

from sweepkit.core.records import SweepInfo

FAILED_STATES = ("failed", "crashed")


class OutputTail:
    """The complete lines another process has added to a file since the last call.

    Reads only the bytes added, so its cost follows what is written, not the
    file's size. A line rewritten with carriage returns (a progress bar) is
    shown as a terminal would show it: its last version.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._offset = 0
        self._partial = b""

    def lines(self) -> list[str]:
        try:
            with self.path.open("rb") as file:
                file.seek(self._offset)
                data = file.read()
        except FileNotFoundError:
            return []
        self._offset += len(data)
        *complete, self._partial = (self._partial + data).split(b"\n")
        return [_as_shown(line) for line in complete]

    def rest(self) -> list[str]:
        """Every line left, the last one even without its newline (the writer has ended)."""
        lines = self.lines()
        if self._partial.strip():
            lines.append(_as_shown(self._partial))
        self._partial = b""
        return lines


def _as_shown(line: bytes) -> str:
    return line.decode(errors="replace").rstrip("\r").rsplit("\r", 1)[-1]


def sweep_line(info: SweepInfo, total: int | None) -> str:
    """The sweep's progress: finished of `total`, failed, running, best metric so far.

    >>> from sweepkit.core.records import RunRecord
    >>> runs = [RunRecord("a", "finished", {}, 0.9, 1.0), RunRecord("b", "failed", {}, None, 1.0)]
    >>> sweep_line(SweepInfo("local-x", "local", {"metric": {"name": "acc", "goal": "maximize"}},
    ...                      "running", runs, name="demo"), total=4)
    'demo (local-x): 1/4 finished, 1 failed, 0 running, best acc 0.9'
    """
    counts = info.counts()
    finished = counts.get("finished", 0)
    parts = [
        f"{finished}/{total} finished" if total else f"{finished} finished",
        f"{sum(counts.get(s, 0) for s in FAILED_STATES)} failed",
        f"{counts.get('running', 0)} running",
    ]
    best = info.best()
    if best is not None:
        parts.append(f"best {info.metric_name} {best.metric:.4g}")
    return f"{info.label}: {', '.join(parts)}"


def worker_line(info: SweepInfo, label: str) -> str:
    """One worker's share of the sweep: its runs by state, and the run it has going."""
    mine = [r for r in info.runs if r.agent == label]
    ended = [r for r in mine if r.state != "running"]
    failed = sum(r.state in FAILED_STATES for r in mine)
    running = [r.name or r.id for r in mine if r.state == "running"]
    doing = f", running {running[-1]}" if running else ""
    return f"  {label}: {len(ended)} run(s) ended, {failed} failed{doing}"


def sweep_total(config: dict[str, Any]) -> int | None:
    """How many runs the sweep will have: its grid size and/or run_cap; None if open-ended."""
    from sweepkit.config import summarize

    limits = [config.get("run_cap")]
    if config.get("method") == "grid":  # a validated config: the engine can read it
        limits.append(summarize(config).grid_size)
    known = [n for n in limits if isinstance(n, int) and n > 0]
    return min(known) if known else None


class LiveLines:
    """A few lines kept at the bottom of a terminal while everything else scrolls above.

    Off the terminal, `update` does nothing and printing is plain. While on,
    this process's stdout and stderr are routed above the lines by rich.
    """

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._live: Live | None = None

    def __enter__(self) -> LiveLines:
        if self.enabled:
            self._live = Live(
                Text(""), console=Console(stderr=True), auto_refresh=False, transient=True,
                redirect_stdout=True, redirect_stderr=True,
            )  # fmt: skip
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None

    def update(self, lines: list[str]) -> None:
        if self._live is not None:
            self._live.update(
                Text("\n".join(lines), no_wrap=True, overflow="ellipsis"), refresh=True
            )

    @staticmethod
    def echo(lines: list[str]) -> None:
        """Print relayed output lines (above the live lines, when they are on)."""
        for line in lines:
            print(line, file=sys.stderr, flush=True)
