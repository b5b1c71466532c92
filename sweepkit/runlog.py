"""Read what a wandb run logged from its transaction log, with W&B's own reader.

A run folder written offline has no summary file; its `run-ID.wandb` log is the
record. `wandb leet inspect --json` (the Go binary `wandb-core`, which ships
inside the wandb wheel) prints that log as one JSON record per line, also while
the run is still writing it. We call the binary directly: going through the
`wandb` CLI would add a second of Python start-up per read.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import math
import re
import subprocess
from pathlib import Path
from typing import Any

from wandb.util import get_core_path


@dataclasses.dataclass(frozen=True)
class RunLog:
    """The scalars a run logged: every history row, and the last value of each key."""

    history: list[dict[str, float]]
    summary: dict[str, float]
    exit_code: (
        int | None
    )  # None while the run is still going (or if it died without an exit record)

    def metric_history(self, name: str) -> list[dict[str, float]]:
        """The rows that hold `name`, reduced to it: what the sweeps engine reads."""
        return [{name: row[name]} for row in self.history if name in row]


def find_run_file(wandb_dir: str | Path, run_id: str) -> Path | None:
    """The transaction log of run `run_id` under `wandb_dir/wandb/`, if it exists yet: the
    newest, if the id has several (see `run_files`).

    >>> find_run_file("/nonexistent", "abc") is None
    True
    """
    found = run_files(wandb_dir, run_id)
    return found[-1] if found else None


def run_files(wandb_dir: str | Path, run_id: str) -> list[Path]:
    """Every transaction log of run `run_id` under `wandb_dir/wandb/`, oldest first: a
    function that calls `wandb.init` again makes a folder per call under the same id (wandb
    adds ``-1``, ``-2`` to a folder whose name is taken: a second call within the second)."""
    pattern = re.compile(rf"-(\d{{8}}_\d{{6}})-{re.escape(run_id)}(?:-(\d+))?")
    found: list[tuple[tuple[str, int], Path]] = []
    for folder in Path(wandb_dir, "wandb").glob(f"*-{glob.escape(run_id)}*"):
        match = pattern.search(folder.name)
        if match is None or match.end() != len(folder.name):
            continue
        run_file = folder / f"run-{run_id}.wandb"
        if run_file.exists():
            found.append(((match[1], int(match[2] or 0)), run_file))
    return [run_file for _, run_file in sorted(found)]


def records(run_file: str | Path) -> list[dict[str, Any]]:
    """Every record of a run's .wandb log, in order (a record still being written is skipped)."""
    run_file = Path(run_file)
    result = subprocess.run(
        [
            get_core_path(),
            "leet",
            "inspect",
            "--no-observability",
            "--json",
            "--run-file",
            str(run_file),
            str(run_file.parent.parent),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    parsed = []
    for line in result.stdout.splitlines():
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return parsed


def read_run_log(run_file: str | Path) -> RunLog:
    """Parse a run's .wandb log into its numeric history, summary and exit code."""
    history: list[dict[str, float]] = []
    summary: dict[str, float] = {}
    exit_code = None
    for record in records(run_file):
        kind = record.get("type")
        if kind == "history":
            row = _scalars(record["history"].get("item", {}))
            history.append(row)
            summary.update(row)
        elif kind == "summary":
            summary.update(_scalars(record["summary"].get("update", {})))
        elif kind == "exit":
            exit_code = record["exit"].get("exit_code", 0)
    return RunLog(history, summary, exit_code)


@dataclasses.dataclass(frozen=True)
class LoggedTable:
    """A wandb.Table as logged: its columns, rows, and where its media files are on disk."""

    columns: list[str]
    data: list[list[Any]]
    files: dict[str, Path]  # path inside the table's artifact -> local file

    def image(self, cell: Any) -> Path | None:
        """The PNG of an image cell (wandb writes ``{"_type": "image-file", "path": ...}``)."""
        path = cell.get("path") if isinstance(cell, dict) else None
        return self.files.get(path) if path else None


def logged_table(run_file: str | Path, key: str) -> LoggedTable | None:
    """The last version of the table a run logged under `key`, or None.

    wandb stores a logged table (with its images) as a `run_table` artifact named
    ``run-<id>-<key>``; offline, its files wait in WANDB_DATA_DIR's staging
    folder until `wandb sync` uploads them.
    """
    versions = logged_tables(run_file, [key])[key]
    return versions[-1] if versions else None


def logged_tables(run_file: str | Path, keys: list[str]) -> dict[str, list[LoggedTable]]:
    """Every version of each table in `keys`, in the order the run logged them (one per
    epoch for the prediction table), reading the run's log once.

    A version whose files are gone (WANDB_DATA_DIR emptied) is left out.
    """
    found: dict[str, list[LoggedTable]] = {key: [] for key in keys}
    for record in records(run_file):
        if record.get("type") != "artifact":
            continue
        artifact = record["artifact"]
        key = next((k for k in keys if artifact.get("name", "").endswith(f"-{k}")), None)
        if key is None:
            continue
        contents = artifact["manifest"]["contents"]
        files = {c["path"]: Path(c["local_path"]) for c in contents if c.get("local_path")}
        table_file = files.get(f"{key}.table.json")
        if table_file is None or not table_file.exists():
            continue
        table = json.loads(table_file.read_text())
        found[key].append(LoggedTable(table["columns"], table["data"], files))
    return found


def _scalars(items: dict[str, Any]) -> dict[str, float]:
    """Finite numbers only, without wandb's own `_step`/`_runtime` bookkeeping."""
    return {
        k: v
        for k, v in items.items()
        if not k.startswith("_")
        and isinstance(v, int | float)
        and not isinstance(v, bool)
        and math.isfinite(v)
    }
