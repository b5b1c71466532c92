"""W&B sweep scripts run unchanged: `sweepkit python SCRIPT`, and `sweepkit.sweep` / `sweepkit.agent`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import wandb

import sweepkit
from sweepkit.backends import UnknownSweepError
from sweepkit.errors import ConfigError
from sweepkit.script import run_script
from tests.helpers import fake_wandb
from tests.helpers.cli import sweepkit as sweepkit_command
from tests.helpers.processes import none_left, tagged_processes, wait_for_file
from tests.helpers.wandb_disk import history, logged_table, run_summary

# The shape of W&B's sweep tutorials: a dict config (nested and distribution parameters),
# wandb.sweep, wandb.agent(count=...), then code that reads what the runs left and prints it.
HEADER = """\
import argparse, json, os
import wandb

with open("top-level.txt", "a") as f:  # how many times this script's top level ran
    f.write(f"{os.getpid()}\\n")

sweep_config = {
    "method": "random",
    "metric": {"name": "loss", "goal": "minimize"},
    "parameters": {
        "optimizer": {"values": ["adam", "sgd"]},
        "learning_rate": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-1},
        "layers": {"parameters": {
            "width": {"values": [16, 32]},
            "depth": {"distribution": "int_uniform", "min": 1, "max": 3},
        }},
        "epochs": {"value": 2},
    },
}

def train(config=None):
    with wandb.init(config=config):
        config = wandb.config
        loss = config.learning_rate * config.layers["width"] * config.layers["depth"]
        for epoch in range(config.epochs):
            wandb.log({"loss": loss / (epoch + 1), "epoch": epoch})
        with open("results.jsonl", "a") as f:
            f.write(json.dumps({"run": wandb.run.id, "pid": os.getpid(),
                                "config": dict(config), "loss": loss / config.epochs}) + "\\n")
