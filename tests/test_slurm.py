"""`sweepkit slurm`: the array script (pure), and for real on a one-node Slurm cluster with two
fake GPUs (tests/slurm_cluster.py) against the PostgreSQL store: an array works a sweep to the
end, `scancel` of one task has its run offered again, each task sees only its own GPU."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from sweepkit.slurm import ArrayJob, array_script
from tests.helpers.cli import create, status, sweepkit

GRID_8 = "method: grid\nmetric: {name: loss, goal: minimize}\nparameters:\n  x: {values: [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]}\n"
GRID_2 = "method: grid\nmetric: {name: loss, goal: minimize}\nparameters:\n  x: {values: [1, 2]}\n"


def test_each_task_execs_one_agent_of_the_sweep_with_what_was_asked():
    job = ArrayJob(
        "local-ab12cd34", 8, "postgresql://me@db:5432/sweeps", Path("/work"), gpus_per_task=1,
        time="2:00:00", partition="gpu", count=3, function="m:f", python="/venv/bin/python",
    )  # fmt: skip
    script = array_script(job)
    directives = [line for line in script.splitlines() if line.startswith("#SBATCH")]
    assert directives == [
        "#SBATCH --job-name=sweepkit-local-ab12cd34",
        "#SBATCH --array=0-7",
        "#SBATCH --output=/work/.sweepkit/slurm/%x-%A_%a.out",
        "#SBATCH --chdir=/work",
        "#SBATCH --gres=gpu:1",
        "#SBATCH --time=2:00:00",
        "#SBATCH --partition=gpu",
    ]
    assert "export SWEEPKIT_STORE=postgresql://me@db:5432/sweeps" in script
    (last,) = [line for line in script.splitlines() if line and not line.startswith("#")][-1:]
    # exec: no bash left between Slurm's SIGTERM and the agent.
    assert last == (
        "exec /venv/bin/python -m sweepkit agent local-ab12cd34 --max-failures 5 --crash-grace 60"
        ' --retries 2 --count 3 --function m:f --label "slurm-${SLURM_ARRAY_TASK_ID}"'
    )


def test_every_agent_option_reaches_the_tasks(workdir):
    from sweepkit import cli_options as cli

    flags = {
        "--count": "3", "--function": "mod:fn", "--max-failures": "7", "--run-timeout": "99",
        "--crash-grace": "33", "--retries": "4", "--retry-failed": None,
    }  # fmt: skip
    # Every option of `agent` but those the array itself decides.
    wanted = {"--" + name.replace("_", "-") for name in set(cli.AGENT_OPTIONS) - cli.SLURM_DECIDES}
    assert wanted | {"--count"} == set(flags), "a new agent option needs a value in this test"
    sweep_id = create(workdir, GRID_2)
    args = [part for flag, value in flags.items() for part in (flag, value) if part is not None]
    result = sweepkit("slurm", sweep_id, "--array", "2", "--dry-run", *args, cwd=workdir)
    assert result.returncode == 0, result.stderr
    (exec_line,) = [line for line in result.stdout.splitlines() if line.startswith("exec ")]
    agent = exec_line.split()
    for flag, value in flags.items():
        assert flag in agent, flag
        if value is not None:
            assert agent[agent.index(flag) + 1] == value, flag
    refused = sweepkit("slurm", sweep_id, "--array", "2", "--workers", "2", cwd=workdir)
    assert refused.returncode == 2 and "No such option: --workers" in refused.stderr


def test_a_store_password_stays_out_of_the_script():
    script = array_script(ArrayJob("local-x", 2, "postgresql://me:s3cret@db/sweeps", Path("/w")))
    assert "s3cret" not in script and "SWEEPKIT_STORE comes from sbatch's environment" in script


def test_dry_run_prints_the_script_and_an_unknown_sweep_is_one_line(workdir):
    sweep_id = create(workdir, GRID_2)
    result = sweepkit("slurm", sweep_id, "--array", "3", "--dry-run", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "#SBATCH --array=0-2" in result.stdout and f"sweepkit agent {sweep_id}" in result.stdout
    assert "only tasks on this node may" in result.stderr  # a SQLite store: said once
    assert not (workdir / ".sweepkit" / "slurm").exists()  # a dry run writes nothing
    missing = sweepkit("slurm", "local-zzzzzzzz", "--array", "2", cwd=workdir)
    assert missing.returncode == 1 and missing.stderr.strip().splitlines()[-1].startswith(
        "error: unknown sweep local-zzzzzzzz"
    )


# For real, on a one-node cluster ---------------------------------------------------------


@pytest.fixture(scope="module")
def cluster():
    from tests.helpers.slurm_cluster import SlurmCluster, why_not

    if (reason := why_not()) is not None:
        pytest.skip(reason)
    started = SlurmCluster(gpus=2).start()
    yield started
    started.stop()


@pytest.fixture
def slurm_workdir(workdir, postgres_url, cluster, monkeypatch):
    """A working directory whose store is a fresh PostgreSQL database, with Slurm's commands
    pointed at the test cluster and a folder of gates for `tests.sweep_functions:gated`."""
    monkeypatch.setenv("SWEEPKIT_STORE", postgres_url)
    monkeypatch.setenv("SLURM_CONF", str(cluster.conf))
    (workdir / "gates").mkdir()
    monkeypatch.setenv("SWEEPKIT_TEST_GATES", str(workdir / "gates"))
    return workdir


def submit(workdir: Path, sweep_id: str, *flags: str) -> str:
    result = sweepkit("slurm", sweep_id, *flags, cwd=workdir)
    assert result.returncode == 0, result.stderr
    job_id = result.stdout.strip()
    assert job_id.isdigit(), result.stdout
    return job_id


def wait_until(predicate, what: str, cluster, workdir: Path, timeout: float = 300) -> None:
    """Poll `predicate` until it holds; past the hang guard, fail with what the tasks and
    the cluster said."""
    deadline = time.monotonic() + timeout  # a hang guard
    while not predicate():
        assert time.monotonic() < deadline, (
            f"never: {what}\n--- the tasks' output:\n{task_logs(workdir)}\n--- the cluster:\n"
            f"{cluster.logs()}"
        )
        time.sleep(0.25)


def task_logs(workdir: Path) -> str:
    return "\n".join(p.read_text() for p in sorted((workdir / ".sweepkit" / "slurm").glob("*.out")))


@pytest.mark.slow
@pytest.mark.slurm
@pytest.mark.postgres
def test_an_array_of_four_agents_works_a_sweep_to_the_end(slurm_workdir, cluster):
    sweep_id = create(slurm_workdir, GRID_8)
    job = submit(
        slurm_workdir, sweep_id, "--array", "4", "--function", "tests.sweep_functions:quadratic"
    )
    wait_until(lambda: not cluster.squeue(job), "the array ended", cluster, slurm_workdir)
    info = status(slurm_workdir, sweep_id)
    assert info["state"] == "finished", task_logs(slurm_workdir)
    assert sorted(r["config"]["x"] for r in info["runs"]) == [float(x) for x in range(8)]
    assert {r["state"] for r in info["runs"]} == {"finished"}
    assert {r["agent"] for r in info["runs"]} <= {f"slurm-{i}" for i in range(4)}
    logs = sorted((slurm_workdir / ".sweepkit" / "slurm").glob(f"sweepkit-{sweep_id}-{job}_*.out"))
    assert len(logs) == 4
    # A task that starts once the sweep is done (2 cores: 2 tasks at a time) says so, nothing else.
    errors = [line for line in task_logs(slurm_workdir).splitlines() if "error" in line.lower()]
    assert all("is finished: it hands out no more runs" in line for line in errors), errors


@pytest.mark.slow
@pytest.mark.slurm
@pytest.mark.postgres
def test_each_task_sees_only_its_own_gpu_and_scancel_offers_its_run_again(slurm_workdir, cluster):
    gates = slurm_workdir / "gates"
    sweep_id = create(slurm_workdir, GRID_2)
    job = submit(
        slurm_workdir, sweep_id, "--array", "2", "--gpus-per-task", "1",
        "--function", "tests.sweep_functions:gated",
    )  # fmt: skip
    wait_until(lambda: (gates / "started-1").exists() and (gates / "started-2").exists(),
               "both runs started", cluster, slurm_workdir)  # fmt: skip
    # Both tasks hold a GPU at once: each sees one, and not the other's.
    seen = sorted((gates / f"started-{x}").read_text() for x in (1, 2))
    assert seen == ["0", "1"]

    runs = {r["config"]["x"]: r for r in status(slurm_workdir, sweep_id)["runs"]}
    task = runs[1]["agent"].removeprefix("slurm-")
    subprocess.run(["scancel", f"{job}_{task}"], check=True, env=cluster.env)
    wait_until(
        lambda: [r["state"] for r in status(slurm_workdir, sweep_id)["runs"]].count("preempted") == 1,
        "the cancelled task's run recorded preempted", cluster, slurm_workdir,
    )  # fmt: skip
    (gates / "release-1").touch()
    (gates / "release-2").touch()  # the other task finishes its run, then takes x=1 again
    wait_until(lambda: not cluster.squeue(job), "the array ended", cluster, slurm_workdir)
    info = status(slurm_workdir, sweep_id)
    states = sorted((r["config"]["x"], r["state"]) for r in info["runs"])
    assert states == [(1, "finished"), (1, "preempted"), (2, "finished")], task_logs(slurm_workdir)
    again = next(r for r in info["runs"] if r["config"]["x"] == 1 and r["state"] == "finished")
    assert again["retry_of"] == runs[1]["id"] and info["state"] == "finished"
    assert json.dumps(info)  # the whole status is there, from the store
