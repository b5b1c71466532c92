"""The processes a test starts, found and waited for: every one carries the test's tag
(SWEEPKIT_TEST_TAG, set by the `workdir` fixture), so none is left behind unseen."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from tests.helpers.cli import sweepkit


def tagged_processes() -> list[int]:
    tag = f"SWEEPKIT_TEST_TAG={os.environ['SWEEPKIT_TEST_TAG']}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if tag in (entry / "environ").read_bytes().split(b"\0"):
                    state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                    if state != "Z":
                        found.append(int(entry.name))
            except OSError:
                continue
    return found


def wait_for_running(workdir: Path, sweep_id: str, n: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = sweepkit("status", sweep_id, "--json", cwd=workdir)
        if result.returncode == 0 and json.loads(result.stdout)["counts"].get("running", 0) >= n:
            return
        time.sleep(0.3)
    raise AssertionError(f"{n} runs never ran at once")


def none_left(timeout: float) -> list[int]:
    """Wait until no process of this test is left (all carry its tag); return those left."""
    deadline = time.monotonic() + timeout
    while (left := tagged_processes()) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def wait_for_file(path: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.2)


def untagged_env() -> dict[str, str]:
    """This environment without the test's tag: for the servers a session starts (PostgreSQL,
    Slurm's daemons), which outlive a test and must not be ended with its processes."""
    return {k: v for k, v in os.environ.items() if k != "SWEEPKIT_TEST_TAG"}
