"""Many workers: the pure plan/env/argv builders, then real worker processes and real signals."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sweepkit import launch
from sweepkit.backends.base import AgentOptions
from sweepkit.errors import ConfigError
from tests.helpers.cli import create, status, sweepkit
from tests.helpers.processes import tagged_processes, wait_for_running


def test_one_worker_per_listed_gpu_each_seeing_only_its_gpu():
    plan = launch.plan_workers(gpus=[0, 1, 3], per_gpu=1, workers=None, count=None, cores=16)
    assert [(w.gpu, w.label) for w in plan] == [(0, "w0 gpu0"), (1, "w1 gpu1"), (3, "w2 gpu3")]
    env = launch.worker_env(plan[2], {"PATH": "/bin", "CUDA_VISIBLE_DEVICES": "0,1,2,3"})
    assert env["CUDA_VISIBLE_DEVICES"] == "3" and env["PATH"] == "/bin"
    assert env["OMP_NUM_THREADS"] == "5"  # 16 cores / 3 workers


def test_per_gpu_puts_k_workers_on_each_gpu():
    plan = launch.plan_workers(gpus=[0, 1], per_gpu=2, workers=None, count=None, cores=8)
    assert [w.gpu for w in plan] == [0, 0, 1, 1]
    assert all(w.threads == 2 for w in plan)


def test_cpu_workers_split_the_cores_and_see_no_gpu():
    plan = launch.plan_workers(gpus=None, per_gpu=1, workers=2, count=None, cores=2)
    assert [(w.gpu, w.threads, w.label) for w in plan] == [(None, 1, "w0 cpu"), (None, 1, "w1 cpu")]
    env = launch.worker_env(plan[0], {})
    assert (
        env["CUDA_VISIBLE_DEVICES"] == ""
        and env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "1"
    )


def test_count_is_the_total_across_workers():
    plan = launch.plan_workers(gpus=[0, 1, 2, 3], per_gpu=1, workers=None, count=6, cores=4)
    assert [w.count for w in plan] == [2, 2, 1, 1]
    few = launch.plan_workers(gpus=None, per_gpu=1, workers=4, count=2, cores=4)
    assert [w.count for w in few] == [1, 1]  # no idle worker is started


def test_worker_command_line_is_a_plain_agent_of_the_same_sweep(tmp_path):
    worker = launch.Worker(index=1, gpu=2, threads=4, count=3)
    argv = launch.worker_argv(
        worker, "local-abc", function="m:f", log_dir=tmp_path, options=AgentOptions()
    )
    assert argv[:5] == [sys.executable, "-m", "sweepkit", "agent", "local-abc"]
    joined = " ".join(argv)
    assert "--label w1 gpu2" in joined and "--count 3" in joined and "--function m:f" in joined
    assert f"--run-logs {tmp_path}" in joined and "--store" not in joined
    # The store reaches it in its environment, where `ps` does not show a URL's password.
    env = launch.worker_env(worker, {"SWEEPKIT_STORE": "old"}, store="postgresql://u:pw@h/db")
    assert env["SWEEPKIT_STORE"] == "postgresql://u:pw@h/db"
    assert launch.worker_env(worker, {"SWEEPKIT_STORE": "old"})["SWEEPKIT_STORE"] == "old"


@pytest.mark.parametrize(
    ("spec", "visible", "message"),
    [
        ("all", 0, "no CUDA GPU is visible"),
        ("0,5", 2, "GPU 5 does not exist"),
        ("0,0", 2, "lists a GPU twice"),
        ("one", 2, "indices like 0,1,3"),
    ],
)
def test_bad_gpu_specs_are_clear_errors(spec, visible, message):
    with pytest.raises(ConfigError, match=message):
        launch.parse_gpus(spec, visible)


def test_gpus_and_workers_together_is_an_error():
    with pytest.raises(ConfigError, match="cannot be combined"):
        launch.plan_workers(gpus=[0], per_gpu=1, workers=2, count=None, cores=2)


def test_gpus_all_without_a_gpu_is_one_line_and_exit_2(workdir):
    sweep_id = create(workdir, "method: grid\nparameters:\n  x: {values: [1]}\n")
    result = sweepkit("agent", sweep_id, "--gpus", "all", cwd=workdir)
    assert result.returncode == 2 and "no CUDA GPU is visible" in result.stderr
    assert "Traceback" not in result.stderr
    result = sweepkit("agent", sweep_id, "--gpus", "0", "--workers", "2", cwd=workdir)
    assert result.returncode == 2 and "cannot be combined" in result.stderr


@pytest.mark.slow
def test_two_cpu_workers_finish_every_run_once_with_a_log_per_run(workdir):
    sweep_id = create(
        workdir,
        "method: grid\nmetric: {name: loss, goal: minimize}\nparameters:\n  x: {values: [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]}\n",
    )
    result = sweepkit(
        "agent", sweep_id, "--workers", "2", "-f", "tests.sweep_functions:quadratic", cwd=workdir
    )
    assert result.returncode == 0, result.stderr
    info = status(workdir, sweep_id)
    assert info["counts"] == {"finished": 6}
    assert sorted(r["config"]["x"] for r in info["runs"]) == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    started = [line for line in result.stderr.splitlines() if " started: " in line]
    assert len(started) == 6
    assert {line.split("]")[0] for line in started} == {"sweepkit: [w0 cpu", "sweepkit: [w1 cpu"}
    for line in started:
        log = Path(line.rsplit("(log: ", 1)[1].rstrip(")"))
        assert log.is_file()
    assert not tagged_processes()


@pytest.mark.slow
@pytest.mark.parametrize(("sigints", "expected_state"), [(1, "finished"), (2, "killed")])
def test_ctrl_c_once_finishes_runs_twice_kills_them_and_no_process_is_left(
    workdir, sigints, expected_state
):
    sweep_id = create(
        workdir,
        "method: grid\nmetric: {name: loss, goal: minimize}\nparameters:\n  x: {values: [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]}\n",
    )
    parent = subprocess.Popen(
        ["sweepkit", "agent", sweep_id, "--workers", "2",
         "-f", "tests.sweep_functions:runs_until_released"],
        cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    wait_for_running(workdir, sweep_id, 2)
    for _ in range(sigints):
        parent.send_signal(signal.SIGINT)
        time.sleep(0.3)
    if sigints == 1:
        (workdir / "release").touch()  # the runs end only now, after Ctrl-C: they may finish
    _, err = parent.communicate(timeout=120)
    assert parent.returncode == 130, err
    info = status(workdir, sweep_id)
    assert info["counts"] == {expected_state: 2}, err  # no run claimed after Ctrl-C
    assert info["state"] == "running"  # the sweep itself goes on: another agent can continue it
    assert not tagged_processes()