"""
MAIN = """\
parser = argparse.ArgumentParser()
parser.add_argument("--count", type=int)
parser.add_argument("-v", "--verbose", action="store_true")
args = parser.parse_args()
sweep_id = wandb.sweep(sweep_config, project="tutorial-shape")
wandb.agent(sweep_id, train, count=args.count)
rows = [json.loads(line) for line in open("results.jsonl")]
print(f"after the agent: {len(rows)} runs of {sweep_id}, verbose={args.verbose}")
print("best:", json.dumps(min(rows, key=lambda row: row["loss"])))
"""
SHAPES = {
    "no main guard": HEADER + MAIN,  # as W&B's tutorials and notebooks are written
    "main guard": HEADER + 'if __name__ == "__main__":\n' + textwrap.indent(MAIN, "    "),
}


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def results(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]


@pytest.mark.slow
@pytest.mark.parametrize("shape", list(SHAPES))
def test_a_tutorial_script_runs_offline_unchanged(workdir, monkeypatch, shape):
    monkeypatch.delenv("WANDB_MODE")  # and no credentials: sweepkit must choose offline itself
    write(workdir, "tutorial.py", SHAPES[shape])
    done = sweepkit_command("python", "tutorial.py", "--count", "3", "-v", cwd=workdir)
    assert done.returncode == 0, done.stderr
    assert "sweeps run on the local backend, runs log offline" in done.stderr
    # The code after wandb.agent ran, with the script's own arguments (dashes and all).
    after = done.stdout.splitlines()[-2]
    assert after.startswith("after the agent: 3 runs of local-") and after.endswith("verbose=True")
    sweep_id = after.split(" runs of ")[1].split(",")[0]
    # The top level ran once: nothing re-imported the script (a fork server would re-run it).
    (script_pid,) = (workdir / "top-level.txt").read_text().split()
    rows = {row["run"]: row for row in results(workdir)}
    pids = {row["pid"] for row in rows.values()}
    assert len(pids) == 3 and int(script_pid) not in pids  # each run its own process

    status = json.loads(sweepkit_command("status", sweep_id, "--json", cwd=workdir).stdout)
    assert status["counts"] == {"finished": 3}
    for run in status["runs"]:
        # What the engine chose (the store), what the function read from wandb.config, and
        # what its offline run recorded are one config.
        chosen = run["config"]
        assert rows[run["id"]]["config"] == chosen == run_summary(run["location"])["config"]
        assert chosen["epochs"] == 2 and chosen["optimizer"] in ("adam", "sgd")
        assert 1e-4 <= chosen["learning_rate"] <= 1e-1
        assert chosen["layers"]["width"] in (16, 32) and chosen["layers"]["depth"] in (1, 2, 3)
        assert run["metric"] == pytest.approx(rows[run["id"]]["loss"])
    report = sweepkit_command("report", sweep_id, cwd=workdir)
    assert report.returncode == 0, report.stderr
    assert sweep_id in Path(report.stdout.strip()).read_text()
    sync = sweepkit_command("sync", sweep_id, "--dry-run", cwd=workdir)
    assert "3 run(s) to upload, 0 already synced" in sync.stdout, sync.stderr


@pytest.fixture
def fake_w_and_b(workdir, monkeypatch):
    """W&B's server faked at wandb's boundary; the function runs it hands out log offline (there
    is no server to log to), in this process, and their wandb service ends with the test."""
    monkeypatch.delenv("WANDB_MODE")
    server = fake_wandb.install(monkeypatch)
    serve_runs = wandb.agent

    def agent_logging_offline(*args, **kwargs):
        monkeypatch.setenv("WANDB_MODE", "offline")
        return serve_runs(*args, **kwargs)

    monkeypatch.setattr(wandb, "agent", agent_logging_offline)
    yield server
    wandb.teardown()  # before `workdir` ends every process this test started


def test_with_credentials_the_script_reaches_wandb_with_its_own_arguments(workdir, fake_w_and_b):
    server, faked_agent = fake_w_and_b, wandb.agent
    script = write(workdir, "tutorial.py", SHAPES["no main guard"])
    assert run_script(script, ["--count", "2"]) == 0
    (sweep_call, agent_call) = [c for c in server.calls if c[0] in ("sweep", "agent")]
    assert sweep_call[2] == {"entity": None, "project": "tutorial-shape"}
    assert sweep_call[1][0]["parameters"]["layers"]["parameters"]["depth"]["max"] == 3
    assert agent_call[1] == ("swp00000",)
    function = agent_call[2].pop("function")
    assert (function.__module__, function.__name__) == ("__main__", "train")  # the script's
    assert agent_call[2] == {"entity": None, "project": None, "count": 2}
    assert [run.state for run in server.sweeps["swp00000"].runs] == ["finished", "finished"]
    assert not (workdir / ".sweepkit").exists()  # nothing went to the local store
    assert wandb.agent is faked_agent  # and wandb is given back as it was


def test_sweepkit_python_runs_a_script_as_python_does(workdir):
    write(
        workdir,
        "echo.py",
        """
        import json, os, sys
        print(json.dumps({"name": __name__, "argv": sys.argv[1:], "path0": sys.path[0]}))
        sys.exit(3)
        """,
    )
    args = ["--help", "-h", "--", "--count=2", "x y"]
    for command in (["sweepkit"], [sys.executable, "-m", "sweepkit"]):  # the same command
        done = subprocess.run(
            [*command, "python", "echo.py", *args], cwd=workdir, capture_output=True, text=True
        )
        assert done.returncode == 3, done.stderr
        seen = json.loads(done.stdout)
        assert seen == {"name": "__main__", "argv": args, "path0": str(workdir.resolve())}


def test_a_script_that_raises_shows_the_traceback_python_shows(workdir):
    write(
        workdir,
        "boom.py",
        """
        def load(path):
            raise FileNotFoundError(f"no data at {path}")

        load("/data")
        """,
    )
    done = sweepkit_command("python", "boom.py", cwd=workdir)
    plain = subprocess.run([sys.executable, "boom.py"], cwd=workdir, capture_output=True, text=True)
    assert done.returncode == plain.returncode == 1
    assert done.stderr == plain.stderr  # from the script's own frame down, nothing of ours


@pytest.mark.parametrize(
    ("call", "code", "message"),
    [
        ('wandb.agent("local-nope1234", function=print)', 1,
         "error: unknown sweep local-nope1234: there is no store at .sweepkit/sweeps.db"),
        ('wandb.agent("abc123", function=print)', 1, "error: unknown sweep abc123: local sweep "
         "ids start with local-, and W&B is not in use here (no W&B credentials)"),
        ('wandb.sweep({"method": "grid", "parameters": {"x": {"min": 1, "max": 0}}})', 2,
         "error: sweep config: parameters.x: min 1 is not less than max 0"),
    ],
    ids=["unknown local id", "a W&B id offline", "a config the engine cannot run"],
)  # fmt: skip
def test_what_sweepkit_refuses_in_a_script_is_one_error_line(workdir, call, code, message):
    write(workdir, "bad.py", f"import wandb\n{call}\n")
    done = sweepkit_command("python", "bad.py", cwd=workdir)
    assert done.returncode == code and message in done.stderr
    assert "Traceback" not in done.stderr


def test_a_script_that_does_not_exist_is_one_error_line(workdir):
    done = sweepkit_command("python", "nope.py", "--count", "1", cwd=workdir)
    assert done.returncode == 2
    assert (
        done.stderr.strip()
        == "error: cannot run nope.py: no such file (give the path of a Python script)"
    )


def test_the_library_calls_refuse_unknown_ids_and_bad_configs(workdir):
    with pytest.raises(UnknownSweepError, match="unknown sweep local-nope1234"):
        sweepkit.agent("local-nope1234", function=print)
    with pytest.raises(ConfigError, match="is not less than max"):
        sweepkit.sweep({"method": "grid", "parameters": {"x": {"min": 1, "max": 0}}})
    with pytest.raises(ConfigError, match="prior_runs names runs on W&B"):
        sweepkit.sweep({"method": "grid", "parameters": {"x": {"values": [1]}}}, prior_runs=["a"])
    sweep_id = sweepkit.sweep({"method": "grid", "parameters": {"x": {"values": [1]}}})
    with pytest.raises(ConfigError, match="function must be callable"):
        sweepkit.agent(sweep_id, function="tests.sweep_functions:quadratic")


# A session's function: a closure over a list of the session's, read after the agent.
SESSION = """
import os, sweepkit, wandb
seen = []
def make(offset):
    def train():
        with wandb.init() as run:
            run.log({"loss": run.config.x + offset})
            seen.append(os.getpid())
    return train
