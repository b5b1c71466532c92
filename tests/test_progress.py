"""Progress on long work: the lines an agent relays and keeps live, and a run's per-epoch lines."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time
from pathlib import Path

import pytest

from sweepkit.core.records import RunRecord, SweepInfo
from sweepkit.progress import OutputTail, sweep_line, sweep_total, worker_line
from tests.helpers.cli import create, status, sweepkit

GRID_4 = "name: demo\nmethod: grid\nmetric: {name: loss, goal: minimize}\nparameters:\n  x: {values: [1.0, 2.0, 3.0, 4.0]}\n"


def test_a_tail_returns_only_new_complete_lines_as_a_terminal_shows_them(tmp_path):
    log = tmp_path / "run.log"
    tail = OutputTail(log)
    assert tail.lines() == []  # not written yet
    with log.open("ab") as out:
        out.write(b"first\nsec")
        out.flush()
        assert tail.lines() == ["first"]
        out.write(b"ond\n 10%\r 50%\r100%\nlast without newline")
        out.flush()
        assert tail.lines() == ["second", "100%"]  # a \r-redrawn bar: its last state
        assert tail.lines() == []
    assert tail.rest() == ["last without newline"]


def test_the_sweep_line_counts_runs_against_the_grid_and_shows_the_best():
    runs = [
        RunRecord("a", "finished", {}, 0.5, 1.0, agent="w0 cpu"),
        RunRecord("b", "finished", {}, 0.2, 1.0, agent="w1 cpu"),
        RunRecord("c", "crashed", {}, None, 1.0, agent="w0 cpu"),
        RunRecord("d", "running", {}, None, 1.0, name="demo-4", agent="w1 cpu"),
    ]
    info = SweepInfo("local-x", "local", {"metric": {"name": "loss"}}, "running", runs, name="demo")
    assert (
        sweep_line(info, total=4)
        == "demo (local-x): 2/4 finished, 1 failed, 1 running, best loss 0.2"
    )
    assert worker_line(info, "w0 cpu") == "  w0 cpu: 2 run(s) ended, 1 failed"
    assert worker_line(info, "w1 cpu") == "  w1 cpu: 1 run(s) ended, 0 failed, running demo-4"


def test_the_total_is_the_grid_or_the_run_cap_whichever_is_less():
    grid = {"method": "grid", "parameters": {"x": {"values": [1, 2, 3]}, "y": {"values": [1, 2]}}}
    assert sweep_total(grid) == 6
    assert sweep_total({**grid, "run_cap": 4}) == 4
    assert sweep_total({"method": "random", "parameters": {"x": {"min": 0.0, "max": 1.0}}}) is None


@pytest.mark.slow
def test_an_agent_relays_each_runs_output_and_keeps_it_in_the_runs_log_file(workdir):
    sweep_id = create(workdir, "method: grid\nparameters:\n  x: {values: [1.0]}\n")
    result = sweepkit("agent", sweep_id, "-f", "tests.sweep_functions:prints", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "hello from x=1.0" in result.stderr  # relayed while the run went
    (run,) = status(workdir, sweep_id)["runs"]
    assert "hello from x=1.0" in Path(run["log_file"]).read_text()


def test_on_a_terminal_the_agent_keeps_a_live_line_of_the_sweeps_progress(workdir):
    sweep_id = create(workdir, GRID_4)
    output = run_in_terminal(
        ["sweepkit", "agent", sweep_id, "-f", "tests.sweep_functions:quadratic", "--count", "2"],
        cwd=workdir,
    )
    assert f"demo ({sweep_id}): 1/4 finished, 0 failed" in output
    assert "this agent: 2/2 runs, 0 failed" in output
    assert "agent done: 2 run(s), 0 failed" in output


@pytest.mark.slow
def test_with_workers_the_terminal_shows_one_line_per_worker(workdir):
    sweep_id = create(workdir, GRID_4)
    output = run_in_terminal(
        ["sweepkit", "agent", sweep_id, "-f", "tests.sweep_functions:slow_curve", "--workers", "2"],
        cwd=workdir,
    )
    assert "w0 cpu: " in output and "w1 cpu: " in output and "run(s) ended" in output
    assert f"demo ({sweep_id}): " in output
    assert status(workdir, sweep_id)["counts"] == {"finished": 4}


def test_a_training_run_off_a_terminal_prints_one_line_per_epoch(workdir):
    result = sweepkit(
        "train", "--set", "dataset=sample", "--set", "max_train=256", "--set", "max_test=100",
        "--set", "epochs=2", cwd=workdir,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    epochs = [line for line in result.stderr.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in epochs] == ["1/2", "2/2"]
    assert all("loss " in line and "acc " in line and "%" in line for line in epochs)


def run_in_terminal(argv: list[str], cwd, timeout: float = 300) -> str:
    """Run a command with a pseudo-terminal as its stdout and stderr; return all it wrote."""
    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "160", "TERM": "xterm"}
    process = subprocess.Popen(argv, cwd=cwd, stdout=follower, stderr=follower, env=env)
    os.close(follower)
    chunks = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 1.0)
        if ready:
            try:
                data = os.read(leader, 65536)
            except OSError:  # the terminal closed: the command ended
                break
            if not data:
                break
            chunks.append(data)
        elif process.poll() is not None:
            break
    process.wait(timeout=30)
    os.close(leader)
    assert process.returncode == 0, b"".join(chunks).decode(errors="replace")[-3000:]
    return b"".join(chunks).decode(errors="replace")
