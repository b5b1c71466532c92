"""What the dashboard's pages show, as JSON: the sweeps of a store, one sweep's runs and
views (parallel coordinates, its metric run by run, parameter importance), and what one run
logged (its scalars, charts, tables and images, by key).

Everything is read, never written: the store through its reads (no write lock: a claim is
never kept waiting), a run's log through a `RunReader` kept per run, which reads only what
the run added since the last request. A store or a run folder that changes or vanishes
under the dashboard is an error for that request, said in the page, not the end of it.
"""

from __future__ import annotations

import math
import threading
import urllib.parse
from pathlib import Path
from typing import Any, Protocol

from sweepkit.backends.base import RunDetails
from sweepkit.core.records import RunRecord, SweepInfo
from sweepkit.views import sweep as views
from sweepkit.views.details import latest_of, table_version
from sweepkit.views.logged import RunReader


class Store(Protocol):
    """What the dashboard reads of a local store (`LocalBackend` is one): handed in by the
    CLI, so that the dashboard never imports what runs agents."""

    store_label: str

    def sweeps(self) -> list[SweepInfo]: ...

    def sweep(self, sweep_id: str) -> SweepInfo: ...

    def run_details(self, sweep_id: str, run_ids: list[str]) -> dict[str, RunDetails]: ...


def sweeps(backend: Store) -> list[dict[str, Any]]:
    """Every sweep of the store: what `sweepkit status` lists."""
    return [_sweep_line(info) for info in backend.sweeps()]


def sweep(info: SweepInfo) -> dict[str, Any]:
    """One sweep and its runs (what `sweepkit status ID` shows), the parallel coordinates of
    its runs and its metric run by run."""
    params = sorted({k for r in info.runs for k in r.config})
    return {
        **_sweep_line(info),
        "parameters": params,
        "runs": [_run_line(info, run) for run in info.runs],
        "parallel": _parallel(views.parallel_coordinates(info)),
        "over_runs": views.best_so_far(info),
    }


