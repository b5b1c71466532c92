"""A program sweep's command line: each of W&B's macros, as `wandb agent` expands it."""

from __future__ import annotations

import json
import sys

import pytest

from sweepkit.errors import ConfigError
from sweepkit.program import (
    args_json,
    build_command,
    check,
    missing_program,
    runs_a_command,
    unknown_macros,
)

RUN = {"lr": {"value": 0.1}, "amp": {"value": False}, "name": {"value": "a b"}}
SWEEP = {"program": "train.py"}


@pytest.mark.parametrize(
    ("macro", "expected"),
    [
        ("${args}", ["--lr=0.1", "--amp=False", "--name=a b"]),
        ("${args_no_equals}", ["--lr", "0.1", "--amp", "False", "--name", "a b"]),
        ("${args_no_hyphens}", ["lr=0.1", "amp=False", "name=a b"]),
        ("${args_no_boolean_flags}", ["--lr=0.1", "--name=a b"]),
        ("${args_json}", [json.dumps({"lr": 0.1, "amp": False, "name": "a b"})]),
        ("${args_json_file}", ["/tmp/run/args.json"]),
        ("${args_append_hydra}", ["+lr=0.1", "+amp=False", "+name=a b"]),
        ("${args_override_hydra}", ["++lr=0.1", "++amp=False", "++name=a b"]),
    ],
)
def test_each_macro_expands_as_wandb_agent_expands_it(macro, expected):
    argv = build_command({**SWEEP, "command": ["${program}", macro]}, RUN, "/tmp/run/args.json")
    assert argv == ["train.py", *expected]


def test_the_default_command_is_env_then_the_agents_own_python(monkeypatch):
    # A `python` first on PATH is not the one with the user's packages: never a bare `python`.
    argv = build_command(SWEEP, {"lr": {"value": 0.1}}, "args.json")
    assert argv == ["/usr/bin/env", sys.executable, "train.py", "--lr=0.1"]


def test_envvar_macros_and_unknown_macros(monkeypatch):
    monkeypatch.setenv("DATA_ROOT", "/data")
    command = ["${interpreter}", "--root=${envvar:DATA_ROOT}", "${nosuch}", "${program}"]
    argv = build_command({**SWEEP, "command": command}, {}, "a.json")
    assert argv == [sys.executable, "--root=/data", "train.py"]  # unknown: nothing, as W&B


def test_args_json_is_the_runs_parameters_as_json():
    assert json.loads(args_json(RUN)) == {"lr": 0.1, "amp": False, "name": "a b"}
    assert args_json({}) == "{}"


def test_a_sweep_runs_its_command_only_without_a_function():
    assert runs_a_command({"program": "train.py"}, None)
    assert runs_a_command({"command": ["python", "-m", "train"]}, None)
    assert not runs_a_command({"program": "train.py"}, "pkg.mod:train")
    assert not runs_a_command({"method": "grid"}, None)


NO_PROGRAM = (
    "the sweep's command uses ${program}, but the sweep names no program: add program: "
    "(e.g. program: train.py) or drop ${program} from command:"
)


@pytest.mark.parametrize(
    ("sweep", "missing"),
    [
        ({"command": ["python", "${program}"]}, NO_PROGRAM),
        ({"command": ["python", "${program}"], "program": ""}, NO_PROGRAM),
        ({"command": ["python", "${program}"], "program": "train.py"}, None),
        ({"command": ["python", "-m", "train", "${args}"]}, None),
        ({}, None),  # the default command uses ${program}, but then the sweep is not a command
    ],
)
def test_a_command_using_program_needs_one(sweep, missing):
    assert missing_program(sweep) == missing


def test_check_refuses_a_program_that_cannot_start(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"^the sweep's command uses \$\{program\}"):
        check({"command": ["${program}"]})
    with pytest.raises(ConfigError) as refused:
        check({"program": "nosuch.py"})
    assert str(refused.value) == (
        f"program 'nosuch.py' does not exist: not a file (relative to {tmp_path}) "
        "nor a command on PATH"
    )
    (tmp_path / "train.py").write_text("")
    check({"program": "train.py"})  # a file
    check({"program": "true", "command": ["${env}", "${program}"]})  # a command on PATH
    check({"program": "nosuch.py", "command": ["python", "-m", "train"]})  # never used


def test_unknown_macros_are_whole_chunks_that_wandb_agent_does_not_fill():
    command = [
        "${env}", "${interpreter}", "${program}", "${args_json_file}", "${args}",
        "${args_no_hyphens}", "${envvar:HOME}", "--x=${args}", "${args", "${argz}", "${}",
    ]  # fmt: skip
    assert unknown_macros({"command": command}) == ["${argz}", "${}"]
    assert unknown_macros({}) == []


def test_a_command_without_a_program_and_literal_braces_are_kept():
    command = ["python", "-m", "train", "--cfg={a}", "{x}", "${args}"]
    argv = build_command({"command": command}, {"lr": {"value": 0.1}}, "a.json")
    assert argv == ["python", "-m", "train", "--cfg={a}", "{x}", "--lr=0.1"]
