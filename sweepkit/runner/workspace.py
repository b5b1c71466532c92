"""Where a run's files go, and the environment it runs in: spelled once.

Under the agent's WANDB_DIR (or the working directory), beside wandb's own run folders:

    wandb/sweep-ID/logs/RUN.log    each run's output (workers: the folder they were given)
    wandb/sweep-ID/RUN/            the run's folder of sweepkit's own: config.yaml (its
                                   parameters, WANDB_SWEEP_PARAM_PATH), args.json (for
                                   ${args_json_file}), error.txt (its traceback),
                                   stop.txt (why its agent ended it)
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import yaml

from sweepkit import proctree
from sweepkit.core.records import ClaimedRun, StoredSweep

STOP_FILE = "stop.txt"  # why its agent is ending the run, for the run's own line


def sweep_folder(root: str | Path, sweep_id: str) -> Path:
    """The sweep's folder of sweepkit's own under `root` (a WANDB_DIR)."""
    return Path(root) / "wandb" / f"sweep-{sweep_id.replace('/', '-')}"


def run_log_dir(sweep_id: str) -> Path:
    """Where the runs' output goes, unless an agent is given a folder: beside the sweep's run
    folders."""
    return sweep_folder(os.environ.get("WANDB_DIR") or ".", sweep_id) / "logs"


@dataclasses.dataclass(frozen=True)
class RunFolder:
    """One run's folder: what the agent writes for it and what the run leaves there."""

    path: Path

    @classmethod
    def make(cls, wandb_dir: Path, sweep_id: str, run_id: str) -> RunFolder:
        folder = cls(sweep_folder(wandb_dir, sweep_id) / run_id)
        folder.path.mkdir(parents=True, exist_ok=True)
        return folder

    @property
    def param_file(self) -> Path:
        return self.path / "config.yaml"

    @property
    def args_file(self) -> Path:
        return self.path / "args.json"

    @property
    def error_file(self) -> Path:
        return self.path / "error.txt"

    @property
    def stop_file(self) -> Path:
        return self.path / STOP_FILE

    def write_params(self, config: dict[str, Any]) -> None:
        """The run's parameters, as `wandb agent` writes them for WANDB_SWEEP_PARAM_PATH."""
        self.param_file.write_text(yaml.safe_dump(config))


def run_environment(
    sweep: StoredSweep, run: ClaimedRun, wandb_dir: Path, param_path: Path, token: str
) -> dict[str, str]:
    """The variables `wandb agent` sets for a sweep run, with wandb offline, and the token that
    marks the run's processes (`sweepkit.proctree`)."""
    return {
        proctree.TOKEN_VARIABLE: token,
        "WANDB_SWEEP_ID": sweep.id,
        "WANDB_RUN_ID": run.id,
        "WANDB_NAME": run.display_name,  # offline runs get no name from a server
        "WANDB_SWEEP_PARAM_PATH": str(param_path),
        "WANDB_PROJECT": sweep.project or "sweepkit",
        **({"WANDB_ENTITY": sweep.entity} if sweep.entity else {}),
        "WANDB_DIR": str(wandb_dir),
        "WANDB_MODE": "offline",
        **({"WANDB_SERVICE": os.environ["WANDB_SERVICE"]} if "WANDB_SERVICE" in os.environ else {}),
        # wandb-core flushes the run's .wandb log every 15 s by default: too late for
        # heartbeats and hyperband, which read it every HEARTBEAT_S.
        "WANDB_X_TRANSACTION_LOG_FLUSH_INTERVAL": os.environ.get(
            "WANDB_X_TRANSACTION_LOG_FLUSH_INTERVAL", "1"
        ),
        # wandb's banner lines, once per run, drown the agent's own; WANDB_SILENT=false brings them back.
        "WANDB_SILENT": os.environ.get("WANDB_SILENT", "true"),
    }
