"""Read what a wandb run logged from its transaction log, with W&B's own reader.

A run folder written offline has no summary file; its `run-ID.wandb` log is the
record. `wandb leet inspect --json` (the Go binary `wandb-core`, which ships
inside the wandb wheel) prints that log as one JSON record per line, also while
the run is still writing it. We call the binary directly: going through the
`wandb` CLI would add a second of Python start-up per read.
"""

from __future__ import annotations

import dataclasses
import json
import math
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
    """The transaction log of run `run_id` under `wandb_dir/wandb/`, if it exists yet."""
    matches = sorted(Path(wandb_dir, "wandb").glob(f"*-{run_id}/run-{run_id}.wandb"))
    return matches[-1] if matches else None


def read_run_log(run_file: str | Path) -> RunLog:
    """Parse a run's .wandb log into its numeric history, summary and exit code."""
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
    history: list[dict[str, float]] = []
    summary: dict[str, float] = {}
    exit_code = None
    for line in result.stdout.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a record still being written
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
