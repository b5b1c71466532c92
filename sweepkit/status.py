"""`sweepkit status`: a sweep's runs, one run in full, or every sweep of the store.

Each view is a rich renderable built from a `SweepInfo`, printed once, or
redrawn in place with `--watch` (the offline answer to W&B's sweep page).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from typing import TypeVar

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from sweepkit.core.records import RunRecord, SweepInfo
from sweepkit.errors import SweepkitError

ACTIVE_STATES = ("running", "paused", "pending")  # a watched sweep in these may still change
T = TypeVar("T")
ERROR_WIDTH = 60  # characters of a failed run's last error line shown in the table


def status_json(info: SweepInfo) -> str:
    """The sweep, its best run and every run (errors in full) as JSON."""
    best = info.best()
    return json.dumps(
        {
            "id": info.id,
            "name": info.name,
            "backend": info.backend,
            "state": info.state,
            "method": info.config.get("method"),
            "metric": info.config.get("metric"),
            "counts": info.counts(),
            "unfinished": info.unfinished(),
            "best": dataclasses.asdict(best) if best else None,
            "runs": [dataclasses.asdict(r) for r in info.runs],
        },
        indent=2,
    )


def sweep_view(info: SweepInfo) -> RenderableType:
    """The runs table (state, parameters, metric, runtime, last error line), counts, best run."""
    metric = info.metric_name
    params = sorted({k for r in info.runs for k in r.config})
    show_errors = any(r.error for r in info.runs)
    table = Table(title=f"{info.label} ({info.backend}, {info.config.get('method')}, {info.state})")
    columns = ("run", "name", "state", *params, metric or "metric", "runtime")
    for column in columns:
        table.add_column(column, justify="left" if column in ("run", "name", "state") else "right")
    if show_errors:
        table.add_column("error", justify="left", max_width=ERROR_WIDTH, no_wrap=True)
    best = info.best()
    for run in info.runs:
        cells = [
            run.id,
            run.name or "",
            run.state,
            *(_short(run.config.get(p)) for p in params),
            "" if run.metric is None else f"{run.metric:.4g}",
            "" if run.runtime is None else f"{run.runtime:.1f}s",
        ]
        if show_errors:
            cells.append(run.error_line)
        style = "bold green" if best is not None and run.id == best.id else None
        table.add_row(*cells, style=style)
    lines: list[RenderableType] = [table, Text(f"runs: {_counts(info)}")]
    if best is not None:
        goal = "max" if info.maximize else "min"
        settings = ", ".join(f"{k}={_short(v)}" for k, v in best.config.items())
        lines.append(
            Text(f"best ({goal} {metric}): {best.id} {metric}={best.metric:.4g}  {settings}")
        )
    if unfinished := info.unfinished():
        parts = ", ".join(f"{n} {state}" for state, n in sorted(unfinished.items()))
        lines.append(
            Text(f"points without a result: {parts}: sweepkit agent {info.id} --retry-failed")
        )
    if show_errors:
        lines.append(Text(f"a run's whole error: sweepkit status {info.id} --run RUN"))
    return Group(*lines)


def run_view(info: SweepInfo, run_ref: str) -> RenderableType:
    """One run in full: state, config, metric, error, folder and log file.

    Raises:
        SweepkitError: no run of the sweep has that id or name.
    """
    run = find_run(info, run_ref)
    table = Table(title=f"run {run.id} of {info.label}", show_header=False, box=None)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")  # paths in full, folded at the edge
    rows = [
        ("name", run.name or ""),
        ("state", run.state),
        *((f"config.{k}", _short(v)) for k, v in run.config.items()),
        (info.metric_name or "metric", "" if run.metric is None else f"{run.metric:.6g}"),
        ("runtime", "" if run.runtime is None else f"{run.runtime:.1f}s"),
        ("ran on", " ".join(filter(None, [run.host, run.agent and f"({run.agent})"]))),
        ("folder", run.location or "(none yet)"),
        ("log file", run.log_file or ""),
    ]
    for key, value in rows:
        table.add_row(key, Text(str(value)))
    parts: list[RenderableType] = [table]
    if run.error:
        parts += [Text("error:", style="bold"), Text(run.error.rstrip())]
    return Group(*parts)


def find_run(info: SweepInfo, run_ref: str) -> RunRecord:
    """The run whose id or readable name is `run_ref`."""
    for run in info.runs:
        if run_ref in (run.id, run.name):
            return run
    raise SweepkitError(
        f"sweep {info.id} has no run {run_ref!r}; `sweepkit status {info.id}` lists its runs"
    )


def sweep_list_view(infos: list[SweepInfo], store: str) -> RenderableType:
    """Every sweep of a store: id, name, method, state, runs by state, best metric."""
    if not infos:
        return Text(f"no sweeps in {store}; `sweepkit create FILE.yaml` makes one")
    table = Table(title=f"sweeps in {store}")
    for column in ("sweep", "name", "method", "state", "runs", "metric", "best"):
        table.add_column(column, justify="right" if column == "best" else "left")
    for info in infos:
        best = info.best()
        goal = "max" if info.maximize else "min"
        table.add_row(
            info.id,
            info.name or "",
            str(info.config.get("method", "")),
            info.state,
            _counts(info),
            f"{goal} {info.metric_name}" if info.metric_name else "",
            "" if best is None else f"{best.metric:.4g}",
        )
    return table


def show(
    fetch: Callable[[], T],
    render: Callable[[T], RenderableType],
    *,
    watch: float | None = None,
    active: Callable[[T], bool] = lambda _: False,
) -> None:
    """Print `render(fetch())` once; with `watch`, redraw it in place every `watch` seconds
    while `active` says it may still change (Ctrl-C leaves early)."""
    console = Console()
    data = fetch()
    if watch is None:
        console.print(render(data))
        return
    try:
        with Live(render(data), console=console, auto_refresh=False) as live:
            while active(data):
                time.sleep(watch)
                data = fetch()
                live.update(render(data), refresh=True)
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a watch of a sweep that never ends is left


def is_active(info: SweepInfo) -> bool:
    """The sweep may still hand out or finish runs."""
    return info.state in ACTIVE_STATES or any(r.state == "running" for r in info.runs)


def _counts(info: SweepInfo) -> str:
    return ", ".join(f"{n} {state}" for state, n in sorted(info.counts().items())) or "no runs yet"


def _short(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
