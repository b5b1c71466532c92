"""What a run executes, and whether it can start here: a sweep's program, or a function.

A function is ``module:attr`` (the CLI) or a callable handed over from Python
(`sweepkit.agent`, or `wandb.agent` under `sweepkit python`); `place` says how its runs
start (`sweepkit.runner.process`). `check_runnable` fails before any run starts when runs
could not start here: a missing program, a function that does not import.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from typing import Any

from sweepkit import program
from sweepkit.backends.base import DEFAULT_FUNCTION
from sweepkit.errors import ConfigError


def resolve_function(ref: str) -> Callable[..., Any]:
    """Import ``module:attr`` and check that it is callable.

    Raises:
        ConfigError: the reference is malformed, does not import, or is not callable.
    """
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"--function takes module:attr (e.g. mypkg.train:main), got {ref!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"--function {ref}: cannot import {module_name}: {exc}") from exc
    target: Any = module
    for part in attr.split("."):
        target = getattr(target, part, None)
    if not callable(target):
        raise ConfigError(f"--function {ref}: {attr} is not a callable in {module_name}")
    return target


def check_runnable(sweep_config: dict[str, Any], function: str | Callable[..., Any] | None) -> None:
    """Fail before any run starts if runs could not start here.

    Raises:
        ConfigError: the sweep's command needs a program that does not exist
            (when no --function replaces it), or the function does not import.
    """
    if program.runs_a_command(sweep_config, function):
        program.check(sweep_config)
        return
    if not callable(function):
        resolve_function(function or DEFAULT_FUNCTION)


# How a function's runs start (`place`; docs/sweeps.md, "W&B sweep scripts and notebooks").
FORKSERVER, FORK, IN_PROCESS = "forkserver", "fork", "in-process"
Function = str | Callable[[], Any]  # module:attr, or a function handed over from Python


def place(function: Function) -> tuple[str, Function]:
    """How a function's runs are started, and what the child is given to call.

    - ``module:attr`` (the CLI): forked from the warm fork server, which imports the module.
    - A function passed from a script (`sweepkit.agent`, or `wandb.agent` under `sweepkit
      python`): forked from the script's own process, which already holds it. Nothing is
      imported again, so a script needs no `if __name__ == "__main__":` guard (the fork
      server would re-run a guardless script's top level, `wandb.agent` and all), and
      lambdas and closures are isolated too.
    - A function passed from an interactive session (a REPL, IPython, Jupyter, `python -c`):
      from the fork server if a fresh process can import it; else in this process, as W&B's
      function agent runs every function. A session is not forked from: a kernel has
      threads of its own, and a CUDA context made in an earlier cell does not survive a fork.
    """
    if isinstance(function, str):
        return FORKSERVER, function
    if not _interactive_session():
        return FORK, function
    ref = importable_reference(function)
    return (FORKSERVER, ref) if ref else (IN_PROCESS, function)


def _interactive_session() -> bool:
    """Whether this process is a session rather than a script: its __main__ is no file (a
    REPL, `python -c`, `python -` reading stdin), or it is IPython's."""
    ipython = sys.modules.get("IPython")
    if ipython is not None and getattr(ipython, "get_ipython", lambda: None)() is not None:
        return True
    main_file = getattr(sys.modules["__main__"], "__file__", None)
    return main_file is None or not os.path.isfile(main_file)


def importable_reference(function: Callable[..., Any]) -> str | None:
    """``module:qualname`` if a fresh process imports this very function that way, else None
    (defined in __main__, a lambda, a closure).

    >>> importable_reference(importable_reference)
    'sweepkit.runner.target:importable_reference'
    >>> importable_reference(lambda: None) is None
    True
    """
    module, qualname = getattr(function, "__module__", None), getattr(function, "__qualname__", "")
    if not module or module in ("__main__", "__mp_main__") or "<" in qualname:
        return None
    ref = f"{module}:{qualname}"
    try:
        return ref if resolve_function(ref) is function else None
    except ConfigError:
        return None
