"""What a run logged, read by what it is, whatever its keys: scalars, tables, images, charts.

W&B's app shows every key a run logged. So do sweepkit's views: they read the run's
`.wandb` transaction log (`sweepkit.follow.TransactionLog`: each record read once) into a
`RunContents`, incrementally (`RunReader.update` reads only what was added since its last
call, as the agent's follower does), and recognise each value by what wandb wrote for it,
not by a name sweepkit's trainer happens to use:

- a number in a history row is a **scalar**, kept per key with its step (W&B's `_step`);
- a history value whose ``_type`` is ``table-file`` is a **table** (a `wandb.Table`, or the
  table behind a chart), its rows in the artifact wandb staged for it;
- ``image-file`` and ``images/separated`` are **images**, their files in the run folder;
- a config entry ``_wandb.visualize.KEY`` (`wandb.plot.*`) or ``_wandb.viz.KEY``
  (`wandb.sklearn.*`) makes KEY a **chart**: its kind from wandb's panel id (a confusion
  matrix, ROC or precision-recall curves, a line series, a line, bar, scatter or histogram)
  and the table it draws.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from wandb.proto import wandb_internal_pb2 as pb

from sweepkit.follow import TransactionLog


@dataclasses.dataclass(frozen=True)
class Chart:
    """A W&B chart a run logged (`wandb.plot.confusion_matrix(...)` under KEY, ...)."""

    key: str  # the key it was logged under: its title in W&B's app
    panel: str  # wandb's panel id, e.g. "wandb/confusion_matrix/v1"
    table_key: str  # the key of the table it draws
    fields: dict[str, str]  # the panel's fields: which column is x, y, class, ...
    strings: dict[str, str]  # titles: "title", "x-axis-title", ...

    @property
    def kind(self) -> str:
        """confusion, roc, pr, lines (a line series), line, bar, scatter, histogram, or other."""
        if "confusion_matrix" in self.panel:
            return "confusion"
        if "area-under-curve" in self.panel:
            x = self.fields.get("x", "").lower()
            return "roc" if x == "fpr" else "pr" if x == "recall" else "curve"
        for kind in ("lineseries", "line", "bar", "scatter", "histogram"):
            if f"/{kind}/" in self.panel:
                return "lines" if kind == "lineseries" else kind
        return "other"


@dataclasses.dataclass
class TableVersion:
    """One version of a table a run logged: at which step, and where wandb staged it."""

    step: int
    path: str | None  # the table's file inside its artifact, e.g. "KEY.table.json"
    files: dict[str, Path]  # artifact path -> local file (the table and its media)

    def load(self) -> tuple[list[str], list[list[Any]]] | None:
        """Its columns and rows, or None when wandb's staging folder no longer holds it."""
        local = self.files.get(self.path or "")
        if local is None or not local.exists():
            return None
        table = json.loads(local.read_text())
        return table.get("columns", []), table.get("data", [])


@dataclasses.dataclass
class RunContents:
    """Everything a run logged so far, by key."""

    scalars: dict[str, list[tuple[int, float]]] = dataclasses.field(default_factory=dict)
    tables: dict[str, list[TableVersion]] = dataclasses.field(default_factory=dict)
    # key -> each time images were logged under it: (step, [(file, caption), ...])
    images: dict[str, list[tuple[int, list[tuple[Path, str]]]]] = dataclasses.field(
        default_factory=dict
    )
    charts: dict[str, Chart] = dataclasses.field(default_factory=dict)
    config: dict[str, Any] = dataclasses.field(default_factory=dict)
    summary: dict[str, Any] = dataclasses.field(default_factory=dict)
    exit_code: int | None = None  # None while it runs (or if it died without an exit record)

    def history(self) -> list[dict[str, float]]:
        """The scalars as history rows in step order, each with its `_step` (W&B's step)."""
        rows: dict[int, dict[str, float]] = {}
        for key, points in self.scalars.items():
            for step, value in points:
                rows.setdefault(step, {"_step": step})[key] = value
        return [rows[step] for step in sorted(rows)]

    def charts_of(self, kind: str) -> list[Chart]:
        return [chart for chart in self.charts.values() if chart.kind == kind]

    def chart_table(self, chart: Chart) -> tuple[list[str], list[list[Any]]] | None:
        """The last version of the table a chart draws, loaded."""
        versions = self.tables.get(chart.table_key)
        return versions[-1].load() if versions else None

    def plain_tables(self) -> dict[str, list[TableVersion]]:
        """The tables that are not a chart's own: the user's `wandb.Table`s."""
        behind_charts = {chart.table_key for chart in self.charts.values()}
        return {k: v for k, v in self.tables.items() if k not in behind_charts}