class Importances:
    """Parameter importance by sweep, computed again only when its finished runs changed:
    a random forest is too slow to fit on every refresh of a large sweep."""

    def __init__(self) -> None:
        self._known: dict[str, tuple[frozenset, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def of(self, backend: Store, sweep_id: str) -> dict[str, Any]:
        """Each parameter's correlation and importance, most important first, or why none."""
        info = backend.sweep(sweep_id)
        told = frozenset((r.id, r.metric) for r in views.with_metric(info) if r.state == "finished")
        with self._lock:
            known = self._known.get(sweep_id)
            if known is None or known[0] != told:
                known = self._known[sweep_id] = (told, _importance(views.importance(info)))
            return known[1]


def _parallel(plot: views.ParallelCoordinates | str) -> dict[str, Any]:
    if isinstance(plot, str):
        return {"missing": plot}
    return {
        "runs": [[r.id, r.name or r.id, r.metric] for r in plot.runs],
        "axes": [  # not dataclasses.asdict: it deep-copies a position per run and axis
            {"name": a.name, "positions": a.positions, "ticks": a.ticks, "log": a.log}
            for a in plot.axes
        ],
    }


def _importance(result: views.Importance | str) -> dict[str, Any]:
    if isinstance(result, str):
        return {"missing": result}
    rows = [[result.features[j], result.correlation[j], result.forest[j]] for j in result.ranked()]
    return {
        "runs": result.runs,
        "rows": rows,
        "constant": result.constant,
        "rough": result.runs < views.FEW_RUNS,
    }


def _sweep_line(info: SweepInfo) -> dict[str, Any]:
    best = info.best()
    return {
        "id": info.id,
        "name": info.name,
        "label": info.label,
        "method": info.config.get("method"),
        "state": info.state,
        "metric": info.metric_name,
        "goal": "maximize" if info.maximize else "minimize",
        "counts": info.counts(),
        "best": None if best is None else {"id": best.id, "name": best.name, "metric": best.metric},
    }


def _run_line(info: SweepInfo, run: RunRecord) -> dict[str, Any]:
    return {
        "id": run.id,
        "name": run.name or run.id,
        "state": run.state,
        "config": run.config,
        "metric": _number(run.metric),
        "runtime": _number(run.runtime),
        "error": run.error_line,
    }


class RunFiles:
    """One reader per run, kept between requests: each request reads what is new."""

    def __init__(self) -> None:
        self._readers: dict[str, RunReader] = {}
        self._lock = threading.Lock()  # the server may answer two requests at once
        # The files a page was handed a URL for: the only ones `file` serves.
        self.served: set[Path] = set()

    def url(self, path: Path) -> str:
        """A URL for one of a run's files (an image), which `file` then serves."""
        self.served.add(Path(path))
        return "/file?path=" + urllib.parse.quote(str(path))

    def file(self, path: str) -> Path | None:
        """A file a page was handed a URL for, if it still exists; None for any other path."""
        wanted = Path(path)
        return wanted if wanted in self.served and wanted.is_file() else None

    def run(
        self, backend: Store, sweep_id: str, run_id: str, since: dict[str, int] | None = None
    ) -> dict[str, Any]:
        """What the run logged so far; its folder must be on this machine. `since` (key ->
        points the page has) leaves those points out: a refresh carries only what is new."""
        info, line, reader, why = self._read(backend, sweep_id, run_id)
        others = [[r.id, r.name or r.id] for r in info.runs if r.id != run_id]
        if reader is None:
            return {**line, "logged": None, "why": why, "others": others}
        with self._lock:
            contents = reader.contents
            details = latest_of(contents)
            logged = {
                "scalars": {
                    k: [[s, v] for s, v in pts[(since or {}).get(k, 0) :]]
                    for k, pts in contents.scalars.items()
                },
                "charts": _charts(details),
                "tables": {k: self._table(t) for k, t in details.tables.items()},
                "table_steps": {
                    k: [v.step for v in versions]
                    for k, versions in contents.plain_tables().items()
                    if k in details.tables
                },
                "images": {
                    k: [[self.url(p), c] for p, c in shown[-1][1]]
                    for k, shown in contents.images.items()
                    if shown
                },
                "config": contents.config,
                "exit_code": contents.exit_code,
            }
        return {**line, "logged": logged, "folder": str(reader.run_file.parent), "others": others}

    def table(
        self, backend: Store, sweep_id: str, run_id: str, key: str, version: int = -1
    ) -> dict[str, Any]:
        """One version of a table the run logged (-1 its last): to compare with another run's
        or another epoch's."""
        _, line, reader, why = self._read(backend, sweep_id, run_id)
        if reader is None:
            raise KeyError(f"run {line['name']}: {why}")
        with self._lock:
            versions = reader.contents.plain_tables().get(key, [])
            table = table_version(reader.contents, key, version)
            if table is None:
                raise KeyError(f"run {line['name']} logged no version {version} of a table {key}")
            step = versions[version].step
            return {"run": run_id, "name": line["name"], "key": key, "step": step,
                    "version": version % len(versions), **self._table(table)}  # fmt: skip

    def curves(self, info: SweepInfo, since: dict[str, int] | None = None) -> dict[str, Any]:
        """The sweep metric's curve, step by step, of the runs a sweep page draws (the best
        finished ones and the running ones: `views.curve_runs`); `since` (run id -> points
        the page has) leaves those points out."""
        metric, shown = info.metric_name, []
        for record in views.curve_runs(info) if metric else []:
            reader, _ = self._reader(record)
            with self._lock:
                points = reader.contents.scalars.get(metric, []) if reader else []
                new = [[s, v] for s, v in points[(since or {}).get(record.id, 0) :]]
            shown.append({"id": record.id, "name": record.name or record.id,
                          "state": record.state, "points": new})  # fmt: skip
        return {"metric": metric, "runs": shown}

    def _read(
        self, backend: Store, sweep_id: str, run_id: str
    ) -> tuple[SweepInfo, dict[str, Any], RunReader | None, str]:
        """The sweep, the run's line, and its reader brought up to date (or None, and why)."""
        info = backend.sweep(sweep_id)
        record = next((r for r in info.runs if r.id == run_id), None)
        if record is None:
            raise KeyError(f"no run {run_id} in sweep {sweep_id}")
        return info, _run_line(info, record), *self._reader(record)

    def _reader(self, record: RunRecord) -> tuple[RunReader | None, str]:
        """The run's reader, brought up to date; or None, and why, without its log here."""
        folder = Path(record.location) if record.location else None
        run_file = next(folder.glob("run-*.wandb"), None) if folder and folder.is_dir() else None
        if run_file is None:
            return None, _why_not(record, folder)
        with self._lock:
            reader = self._readers.get(record.id)
            if reader is None or reader.run_file != run_file:
                reader = self._readers[record.id] = RunReader(run_file)
            while reader.update():
                pass
        return reader, ""

    def _table(self, table: Any) -> dict[str, Any]:
        rows = [[self._cell(table, cell) for cell in row] for row in table.data]
        return {"columns": [str(c) for c in table.columns], "rows": rows}

    def _cell(self, table: Any, cell: Any) -> Any:
        image = table.image(cell)
        if image is not None:
            return {"image": self.url(image)}
        if isinstance(cell, float):
            return _number(cell)
        return cell if isinstance(cell, int | str | bool) or cell is None else str(cell)


def _why_not(record: RunRecord, folder: Path | None) -> str:
    if folder is None:
        return "its run folder is not known yet (the run has not called wandb.init)"
    if record.host:
        return f"its run folder is on {record.host}, not on this machine"
    return "its run folder is not on this machine"


def _charts(details: Any) -> dict[str, list[dict[str, Any]]]:
    """Each chart by kind and key: a confusion matrix's (actual, predicted, count) rows, a
    curve's points by class."""
    charts: dict[str, list[dict[str, Any]]] = {}
    for kind, logged in details.charts.items():
        for key, table in logged:
            if kind == "confusion":
                rows = [[str(a), str(p), _number(n) or 0] for a, p, n in table.data]
                charts.setdefault(kind, []).append({"key": key, "rows": rows})
            else:
                by_class: dict[str, list[list[float]]] = {}
                for name, x, y in table.data:
                    by_class.setdefault(str(name), []).append([x, y])
                for points in by_class.values():
                    points.sort()
                charts.setdefault(kind, []).append({"key": key, "classes": by_class})
    return charts


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return value
    return None
