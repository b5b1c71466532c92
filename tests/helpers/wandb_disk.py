"""Read back what an offline wandb run wrote, with W&B's own reader (`wandb leet inspect`)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import wandb

from sweepkit.follow import RunMetrics, TransactionLog


def _leet(*args: str) -> str:
    wandb_cli = shutil.which("wandb")
    assert wandb_cli, "the wandb console script is not on PATH"
    return subprocess.run(
        [wandb_cli, "leet", "inspect", *args], check=True, capture_output=True, text=True
    ).stdout


def run_summary(run_dir: str | Path) -> dict[str, Any]:
    """State, exit code, config and summary of a run (`wandb leet inspect --summary --json`)."""
    return json.loads(_leet("--summary", "--json", str(run_dir)))


def run_records(run_dir: str | Path) -> list[dict[str, Any]]:
    """Every record of the run's .wandb transaction log, in order."""
    return [json.loads(line) for line in _leet("--json", str(run_dir)).splitlines() if line.strip()]


def history(run_dir: str | Path) -> list[dict[str, Any]]:
    """The rows the run passed to wandb.log."""
    return [r["history"]["item"] for r in run_records(run_dir) if r["type"] == "history"]


def logged_table(run_dir: str | Path, key: str) -> dict[str, Any]:
    """The last version of a logged wandb.Table, from the run_table artifact that holds it.

    wandb writes tables with media as artifacts (`run-<id>-<key>`); their files
    wait in WANDB_DATA_DIR's staging folder until `wandb sync` uploads them.
    """
    versions = logged_tables(run_dir, key)
    assert versions, f"no table artifact for {key!r}"
    return versions[-1]


def logged_tables(run_dir: str | Path, key: str) -> list[dict[str, Any]]:
    """Every version of a logged wandb.Table, in the order the run logged them."""
    tables = []
    for record in run_records(run_dir):
        if record["type"] != "artifact" or not record["artifact"]["name"].endswith(f"-{key}"):
            continue
        contents = record["artifact"]["manifest"]["contents"]
        entry = next(c for c in contents if c["path"] == f"{key}.table.json")
        table = json.loads(Path(entry["local_path"]).read_text())
        table["files"] = {c["path"]: c["local_path"] for c in contents}
        tables.append(table)
    return tables


def write_run(root, log, exit_code: int = 0, run_id: str | None = None) -> str:
    """A real offline wandb run under `root`, ending with `exit_code`; returns its .wandb file
    once wandb-core has written all of it (`finish` returns before the service has flushed the
    last records)."""
    with wandb.init(dir=str(root), project="follow", id=run_id) as run:
        log(run)
        if exit_code:
            run.finish(exit_code=exit_code)
    path = next((root / "wandb").glob(f"*-{run.id}/run-{run.id}.wandb"))
    metrics, log_file = RunMetrics(None), TransactionLog(path)
    deadline = time.monotonic() + 30
    while metrics.exit_code is None and time.monotonic() < deadline:
        metrics.add(log_file.read())
        time.sleep(0.05)
    assert metrics.exit_code is not None, "wandb never wrote the run's exit record (its last)"
    return str(path)
