"""A program sweep's command line: each of W&B's macros, as `wandb agent` expands it."""

from __future__ import annotations

import json
import sys

import pytest

from sweepkit.program import build_command

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
