"""The PostgreSQL store under real agents: parallel agent processes on one sweep, a store URL on
the command line, and bad URLs said in one line.

The session's throwaway server (tests/conftest.py) is used; without PostgreSQL's server
binaries every test here is skipped with the reason.
"""

from __future__ import annotations

import contextlib
import itertools
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers.cli import create, status, sweepkit
from tests.helpers.grids import GRID_12_YAML as GRID_12
from tests.helpers.processes import tagged_processes

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_workdir(workdir, postgres_url, monkeypatch):
    """A working directory whose sweeps live in a fresh PostgreSQL database ($SWEEPKIT_STORE)."""
    monkeypatch.setenv("SWEEPKIT_STORE", postgres_url)
    return workdir


def start_agents(workdir, sweep_id, n):
    return [
        subprocess.Popen(["sweepkit", "agent", sweep_id, "-f", "tests.sweep_functions:quadratic"],
                         cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(n)
    ]  # fmt: skip


@pytest.mark.slow
def test_four_agents_on_postgres_finish_a_12_point_grid_each_point_once(pg_workdir):
    sweep_id = create(pg_workdir, GRID_12)
    agents = start_agents(pg_workdir, sweep_id, 4)
    outputs = [a.communicate(timeout=300) for a in agents]
    assert [a.returncode for a in agents] == [0, 0, 0, 0], [o[1][-2000:] for o in outputs]
    info = status(pg_workdir, sweep_id)
    assert info["counts"] == {"finished": 12} and info["state"] == "finished"
    points = sorted((r["config"]["x"], r["config"]["y"]) for r in info["runs"])
    assert points == sorted(itertools.product([0.0, 1.0, 2.0, 3.0], ["a", "b", "c"]))
    assert not (pg_workdir / ".sweepkit").exists()  # no SQLite file was made on the side


@pytest.mark.slow
def test_run_cap_holds_with_parallel_agents_on_postgres(pg_workdir):
    sweep_id = create(
        pg_workdir,
        "method: random\nrun_cap: 5\nparameters:\n  x: {distribution: uniform, min: 0, max: 6}\n",
    )
    agents = start_agents(pg_workdir, sweep_id, 3)
    assert [a.wait(timeout=300) for a in agents] == [0, 0, 0]
    assert status(pg_workdir, sweep_id)["counts"] == {"finished": 5}


@pytest.mark.slow
def test_workers_get_the_store_url_without_its_password_on_any_command_line(
    workdir, postgres_url, monkeypatch
):
    secret = "pw-only-in-the-environment"
    url = postgres_url.replace("://postgres@", f"://postgres:{secret}@")  # trust auth: any works
    assert secret in url
    monkeypatch.setenv("SWEEPKIT_STORE", url)
    gates = workdir / "gates"
    gates.mkdir()
    monkeypatch.setenv("SWEEPKIT_TEST_GATES", str(gates))
    sweep_id = create(workdir, "method: grid\nparameters:\n  x: {values: [1, 2]}\n")
    agent = subprocess.Popen(
        ["sweepkit", "agent", sweep_id, "--workers", "2", "-f", "tests.sweep_functions:gated"],
        cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 180  # a hang guard
    while not all((gates / f"started-{x}").exists() for x in (1, 2)):  # both workers' runs go
        assert agent.poll() is None and time.monotonic() < deadline, agent.communicate()
        time.sleep(0.1)
    command_lines = []  # as `ps` shows them to any user: the agent's, its workers', their runs'
    for pid in tagged_processes():
        with contextlib.suppress(OSError):  # a process that ended while we looked
            command_lines.append(Path(f"/proc/{pid}/cmdline").read_bytes())
    assert any(b"--workers" in line for line in command_lines)  # the scan sees our processes
    assert not [line for line in command_lines if secret.encode() in line]  # `ps` shows it nowhere
    for x in (1, 2):
        (gates / f"release-{x}").touch()
    _, err = agent.communicate(timeout=300)
    assert agent.returncode == 0, err[-2000:]
    assert status(workdir, sweep_id)["counts"] == {"finished": 2}


def test_store_flag_takes_a_url_and_status_lists_the_sweeps_there(workdir, postgres_url):
    sweep = workdir / "s.yaml"
    sweep.write_text("method: grid\nname: pg-grid\nparameters:\n  x: {values: [1, 2]}\n")
    created = sweepkit("create", str(sweep), "--store", postgres_url, cwd=workdir)
    assert created.returncode == 0, created.stderr
    sweep_id = created.stdout.strip()
    assert f"--store {postgres_url}" in created.stderr  # the agent command to copy names it
    listed = sweepkit("status", "--store", postgres_url, cwd=workdir, columns=200)
    assert listed.returncode == 0 and sweep_id in listed.stdout and "pg-grid" in listed.stdout
    assert not (workdir / ".sweepkit").exists()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("/nosuchdb", 'database "nosuchdb" does not exist'),
        ("/postgres?user=nosuchrole", 'role "nosuchrole" does not exist'),
    ],
    ids=["no-database", "no-role"],
)
def test_a_server_that_says_no_is_one_line_at_once(workdir, postgres_server, url, message):
    base = postgres_server.url().rsplit("/", 1)[0]
    sweep = workdir / "s.yaml"
    sweep.write_text("method: grid\nparameters:\n  x: {values: [1]}\n")
    result = sweepkit("create", str(sweep), "--store", base + url, cwd=workdir, timeout=180)
    assert result.returncode == 1
    *notes, line = result.stderr.strip().splitlines()
    assert notes == ["sweepkit: backend: local (WANDB_MODE is offline; --backend to choose)"]
    assert line.startswith("error: cannot use the sweep store") and message in line
