"""The sweep commands through the real console script: agents as real processes."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import socket
import subprocess
from pathlib import Path

import pytest

from tests.helpers.cli import REPO, create, one_line_error, status, sweepkit, write
from tests.helpers.grids import GRID_12_YAML


def test_validate_prints_a_summary_for_a_good_file():
    result = sweepkit("validate", str(REPO / "sweeps" / "quick_grid.yaml"))
    assert result.returncode == 0
    assert "ok, grid sweep, 4 parameters, 4 grid points" in result.stdout


def test_validate_prints_every_violation_one_per_line_and_exits_2(tmp_path):
    bad = write(
        tmp_path / "bad.yaml",
        "method: grid\nmetric: {name: acc, goal: up}\nparameters:\n  a: {values: []}\n  b: {min: 3, max: 1}\n",
    )
    result = sweepkit("validate", str(bad))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith(f"error: {bad}: ") for line in lines)
    assert "Traceback" not in result.stderr


def test_four_agent_processes_finish_a_12_point_grid_each_point_once(workdir):
    sweep_id = create(workdir, GRID_12_YAML)
    agents = [
        subprocess.Popen(["sweepkit", "agent", sweep_id, "--function", "tests.sweep_functions:quadratic"], cwd=workdir,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]  # fmt: skip
    outputs = [a.communicate(timeout=300) for a in agents]
    assert [a.returncode for a in agents] == [0, 0, 0, 0], [o[1][-2000:] for o in outputs]
    info = status(workdir, sweep_id)
    assert info["counts"] == {"finished": 12} and info["state"] == "finished"
    points = sorted((r["config"]["x"], r["config"]["y"]) for r in info["runs"])
    assert points == sorted(itertools.product([0.0, 1.0, 2.0, 3.0], ["a", "b", "c"]))
    assert info["best"]["config"]["x"] == 3.0  # loss = (x-3)^2 + ...
    # Every run is a real offline wandb run whose folder `wandb sync` can upload.
    assert all(Path(r["location"]).is_dir() for r in info["runs"])


@pytest.mark.slow
def test_run_cap_holds_with_parallel_agents(workdir):
    sweep_id = create(
        workdir,
        "method: random\nrun_cap: 5\nparameters:\n  x: {distribution: uniform, min: 0, max: 6}\n",
    )
    agents = [
        subprocess.Popen(["sweepkit", "agent", sweep_id, "-f", "tests.sweep_functions:quadratic"], cwd=workdir,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(3)
    ]  # fmt: skip
    assert [a.wait(timeout=300) for a in agents] == [0, 0, 0]
    assert status(workdir, sweep_id)["counts"] == {"finished": 5}


@pytest.mark.slow
def test_program_sweep_with_boolean_flags_runs_unchanged(workdir):
    program = REPO / "tests" / "flags_program.py"
    sweep_id = create(
        workdir,
        f"""
program: {program}
command: ["${{env}}", "${{interpreter}}", "${{program}}", "${{args_no_boolean_flags}}"]
method: grid
metric: {{name: loss, goal: minimize}}
parameters:
  lr: {{values: [0.1, 0.2]}}
  layers: {{value: 3}}
  amp: {{values: [true, false]}}
