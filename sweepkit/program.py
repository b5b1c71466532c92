"""The command line of a program sweep's run, built exactly as `wandb agent` builds it.

W&B's own helpers expand the argument macros (`create_sweep_command_args`) and
`${envvar:NAME}` (`create_sweep_command`); the assembly below mirrors
`wandb.wandb_agent.Agent._command_run`, which keeps it inside a method.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

from wandb.sdk.launch.sweeps import utils as sweep_utils

from sweepkit.errors import ConfigError

DEFAULT_COMMAND = ["${env}", "${interpreter}", "${program}", "${args}"]


def runs_a_command(sweep_config: dict[str, Any], function: str | None) -> bool:
    """Whether runs are the sweep's command (its `program` and/or `command`) rather than a
    function: as under `wandb agent`, a sweep with either runs a process per run."""
    return function is None and ("program" in sweep_config or "command" in sweep_config)


def command_of(sweep_config: dict[str, Any]) -> list[str]:
    """The sweep's command, its ``${envvar:NAME}`` expanded, or W&B's default."""
    return sweep_utils.create_sweep_command(list(sweep_config.get("command") or DEFAULT_COMMAND))


def check(sweep_config: dict[str, Any]) -> None:
    """Raise ConfigError if runs of this command could not start, before any does.

    A `program` is needed only if the command uses ``${program}``; then it is
    a file (relative to the working directory) or, as `${env} ${program}` finds
    it under `wandb agent`, a command on PATH.
    """
    if missing := missing_program(sweep_config):
        raise ConfigError(missing)
    if "${program}" not in map(str, command_of(sweep_config)):
        return
    program = sweep_config["program"]
    if not Path(program).is_file() and shutil.which(str(program)) is None:
        raise ConfigError(
            f"program {program!r} does not exist: not a file (relative to {os.getcwd()}) "
            "nor a command on PATH"
        )


def unknown_macros(sweep_config: dict[str, Any]) -> list[str]:
    """Macros in the command that `wandb agent` does not know: they expand to nothing.

    >>> unknown_macros({"command": ["${env}", "python", "${args}", "${arg}"]})
    ['${arg}']
    """
    known = {*sweep_utils.create_sweep_command_args({"args": {}}), *_AGENT_MACROS}
    return [
        chunk
        for chunk in map(str, sweep_config.get("command") or [])
        if chunk.startswith("${")
        and chunk.endswith("}")
        and chunk[2:-1] not in known
        and not chunk.startswith("${envvar:")
    ]


# The macros `wandb agent` fills itself (`_command_run`), beside its helper's argument forms.
_AGENT_MACROS = ("env", "interpreter", "program", "args_json_file")


def missing_program(sweep_config: dict[str, Any]) -> str | None:
    """What is wrong, if the command uses ``${program}`` and the sweep names none.

    >>> missing_program({"command": ["python", "${program}"]})[:40]
    "the sweep's command uses ${program}, but"
    """
    if "${program}" in map(str, sweep_config.get("command") or []) and not sweep_config.get(
        "program"
    ):
        return (
            "the sweep's command uses ${program}, but the sweep names no program: add program: "
            "(e.g. program: train.py) or drop ${program} from command:"
        )
    return None


def args_json(run_config: dict[str, Any]) -> str:
    """The run's parameters as `${args_json}` gives them, which W&B's agent also writes to
    the file `${args_json_file}` names."""
    return str(sweep_utils.create_sweep_command_args({"args": run_config})["args_json"][0])


def build_command(
    sweep_config: dict[str, Any], run_config: dict[str, Any], args_json_file: str | Path
) -> list[str]:
    """argv for one run of a program sweep.

    Args:
        sweep_config: the sweep YAML (its `program` and optional `command`).
        run_config: the run's parameters as the engine gives them, ``{name: {"value": v}}``.
        args_json_file: where `${args_json_file}` points (the caller writes `args_json` there).

    >>> build_command({"program": "train.py", "command": ["${interpreter}", "${program}", "${args_no_boolean_flags}"]},
    ...               {"lr": {"value": 0.1}, "amp": {"value": False}, "ema": {"value": True}}, "a.json")[1:]
    ['train.py', '--lr=0.1', '--ema']
    """
    command = command_of(sweep_config)
    macros: dict[str, list[str]] = sweep_utils.create_sweep_command_args({"args": run_config})
    # wandb writes the literal "python"; the agent's own interpreter is the one that has the user's packages.
    macros["interpreter"] = [sys.executable]
    macros["program"] = [str(sweep_config["program"])] if "program" in sweep_config else []
    macros["args_json_file"] = [str(args_json_file)]
    macros["env"] = ["/usr/bin/env"]
    argv: list[str] = []
    for chunk in map(str, command):
        if chunk.startswith("${") and chunk.endswith("}"):
            argv += macros.get(chunk[2:-1]) or []
        else:
            argv.append(chunk)
    return argv
