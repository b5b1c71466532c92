"""The command line of a program sweep's run, built exactly as `wandb agent` builds it.

W&B's own helpers expand the argument macros (`create_sweep_command_args`) and
`${envvar:NAME}` (`create_sweep_command`); the assembly below mirrors
`wandb.wandb_agent.Agent._command_run`, which keeps it inside a method.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from wandb.sdk.launch.sweeps import utils as sweep_utils

DEFAULT_COMMAND = ["${env}", "${interpreter}", "${program}", "${args}"]


def build_command(
    sweep_config: dict[str, Any], run_config: dict[str, Any], args_json_file: str | Path
) -> list[str]:
    """argv for one run of a program sweep.

    Args:
        sweep_config: the sweep YAML (its `program` and optional `command`).
        run_config: the run's parameters as the engine gives them, ``{name: {"value": v}}``.
        args_json_file: where `${args_json_file}` points (the caller writes the file).

    >>> build_command({"program": "train.py", "command": ["${interpreter}", "${program}", "${args_no_boolean_flags}"]},
    ...               {"lr": {"value": 0.1}, "amp": {"value": False}, "ema": {"value": True}}, "a.json")[1:]
    ['train.py', '--lr=0.1', '--ema']
    """
    command = sweep_utils.create_sweep_command(list(sweep_config.get("command") or DEFAULT_COMMAND))
    macros: dict[str, list[str]] = sweep_utils.create_sweep_command_args({"args": run_config})
    # wandb writes the literal "python"; the agent's own interpreter is the one that has the user's packages.
    macros["interpreter"] = [sys.executable]
    macros["program"] = [str(sweep_config["program"])]
    macros["args_json_file"] = [str(args_json_file)]
    macros["env"] = ["/usr/bin/env"]
    argv: list[str] = []
    for chunk in map(str, command):
        if chunk.startswith("${") and chunk.endswith("}"):
            argv += macros.get(chunk[2:-1]) or []
        else:
            argv.append(chunk)
    return argv
