"""Nothing lost: real processes killed at any moment, failing and hanging runs, sweep control,
the W&B server unreachable, and the API key kept out of everything sweepkit writes."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from sweepkit.backends import backend_for_id, backend_for_new_sweep
from sweepkit.runner.reaper import reap
from tests.helpers import fake_wandb
from tests.helpers.cli import create, status, sweepkit
from tests.helpers.processes import tagged_processes, wait_for_running
from tests.helpers.wandb_disk import run_summary

GRID_6 = "method: grid\nmetric: {name: loss, goal: minimize}\nparameters:\n  x: {values: [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]}\n"


def agent(workdir: Path, sweep_id: str, *flags: str) -> subprocess.Popen:
    return subprocess.Popen(
        ["sweepkit", "agent", sweep_id, *flags],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_sigkilled_agent_mid_run_is_recovered_by_a_new_agent(workdir):
    sweep_id = create(workdir, GRID_6)
    first = agent(
        workdir, sweep_id, "-f", "tests.sweep_functions:runs_until_released", "--crash-grace", "5"
    )
    wait_for_running(workdir, sweep_id, 1)
    first.send_signal(signal.SIGKILL)  # mid-run: the run never ends on its own
    first.wait(timeout=30)
    deadline = time.monotonic() + 20  # the orphaned run dies with its agent's fork server
    while tagged_processes() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not tagged_processes()

    second = agent(workdir, sweep_id, "-f", "tests.sweep_functions:quadratic", "--crash-grace", "5")
    _, err = second.communicate(timeout=180)
    assert second.returncode == 0, err
    info = status(workdir, sweep_id)
    assert info["state"] == "finished"
    finished = sorted(r["config"]["x"] for r in info["runs"] if r["state"] == "finished")
    assert finished == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]  # every point finished, exactly once
    crashed = [r for r in info["runs"] if r["state"] == "crashed"]
    assert len(crashed) == 1 and len(info["runs"]) == 7
    (error,) = (
        sqlite3.connect(workdir / ".sweepkit" / "sweeps.db")
        .execute("SELECT error FROM runs WHERE state = 'crashed'")
        .fetchone()
    )
    assert "no heartbeat" in error


CLAIMER = textwrap.dedent(
    """
    import sys
    from sweepkit.backends.store import open_store
    store = open_store(sys.argv[1])
    while (run := store.claim_run(sys.argv[2])) is not None:
        store.finish_run(sys.argv[2], run.id, state="finished", progress=None, summary={}, run_dir=None)
    """
)


@pytest.mark.slow
def test_store_survives_sigkill_in_the_middle_of_claims(tmp_path):
    """Claims at full speed, killed at random moments: never a torn row, never a point twice."""
    from sweepkit.backends.store import open_store

    db = tmp_path / "s.db"
    grid = {
        "method": "grid",
        "parameters": {"a": {"values": list(range(30))}, "b": {"values": list(range(10))}},
    }
    sweep_id = open_store(db).create_sweep(grid)
    rng = random.Random(0)
    for _ in range(6):
        claimer = subprocess.Popen([sys.executable, "-c", CLAIMER, str(db), sweep_id])
        time.sleep(rng.uniform(0.8, 2.0))  # imports take ~0.5 s; then it claims hundreds a second
        claimer.send_signal(signal.SIGKILL)
        claimer.wait()
        check = sqlite3.connect(db)
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        rows = check.execute("SELECT config, state FROM runs").fetchall()
        assert len({c for c, _ in rows}) == len(rows)  # no grid point handed out twice
        assert sum(state == "running" for _, state in rows) <= 1  # at most the one it was holding
        check.close()
    # A new agent finishes the rest; the run each kill left "running" crashes and is retried.
    store = open_store(db)
    while True:
        reap(store, sweep_id, crash_grace_s=0.0)  # as the agent does before each claim
        if (run := store.claim_run(sweep_id)) is None:
            break
        store.finish_run(
            sweep_id, run.id, state="finished", progress=None, summary={}, run_dir=None
        )
    rows = (
        sqlite3.connect(db)
        .execute("SELECT config, state FROM runs WHERE state = 'finished'")
        .fetchall()
    )
    assert len(rows) == 300 and len({c for c, _ in rows}) == 300


@pytest.mark.slow
def test_consecutive_failures_make_the_agent_give_up_naming_the_error(workdir):
    sweep_id = create(workdir, GRID_6)
    result = sweepkit(
        "agent", sweep_id, "-f", "tests.sweep_functions:raises", "--max-failures", "2", cwd=workdir
    )
    assert result.returncode == 1
    assert "giving up: 2 runs failed in a row; the last: RuntimeError: diverged" in result.stderr
    assert status(workdir, sweep_id)["counts"] == {"failed": 2}  # the other points are still there


@pytest.mark.slow
def test_max_failures_counts_failures_in_a_row_not_in_total(workdir):
    sweep_id = create(workdir, "method: grid\nparameters:\n  x: {values: [1, 2, 3, 4, 5]}\n")
    result = sweepkit(
        "agent", sweep_id, "-f", "tests.sweep_functions:fails_on_odd_x", "--max-failures", "2",
        cwd=workdir,
    )  # fmt: skip
    assert result.returncode == 1 and "giving up" not in result.stderr, result.stderr
    assert status(workdir, sweep_id)["counts"] == {"failed": 3, "finished": 2}


@pytest.mark.slow
def test_a_hanging_run_is_bounded_by_run_timeout(workdir):
    sweep_id = create(workdir, "method: grid\nparameters:\n  x: {values: [1]}\n")
    result = sweepkit(  # the timeout only guards the test against a hang
        "agent", sweep_id, "-f", "tests.sweep_functions:hangs", "--run-timeout", "4", cwd=workdir,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 1 and "timed out after 4 s" in result.stderr
    (run,) = status(workdir, sweep_id)["runs"]
    assert run["state"] == "failed"
    assert not tagged_processes()


@pytest.mark.slow
def test_eight_agents_on_one_grid(workdir):
    values = ", ".join(str(float(v)) for v in range(16))
    sweep_id = create(
        workdir,
        f"method: grid\nmetric: {{name: loss, goal: minimize}}\nparameters:\n  x: {{values: [{values}]}}\n",
    )
    agents = [agent(workdir, sweep_id, "-f", "tests.sweep_functions:quadratic") for _ in range(8)]
    for a in agents:
        a.communicate(timeout=600)
    assert [a.returncode for a in agents] == [0] * 8
    info = status(workdir, sweep_id)
    assert info["counts"] == {"finished": 16}
    assert sorted(r["config"]["x"] for r in info["runs"]) == [float(v) for v in range(16)]


@pytest.mark.slow
def test_pause_holds_agents_and_resume_lets_them_go_on(workdir):
    sweep_id = create(workdir, GRID_6)
    assert sweepkit("pause", sweep_id, cwd=workdir).stdout.strip() == f"{sweep_id}: paused"
    waiting = agent(workdir, sweep_id, "-f", "tests.sweep_functions:quadratic")
    said = waiting.stderr.readline()  # it says it waits, once it has found the sweep paused
    assert "paused: waiting" in said, said
    assert waiting.poll() is None and status(workdir, sweep_id)["runs"] == []  # waits, runs nothing
    assert sweepkit("resume", sweep_id, cwd=workdir).returncode == 0
    waiting.communicate(timeout=120)
    assert status(workdir, sweep_id)["counts"] == {"finished": 6}


@pytest.mark.slow
def test_stop_lets_the_running_run_finish_and_starts_no_new_one(workdir):
    sweep_id = create(workdir, GRID_6)
    running = agent(workdir, sweep_id, "-f", "tests.sweep_functions:runs_until_released")
    wait_for_running(workdir, sweep_id, 1)
    assert sweepkit("stop", sweep_id, cwd=workdir).returncode == 0
    (workdir / "release").touch()  # the run ends only now, after the sweep was stopped
    running.communicate(timeout=120)
    info = status(workdir, sweep_id)
    assert info["counts"] == {"finished": 1} and info["state"] == "stopped"
    again = sweepkit("agent", sweep_id, cwd=workdir)
    assert (
        again.returncode == 1 and "is stopped" in again.stderr and "sweepkit resume" in again.stderr
    )


@pytest.mark.slow
def test_cancel_kills_the_running_run_within_seconds(workdir):
    sweep_id = create(workdir, GRID_6)
    running = agent(workdir, sweep_id, "-f", "tests.sweep_functions:hangs_until_stopped")
    wait_for_running(workdir, sweep_id, 1)
    assert sweepkit("cancel", sweep_id, cwd=workdir).returncode == 0
    running.communicate(timeout=60)  # noticed at the next heartbeat; the bound guards a hang
    info = status(workdir, sweep_id)
    assert info["counts"] == {"killed": 1} and info["state"] == "canceled"
    # The run heard SIGTERM as KeyboardInterrupt: its own clean-up ran, and its wandb run
    # was finished on the way out (its log ends with an exit record).
    assert (workdir / "cleaned-up").read_text() == "yes"
    (run,) = info["runs"]
    assert run_summary(run["location"])["exit_code"] is not None
    assert not tagged_processes()
    bad = sweepkit("resume", sweep_id, cwd=workdir)
    assert bad.returncode == 1 and "cannot resume" in bad.stderr


def test_wandb_sweep_control_uses_wandbs_own_state_change(monkeypatch):
    fake_wandb.install(monkeypatch)
    calls = []
    monkeypatch.setattr(
        "wandb.apis.public.sweeps._set_sweep_state",
        lambda api, sweep, state, entity=None, project=None: calls.append(
            (sweep, state, entity, project)
        ),
    )
    backend = backend_for_new_sweep("wandb")
    sweep_id = backend.create(
        {"method": "random", "parameters": {"x": {"values": [1]}}}, project="p", entity="e"
    )
    for command in ("pause", "resume", "stop", "cancel"):
        backend_for_id(sweep_id).control(sweep_id, command)
    states = ["PAUSED", "RUNNING", "FINISHED", "CANCELED"]
    assert calls == [("swp00000", state, "e", "p") for state in states]


def test_wandb_unreachable_backs_off_then_fails_in_one_line(monkeypatch, capsys):
    import wandb

    from sweepkit.backends import wandb as wandb_backend

    fake_wandb.install(monkeypatch)
    tries = []

    def unreachable(*args, **kwargs):
        tries.append(1)
        raise wandb.errors.CommError("429 Too Many Requests")

    slept: list[float] = []  # the back-off, recorded instead of waited for
    monkeypatch.setattr(wandb, "sweep", unreachable)
    monkeypatch.setattr(wandb_backend.time, "sleep", slept.append)
    with pytest.raises(
        wandb_backend.WandbUnavailableError, match="did not answer while creating the sweep"
    ):
        backend_for_new_sweep("wandb").create(
            {"method": "random", "parameters": {"x": {"values": [1]}}}
        )
    assert slept == [2.0, 4.0, 8.0, 16.0] and len(tries) == 5  # four back-offs, then the error
    said = [line for line in capsys.readouterr().err.splitlines() if "retrying in" in line]
    assert [line.rsplit("retrying in ", 1)[1] for line in said] == ["2 s", "4 s", "8 s", "16 s"]
    assert "429 Too Many Requests" in said[0]


SECRET = "0123456789abcdef0123456789abcdef01234567"  # the shape of a W&B API key


@pytest.mark.slow
def test_the_api_key_is_never_written_by_a_local_sweep(workdir, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", SECRET)
    good = workdir / "s.yaml"
    good.write_text(GRID_6.replace("[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]", "[1.0, 2.0]"))
    sweep_id = sweepkit("create", str(good), "--backend", "local", cwd=workdir).stdout.strip()
    worker_cmdlines = []
    parent = agent(workdir, sweep_id, "--workers", "2", "-f", "tests.sweep_functions:slow_curve")
    wait_for_running(workdir, sweep_id, 1)
    for pid in tagged_processes():
        with contextlib.suppress(OSError):
            worker_cmdlines.append(Path(f"/proc/{pid}/cmdline").read_bytes())
    out, err = parent.communicate(timeout=120)
    assert parent.returncode == 0, err
    assert worker_cmdlines and not any(SECRET.encode() in c for c in worker_cmdlines)
    assert SECRET not in out + err
    leaked = [p for p in workdir.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert leaked == []  # store, run folders (configs, logs, .wandb), per-run logs
    info = status(workdir, sweep_id)
    assert info["counts"] == {"finished": 2}
    assert not any(SECRET in json.dumps(r["config"]) for r in info["runs"])
    assert os.environ["WANDB_API_KEY"] == SECRET  # the test did put it where a user has it
