"""Real W&B sweep YAMLs: accepted as W&B accepts them, run as `wandb agent` runs them.

Each config is in the shape users write (W&B's examples and courses, research
repositories); the corpus at the end is real configs collected from public
repositories (`tests/sweep_corpus/README.md` names their sources).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sweepkit.cli import main
from sweepkit.config import read_yaml
from sweepkit.errors import ConfigError
from tests.helpers.cli import REPO, create, one_line_error, status, sweepkit, write
from tests.helpers.wandb_disk import run_summary

CORPUS = sorted((REPO / "tests" / "sweep_corpus").glob("*.yaml"))

# A program that logs its parameters: from --x=... flags, or from the JSON file it is given.
LOGS_ITS_ARGS = textwrap.dedent("""
    import json, sys, wandb

    args = sys.argv[1:]
    if args and args[0].endswith(".json"):
        params = json.load(open(args[0]))
    else:
        params = dict(a.lstrip("-").split("=", 1) for a in args)
    with wandb.init(config=params) as run:
        run.log({"loss": float(params["x"])})
""")


def finished_metrics(workdir: Path, sweep_id: str) -> list[tuple[str, float]]:
    return sorted((r["state"], r["metric"]) for r in status(workdir, sweep_id)["runs"])


def test_scientific_notation_without_a_dot_runs_as_numbers(workdir):
    sweep_id = create(
        workdir,
        "method: grid\nmetric: {name: loss}\nparameters:\n  x: {values: [1e-3, 2E+1]}\n",
    )
    result = sweepkit("agent", sweep_id, "-f", "tests.sweep_functions:quadratic", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert sorted(r["config"]["x"] for r in status(workdir, sweep_id)["runs"]) == [0.001, 20.0]


def validated(workdir: Path, yaml_text: str) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """`sweepkit validate` of a config it accepts (exit 0)."""
    path = write(workdir / "sweep.yaml", yaml_text)
    result = sweepkit("validate", str(path), cwd=workdir)
    assert result.returncode == 0, result.stderr
    return path, result


def test_a_config_the_engine_runs_with_violations_is_created_with_warnings(workdir):
    path, result = validated(
        workdir,
        "method: random\nmetric: {name: loss, goal: minimise}\n"
        "parameters:\n  lr: {distribution: log_uniform, min: -9.2, max: -4.6}\n",
    )
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 2 and "log_uniform_values" in warnings[0] + warnings[1]
    assert "ok, random sweep" in result.stdout
    created = sweepkit("create", str(path), cwd=workdir)
    assert created.returncode == 0 and created.stderr.count("warning: ") == 2, created.stderr


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("method: grid\nparameters:\n  img_size: {values: 256}\n", "values: must be a list"),
        ("method: random\nparameters:\n  lr: {min: '1e-5x', max: 0.01}\n", "is not of type"),
        ("method: random\njob: me/proj/job:v0\nparameters:\n  x: {values: [1]}\n", "Launch job"),
        ("command: [python, train.py, '${program}']\nmethod: grid\nparameters:\n  x: {values: [1]}\n",
         "uses ${program}, but the sweep names no program"),
    ],
)  # fmt: skip
def test_what_cannot_run_is_one_error_line_and_nothing_is_created(workdir, yaml_text, message):
    path = write(workdir / "sweep.yaml", yaml_text)
    for command in ("validate", "create"):
        result = sweepkit(command, str(path), cwd=workdir)
        assert result.returncode == 2, result.stderr
        assert message in result.stderr and "Traceback" not in result.stderr
    assert not (workdir / ".sweepkit").exists()  # no store, no sweep: nothing half-made


@pytest.mark.slow
def test_a_command_without_a_program_runs_the_command(workdir):
    (workdir / "mypkg").mkdir()
    (workdir / "mypkg" / "__init__.py").write_text("")
    (workdir / "mypkg" / "train.py").write_text(LOGS_ITS_ARGS)
    sweep_id = create(
        workdir,
        "command: ['${env}', '${interpreter}', -m, mypkg.train, '${args}']\n"
        "method: grid\nmetric: {name: loss}\nparameters:\n  x: {values: [1.5, 2.5]}\n",
    )
    result = sweepkit("agent", sweep_id, cwd=workdir)
    assert result.returncode == 0, result.stderr
    # Not sweepkit's own MNIST function: the command's runs, with their own metric.
    assert finished_metrics(workdir, sweep_id) == [("finished", 1.5), ("finished", 2.5)]


@pytest.mark.slow
def test_a_program_on_path_runs_through_env_and_a_program_left_unused_is_fine(workdir, monkeypatch):
    bin_dir = workdir / "bin"
    bin_dir.mkdir()
    script = bin_dir / "train-console"
    script.write_text(f"#!{sys.executable}\n{LOGS_ITS_ARGS}")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    on_path = create(
        workdir,
        "program: train-console\ncommand: ['${env}', '${program}', '${args}']\n"
        "method: grid\nmetric: {name: loss}\nparameters:\n  x: {values: [3.0]}\n",
    )
    unused = create(
        workdir,
        "program: not-a-file.py\ncommand: ['${env}', train-console, '${args}']\n"
        "method: grid\nmetric: {name: loss}\nparameters:\n  x: {values: [4.0]}\n",
    )
    for sweep_id, metric in ((on_path, 3.0), (unused, 4.0)):
        result = sweepkit("agent", sweep_id, cwd=workdir)
        assert result.returncode == 0, result.stderr
        assert finished_metrics(workdir, sweep_id) == [("finished", metric)]


@pytest.mark.slow
def test_args_json_file_holds_the_parameters_when_the_run_starts(workdir):
    (workdir / "train.py").write_text(LOGS_ITS_ARGS)
    sweep_id = create(
        workdir,
        "program: train.py\ncommand: ['${env}', '${interpreter}', '${program}', '${args_json_file}']\n"
        "method: grid\nmetric: {name: loss}\nparameters:\n  x: {values: [5.0]}\n  tag: {value: a b}\n",
    )
    result = sweepkit("agent", sweep_id, cwd=workdir)
    assert result.returncode == 0, result.stderr
    (run,) = status(workdir, sweep_id)["runs"]
    assert run["metric"] == 5.0
    assert run_summary(run["location"])["config"]["tag"] == "a b"  # read from the JSON file


def test_a_command_that_cannot_start_is_a_failed_run_counted_as_one(workdir):
    sweep_id = create(
        workdir,
        "command: [no-such-launcher, run, python, train.py, '${args}']\n"
        "method: grid\nparameters:\n  x: {values: [1, 2, 3]}\n",
    )
    result = sweepkit("agent", sweep_id, "--max-failures", "2", cwd=workdir)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "its command could not start" in result.stderr and "no-such-launcher" in result.stderr
    assert "giving up: 2 runs failed in a row" in result.stderr  # the failure policy counts them
    runs = status(workdir, sweep_id)["runs"]
    assert [r["state"] for r in runs] == ["failed", "failed"]  # none left `running`


def test_an_unknown_macro_is_a_warning(workdir):
    _, result = validated(
        workdir,
        "command: ['${env}', python, train.py, '${argz}']\nmethod: grid\n"
        "parameters:\n  x: {values: [1]}\n",
    )
    assert "${argz} is not a macro `wandb agent` knows" in result.stderr


def test_a_missing_program_is_still_one_line(workdir):
    sweep_id = create(
        workdir, "program: nosuch.py\nmethod: grid\nparameters:\n  x: {values: [1]}\n"
    )
    one_line_error(sweepkit("agent", sweep_id, cwd=workdir), "program 'nosuch.py' does not exist")


# The corpus: real configs from public repositories ------------------------------------------


def test_the_corpus_holds_real_configs_with_their_sources():
    assert len(CORPUS) >= 30
    readme = (REPO / "tests" / "sweep_corpus" / "README.md").read_text()
    for path in CORPUS:
        assert path.read_text().startswith("# source: https://github.com/"), path.name
        assert path.name in readme


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_validate_gives_every_real_config_a_verdict_the_engine_agrees_with(
    path, monkeypatch, capsys
):
    # The console script's own entry point, in this process (55 of them as processes: minutes).
    monkeypatch.setattr(sys, "argv", ["sweepkit", "validate", str(path)])
    with pytest.raises(SystemExit) as exited:
        main()
    output = capsys.readouterr()
    result = subprocess.CompletedProcess([], exited.value.code, output.out, output.err)
    assert "Traceback" not in result.stderr and result.returncode in (0, 2), result.stderr
    try:
        runnable = _engine_runs(read_yaml(path))
    except ConfigError:  # not YAML, or not a mapping: refused, in one line
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
        return
    if result.returncode == 0:
        assert runnable, "accepted, but the engine cannot run it"
    else:  # refused: the engine cannot run it, or it breaks a promise of sweepkit's own
        own = ("run_cap", "is empty", "Launch job", "${program}")
        assert not runnable or any(word in result.stderr for word in own), result.stderr


def _engine_runs(config: dict) -> bool:
    from sweepkit import engine

    try:
        engine.next_run(config, [])
        if "early_terminate" in config:
            engine.stop_runs(config, [])
    except Exception:
        return False
    return not (config.get("method") == "bayes" and "metric" not in config)