sweep_id = sweepkit.sweep({"method": "grid", "metric": {"name": "loss"},
                           "parameters": {"x": {"values": [1, 2]}}})
sweepkit.agent(sweep_id, function=make(10))
print(sweep_id, os.getpid(), seen)
"""


@pytest.mark.parametrize("where", ["interactive session", "script"])
def test_a_function_that_cannot_be_imported_runs_in_process_only_in_a_session(workdir, where):
    # `python -` reads the session from stdin: its __main__ is no file, nothing to fork from.
    argv = [sys.executable, "-"] if where == "interactive session" else [sys.executable, "s.py"]
    write(workdir, "s.py", SESSION)
    done = subprocess.run(
        argv, input=SESSION, cwd=workdir, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    sweep_id, pid, seen = done.stdout.split(" ", 2)
    said = [line for line in done.stderr.splitlines() if "in-process" in line]
    if where == "interactive session":
        assert json.loads(seen) == [int(pid)] * 2  # in the session: it sees what runs did
        assert said == [
            "sweepkit: runs of make.<locals>.train go in-process, as W&B's function agent runs "
            "them: it was defined in this interactive session, which cannot be forked from "
            "safely (define it in a module, or run a script, to give each run its own process)"
        ]
    else:
        assert (
            json.loads(seen) == [] and said == []
        )  # each run forked: the script's list is its own
    status = json.loads(sweepkit_command("status", sweep_id, "--json", cwd=workdir).stdout)
    assert [(r["config"]["x"], r["state"], r["metric"]) for r in status["runs"]] == [
        (1, "finished", 11), (2, "finished", 12)
    ]  # fmt: skip


@pytest.mark.slow
def test_a_run_forked_from_a_script_dies_with_it_even_when_it_ignores_sigterm(workdir):
    write(
        workdir,
        "clings.py",
        """
        import wandb
        from tests.sweep_functions import clings_on

        sweep_id = wandb.sweep({"method": "grid", "parameters": {"x": {"values": [1]}}})
        wandb.agent(sweep_id, clings_on)
        """,
    )
    script = subprocess.Popen(
        ["sweepkit", "python", "clings.py"], cwd=workdir, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    wait_for_file(workdir / "pids-1.txt", script)
    assert len(tagged_processes()) > 3  # the script, its guard, the run and its two children
    script.send_signal(signal.SIGKILL)
    script.communicate()
    # The guard saw its pipe close although the run (a fork of the script) ignores SIGTERM.
    assert none_left(40) == []


@pytest.mark.slow
def test_sigterm_ends_the_script_once_its_run_is_recorded_preempted(workdir):
    write(
        workdir,
        "long.py",
        """
        import time, wandb

        def train():
            with wandb.init() as run:
                run.log({"loss": 1.0})
                open("started", "w").close()
                while True:
                    time.sleep(0.2)

        sweep_id = wandb.sweep({"method": "grid", "parameters": {"x": {"values": [1, 2]}}})
        wandb.agent(sweep_id, train)
        print(sweep_id)
        open("after-the-agent", "w").close()
        """,
    )
    script = subprocess.Popen(
        ["sweepkit", "python", "long.py"], cwd=workdir, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    wait_for_file(workdir / "started", script)
    script.send_signal(signal.SIGTERM)  # a preemption (SLURM, `docker stop`)
    _, err = script.communicate(timeout=120)
    assert script.returncode == 143, err
    assert not (workdir / "after-the-agent").exists()  # the script stopped, as under W&B
    (sweep,) = json.loads(sweepkit_command("status", "--json", cwd=workdir).stdout)
    assert sweep["counts"] == {"preempted": 1}  # its point is offered again


def test_import_sweepkit_does_not_import_wandb():
    code = "import sys, sweepkit; print('wandb' in sys.modules, callable(sweepkit.agent))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.split() == ["False", "True"], done.stderr
    # With the run loop loaded too, `sweepkit.agent` is still the function.
    loaded = "import sweepkit, sweepkit.runner.loop; print(sweepkit.agent.__module__)"
    assert subprocess.run([sys.executable, "-c", loaded], capture_output=True, text=True,
                          env={**os.environ}).stdout.strip() == "sweepkit.api"  # fmt: skip


SEED_COLUMNS = ["id", "image", "guess", "truth", *[f"score_{d}" for d in range(10)]]


@pytest.mark.slow
def test_the_seed_notebook_wrapped_as_w_and_b_wraps_it_runs_as_a_4_run_sweep(workdir, monkeypatch):
    monkeypatch.delenv("WANDB_MODE")
    example = Path(__file__).resolve().parent.parent / "examples" / "tables_quickstart_sweep.py"
    done = sweepkit_command(
        "python", str(example), "--train-images", "256", "--test-images", "128", cwd=workdir
    )
    assert done.returncode == 0, done.stderr
    sweep_id = done.stdout.strip().splitlines()[-1].split()[1].rstrip(":")
    status = json.loads(sweepkit_command("status", sweep_id, "--json", cwd=workdir).stdout)
    assert status["counts"] == {"finished": 4}
    grid = {(r["config"]["lr"], r["config"]["l1_size"]) for r in status["runs"]}
    assert grid == {(0.001, 16), (0.001, 32), (0.003, 16), (0.003, 32)}
    for run in status["runs"]:
        folder = run["location"]
        logged = run_summary(folder)
        assert logged["config"]["lr"] == run["config"]["lr"] and logged["config"]["img_count"] == 16
        rows = history(folder)
        assert sum("loss" in row for row in rows) == 256 // 32  # one per training step
        (acc,) = [row["acc"] for row in rows if "acc" in row]
        assert 0 <= acc <= 100 and run["metric"] == pytest.approx(acc)  # what the sweep ranks by
        table = logged_table(folder, "test_predictions")
        assert table["columns"] == SEED_COLUMNS and len(table["data"]) == 2 * 8
        image = table["data"][0][1]
        assert image["_type"] == "image-file" and Path(table["files"][image["path"]]).is_file()
        assert all(sum(row[4:]) == pytest.approx(1.0, abs=1e-4) for row in table["data"])