""",
    )
    result = sweepkit("agent", sweep_id, cwd=workdir)
    assert result.returncode == 0, result.stderr
    info = status(workdir, sweep_id)
    assert info["counts"] == {"finished": 4}
    from tests.helpers.wandb_disk import run_summary

    for run in info["runs"]:
        logged = run_summary(run["location"])
        # argparse saw --amp only when true, and the values reached the run's config.
        assert logged["config"]["amp"] is run["config"]["amp"]
        assert logged["config"]["lr"] == run["config"]["lr"] and logged["config"]["layers"] == 3
        expected = run["config"]["lr"] * 3 + (0.5 if run["config"]["amp"] else 0.0)
        assert run["metric"] == pytest.approx(expected)


def test_a_failing_run_is_marked_failed_with_its_traceback_kept(workdir):
    sweep_id = create(workdir, "method: grid\nparameters:\n  x: {values: [1]}\n")
    result = sweepkit("agent", sweep_id, "-f", "tests.sweep_functions:raises", cwd=workdir)
    assert result.returncode == 1  # the exit code says a run failed
    assert "agent done: 1 run(s), 1 failed" in result.stderr
    (run,) = status(workdir, sweep_id)["runs"]
    assert run["state"] == "failed"
    import sqlite3

    (error,) = (
        sqlite3.connect(workdir / ".sweepkit" / "sweeps.db")
        .execute("SELECT error FROM runs")
        .fetchone()
    )
    assert "RuntimeError: diverged" in error


def store_digest(workdir: Path) -> str | None:
    """A fingerprint of every row of the store, to show that a failed command changed nothing."""
    db = workdir / ".sweepkit" / "sweeps.db"
    if not db.exists():
        return None
    import sqlite3

    connection = sqlite3.connect(db)
    rows = [
        connection.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
        for table in ("sweeps", "runs")
    ]
    return hashlib.sha256(repr(rows).encode()).hexdigest()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create", "{malformed}"], "not valid YAML at line"),
        (["create", "{violation}"], "parameters.x.values: must be a list"),
        (["create", "missing.yaml"], "cannot read missing.yaml"),
        (["create", "{good}", "--backend", "wandb"], "no W&B credentials"),
        (["create", "{good}", "--backend", "cloud"], "--backend must be one of"),
        (["agent", "local-nosuchid"], "unknown sweep local-nosuchid"),
        (["agent", "abc123"], "unknown sweep abc123"),
        (["agent", "{existing}", "--count", "0"], "--count"),
        (["agent", "{existing}", "--function", "nosuchmodule:main"], "cannot import nosuchmodule"),
        (
            ["agent", "{existing}", "--function", "tests.sweep_functions:not_callable"],
            "not a callable",
        ),
        (["status", "local-nosuchid"], "unknown sweep local-nosuchid"),
        (["status", "{existing}", "--run", "nosuch"], "has no run 'nosuch'"),
        (["run", "{violation}"], "parameters.x.values: must be a list"),
        # `run` checks everything before it creates the sweep: nothing is left behind.
        (["run", "{no_program}"], "program 'nosuch.py' does not exist"),
        (["run", "{good}", "--function", "nosuchmodule:main"], "cannot import nosuchmodule"),
        (["run", "{good}", "--per-gpu", "2"], "--per-gpu needs --gpus"),
        (["run", "{good}", "--gpus", "0", "--workers", "2"], "cannot be combined"),
    ],
)
def test_bad_input_is_one_line_nonzero_and_leaves_the_store_unchanged(workdir, args, message):
    good = write(workdir / "good.yaml", "method: grid\nparameters:\n  x: {values: [1, 2]}\n")
    write(workdir / "malformed.yaml", "method: grid\nparameters: [\n")
    write(
        workdir / "violation.yaml",
        "method: grid\nmetric: {name: a}\nparameters:\n  x: {values: 1}\n",
    )
    write(
        workdir / "no_program.yaml",
        "program: nosuch.py\nmethod: grid\nparameters:\n  x: {values: [1]}\n",
    )
    existing = sweepkit("create", str(good), cwd=workdir).stdout.strip()
    before = store_digest(workdir)
    names = {
        "malformed": "malformed.yaml",
        "violation": "violation.yaml",
        "no_program": "no_program.yaml",
        "good": "good.yaml",
        "existing": existing,
    }
    result = sweepkit(
        *[re.sub(r"\{(\w+)\}", lambda m: names[m.group(1)], a) for a in args], cwd=workdir
    )
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    error_lines = [
        line for line in result.stderr.splitlines() if line.startswith("error:") or "Error" in line
    ]
    assert len(error_lines) == 1, result.stderr
    assert store_digest(workdir) == before


@pytest.mark.slow
def test_readme_first_command_runs_as_written(workdir):
    first = (REPO / "README.md").read_text().split("```bash\n", 1)[1].splitlines()[0]
    command = first.split("#")[0].split("&&", 1)[1].strip()  # the part after `pip install ... &&`
    assert command.startswith("sweepkit run sweeps/")
    result = subprocess.run(command, shell=True, cwd=REPO, capture_output=True, text=True,
                            env={**__import__("os").environ, "SWEEPKIT_STORE": str(workdir / "s.db")})  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    sweep_id = result.stdout.strip().splitlines()[0]
    info = json.loads(
        sweepkit("status", sweep_id, "--json", "--store", str(workdir / "s.db")).stdout
    )
    assert info["counts"] == {"finished": 4}
    assert info["best"]["metric"] > 80  # acc, % on the sample


@pytest.mark.slow
def test_hyperband_stops_a_run_that_trails_the_finished_ones(workdir):
    sweep_id = create(
        workdir,
        """
