"""The `sweepkit` console script, run as a user runs it, and the few steps many tests take
with it (a sweep created from YAML text, its status read back as JSON)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent


def sweepkit(
    *args: str, cwd: Path | None = None, columns: int | None = None, timeout: float | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the console script; `columns` widens rich's tables (80 when output is not a terminal)."""
    exe = shutil.which("sweepkit")
    assert exe, "the sweepkit console script is not installed (pip install -e .)"
    env = os.environ.copy()
    if columns:
        env["COLUMNS"] = str(columns)
    return subprocess.run(
        [exe, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout
    )


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def create(workdir: Path, yaml_text: str) -> str:
    result = sweepkit("create", str(write(workdir / "sweep.yaml", yaml_text)), cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "backend: local (WANDB_MODE is offline" in result.stderr
    assert "sweepkit agent local-" in result.stderr  # the exact command to start an agent
    return result.stdout.strip()


def status(workdir: Path, sweep_id: str) -> dict:
    result = sweepkit("status", sweep_id, "--json", cwd=workdir)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def one_line_error(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    assert message in errors[0]
