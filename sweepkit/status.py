"""`sweepkit status`: a sweep's runs as a table (rich) or as JSON."""

from __future__ import annotations

import dataclasses
import json

from rich.console import Console
from rich.table import Table

from sweepkit.backends.base import SweepInfo


def status_json(info: SweepInfo) -> str:
    best = info.best()
    return json.dumps(
        {
            "id": info.id,
            "backend": info.backend,
            "state": info.state,
            "method": info.config.get("method"),
            "metric": info.config.get("metric"),
            "counts": info.counts(),
            "best": dataclasses.asdict(best) if best else None,
            "runs": [dataclasses.asdict(r) for r in info.runs],
        },
        indent=2,
    )


def render_status(info: SweepInfo, console: Console | None = None) -> None:
    console = console or Console()
    metric = info.metric_name
    params = sorted({k for r in info.runs for k in r.config})
    table = Table(title=f"{info.id} ({info.backend}, {info.config.get('method')}, {info.state})")
    for column in ("run", "state", *params, metric or "metric", "runtime"):
        table.add_column(column, justify="right" if column not in ("run", "state") else "left")
    best = info.best()
    for run in info.runs:
        value = "" if run.metric is None else f"{run.metric:.4g}"
        runtime = "" if run.runtime is None else f"{run.runtime:.1f}s"
        style = "bold green" if best is not None and run.id == best.id else None
        table.add_row(
            run.id,
            run.state,
            *(_short(run.config.get(p)) for p in params),
            value,
            runtime,
            style=style,
        )
    console.print(table)
    counts = (
        ", ".join(f"{n} {state}" for state, n in sorted(info.counts().items())) or "no runs yet"
    )
    console.print(f"runs: {counts}")
    if best is not None:
        goal = "max" if info.maximize else "min"
        settings = ", ".join(f"{k}={_short(v)}" for k, v in best.config.items())
        console.print(f"best ({goal} {metric}): {best.id} {metric}={best.metric:.4g}  {settings}")


def _short(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