method: grid
metric: {name: loss, goal: minimize}
parameters:
  x: {values: [0.3, 0.2, 0.1, 9.0]}  # each run beats the ones before it, but the last
early_terminate: {type: hyperband, min_iter: 2, eta: 2}
""",
    )
    result = sweepkit("agent", sweep_id, "-f", "tests.sweep_functions:slow_curve", cwd=workdir)
    assert result.returncode == 0, result.stderr
    runs = {r["config"]["x"]: r for r in status(workdir, sweep_id)["runs"]}
    assert runs[9.0]["state"] == "stopped"
    lines = result.stderr.splitlines()
    assert f"sweepkit: run {runs[9.0]['id']}: stopped by early termination" in lines
    # The run's own output says so in one line, not a traceback through the user's code.
    assert "sweepkit: stopped by early termination" in lines and "Traceback" not in result.stderr
    assert [runs[x]["state"] for x in (0.3, 0.2, 0.1)] == ["finished"] * 3
    from tests.helpers.wandb_disk import history

    assert (
        len([r for r in history(runs[9.0]["location"]) if "loss" in r]) < 8
    )  # it did not run to the end


@pytest.mark.slow
def test_agent_on_a_finished_sweep_says_there_is_nothing_left(workdir):
    sweep_id = create(workdir, "method: grid\nparameters:\n  x: {values: [1.0]}\n")
    assert (
        sweepkit("agent", sweep_id, "-f", "tests.sweep_functions:quadratic", cwd=workdir).returncode
        == 0
    )
    one_line_error(
        sweepkit("agent", sweep_id, cwd=workdir), "is finished: it hands out no more runs"
    )


def test_a_store_that_is_not_sqlite_is_refused_and_left_as_it_was(workdir):
    notes = write(workdir / "notes.txt", "my notes, not a database\n" * 50)
    sweep = write(workdir / "s.yaml", "method: grid\nparameters:\n  x: {values: [1]}\n")
    one_line_error(sweepkit("create", str(sweep), "--store", str(notes), cwd=workdir), "cannot use")
    assert notes.read_text() == "my notes, not a database\n" * 50


def test_a_store_path_that_cannot_be_written_is_one_line(workdir):
    blocker = write(workdir / "file", "x")
    sweep = write(workdir / "s.yaml", "method: grid\nparameters:\n  x: {values: [1]}\n")
    one_line_error(
        sweepkit("create", str(sweep), "--store", str(blocker / "s.db"), cwd=workdir), "cannot use"
    )


def test_a_program_that_does_not_exist_is_one_line(workdir):
    sweep_id = create(
        workdir, "program: nosuch.py\nmethod: grid\nparameters:\n  x: {values: [1]}\n"
    )
    one_line_error(sweepkit("agent", sweep_id, cwd=workdir), "program 'nosuch.py' does not exist")
    assert status(workdir, sweep_id)["runs"] == []  # nothing claimed


@pytest.mark.slow
def test_a_function_beside_the_users_files_imports_as_under_python_m(workdir):
    write(
        workdir / "train_wine.py",
        "import wandb\n\ndef train():\n    with wandb.init() as run:\n"
        "        run.log({'loss': run.config['x']})\n",
    )
    sweep_id = create(workdir, "method: grid\nparameters:\n  x: {values: [1.0, 2.0]}\n")
    result = sweepkit("agent", sweep_id, "--function", "train_wine:train", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert status(workdir, sweep_id)["counts"] == {"finished": 2}


def test_a_wandb_server_out_of_reach_is_said_at_once(workdir, monkeypatch):
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now: connections are refused
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{port}")
    sweep = write(workdir / "s.yaml", "method: grid\nparameters:\n  x: {values: [1]}\n")
    # wandb itself retries such a server for minutes; the timeout turns that into a failure.
    result = sweepkit("create", str(sweep), "--backend", "wandb", cwd=workdir, timeout=120)
    one_line_error(result, f"cannot reach the W&B server http://127.0.0.1:{port}")
    assert "--backend local" in result.stderr and "retrying" not in result.stderr
    assert store_digest(workdir) is None