class RunReader:
    """A run's contents, kept up to date from its transaction log.

    >>> reader = RunReader("/nonexistent/run-x.wandb")
    >>> reader.update()
    False
    >>> reader.contents.scalars
    {}
    """

    def __init__(self, run_file: str | Path) -> None:
        self.run_file = Path(run_file)
        self.contents = RunContents()
        self._log = TransactionLog(self.run_file)
        # Artifact name -> its files, and the tables waiting for their artifact (by name).
        self._staged: dict[str, dict[str, Path]] = {}

    def update(self) -> bool:
        """Read what the run added since the last call; True if there was anything."""
        records = self._log.read()
        for raw in records:
            self._take(pb.Record.FromString(raw))
        return bool(records)

    def _take(self, record: pb.Record) -> None:
        kind = record.WhichOneof("record_type")
        if kind == "history":
            self._history(record.history)
        elif kind in ("config", "run"):  # a run's first config comes in its run record
            update = record.config.update if kind == "config" else record.run.config.update
            for item in update:
                self._config(_key(item), _value(item.value_json))
        elif kind == "summary":
            for key, value in _leaves(_nested(record.summary.update)):
                if not key.startswith("_"):
                    self.contents.summary[key] = value
        elif kind == "artifact":
            files = {c.path: Path(c.local_path) for c in record.artifact.manifest.contents
                     if c.local_path}  # fmt: skip
            self._staged[record.artifact.name] = files
            for versions in self.contents.tables.values():
                for version in versions:
                    if not version.files and version.path in files:
                        version.files = files
        elif kind == "exit":
            self.contents.exit_code = record.exit.exit_code

    def _history(self, history: pb.HistoryRecord) -> None:
        row = _nested(history.item)
        step = row.get("_step", history.step.num)
        step = int(step) if isinstance(step, int | float) else history.step.num
        for key, value in _leaves(row):
            if not key.startswith("_"):  # wandb's own: _step, _runtime, _timestamp
                self._logged(key, value, step)

    def _logged(self, key: str, value: Any, step: int) -> None:
        """One value of a history row: a scalar, a table, images; anything else is left out."""
        contents = self.contents
        if isinstance(value, bool) or value is None:
            return
        if isinstance(value, int | float):
            if math.isfinite(value):
                contents.scalars.setdefault(key, []).append((step, float(value)))
            return
        kind = value.get("_type") if isinstance(value, dict) else None
        if kind == "table-file":
            contents.tables.setdefault(key, []).append(
                TableVersion(step, f"{key}.table.json", self._files_for(key))
            )
        elif kind in ("image-file", "images/separated"):
            names = value.get("filenames") or [value.get("path")]
            captions = value.get("captions") or ([value["caption"]] if "caption" in value else [])
            folder = self.run_file.parent / "files"
            shown = [
                (folder / name, str(captions[i]) if i < len(captions) else "")
                for i, name in enumerate(names)
                if name
            ]
            contents.images.setdefault(key, []).append((step, shown))

    def _files_for(self, key: str) -> dict[str, Path]:
        """The staged files of the artifact wandb makes for a table logged under `key`
        (``run-<id>-<key>``), if its record came already."""
        suffix = f"-{key}"
        for name, files in reversed(list(self._staged.items())):
            if name.endswith(suffix) and f"{key}.table.json" in files:
                return files
        return {}

    def _config(self, key: str, value: Any) -> None:
        if key.startswith("_wandb.visualize."):
            chart_key = key.removeprefix("_wandb.visualize.")
            panel = (value or {}).get("panel_config", {})
            self.contents.charts[chart_key] = Chart(
                chart_key, panel.get("panelDefId", ""), _table_key(panel) or f"{chart_key}_table",
                dict(panel.get("fieldSettings", {})), dict(panel.get("stringSettings", {})),
            )  # fmt: skip
        elif key.startswith("_wandb.viz."):  # wandb.sklearn's charts: the table is the key's own
            chart_key = key.removeprefix("_wandb.viz.")
            self.contents.charts[chart_key] = Chart(
                chart_key, (value or {}).get("id", ""), chart_key, {}, {}
            )
        elif key == "_wandb" and isinstance(value, dict):
            for inner, inner_value in value.items():
                if inner in ("visualize", "viz") and isinstance(inner_value, dict):
                    for chart_key, spec in inner_value.items():
                        self._config(f"_wandb.{inner}.{chart_key}", spec)
        elif not key.startswith("_"):
            self.contents.config[key] = (
                value.get("value") if isinstance(value, dict) and "value" in value else value
            )


def _table_key(panel: dict[str, Any]) -> str | None:
    """The table a `wandb.plot` chart's query names (``summaryTable(tableKey: ...)``)."""
    for field in panel.get("userQuery", {}).get("queryFields", []):
        for inner in field.get("fields", []):
            for arg in inner.get("args", []):
                if arg.get("name") == "tableKey":
                    return arg.get("value")
    return None


def _key(item: Any) -> str:
    return ".".join(item.nested_key) if item.nested_key else item.key


def _nested(items: Any) -> dict[str, Any]:
    """A record's items as one nested dict: wandb writes ``{"val": {"acc": 0.9}}`` as the item
    ``val.acc``, and a logged table as one item per field (``KEY._type``, ``KEY.path``, ...)."""
    row: dict[str, Any] = {}
    for item in items:
        path = list(item.nested_key) or [item.key]
        node = row
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[path[-1]] = _value(item.value_json)
    return row


def _leaves(row: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """``(dotted key, value)`` for each value of a nested row; a value wandb typed (``_type``:
    a table, images, a histogram) is one leaf, as W&B's app shows it under one key.

    >>> _leaves({"loss": 1.0, "val": {"acc": 0.9}, "t": {"_type": "table-file", "path": "x"}})
    [('loss', 1.0), ('val.acc', 0.9), ('t', {'_type': 'table-file', 'path': 'x'})]
    """
    leaves = []
    for key, value in row.items():
        if isinstance(value, dict) and "_type" not in value and value:
            leaves += _leaves(value, f"{prefix}{key}.")
        else:
            leaves.append((prefix + key, value))
    return leaves


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text
