"""`sweepkit.sweep` and `sweepkit.agent`: `wandb.sweep` and `wandb.agent`, offline when W&B is not
in use.

With W&B credentials (and WANDB_MODE not offline) both hand their arguments, as
given, to wandb's own functions. Without, `sweep` registers the config in the
local store and `agent` runs it with the local agent (`sweepkit.agent`), every
run a real offline wandb run. A sweep id names its backend (``local-...``), so
`agent` follows the id, as `sweepkit agent` does. wandb is imported only when
one of them is called: `import sweepkit` stays cheap.

    >>> import sweepkit                                              # doctest: +SKIP
    >>> sweep_id = sweepkit.sweep(sweep_config, project="mnist")     # doctest: +SKIP
    >>> sweepkit.agent(sweep_id, function=train, count=5)            # doctest: +SKIP
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from sweepkit.errors import ConfigError
from sweepkit.log import note

# wandb's own sweep/agent, while `sweepkit.script` has put ours in their place.
wandb_originals: dict[str, Callable[..., Any]] = {}


def sweep(
    sweep: dict[str, Any] | Callable[[], dict[str, Any]],
    entity: str | None = None,
    project: str | None = None,
    prior_runs: list[str] | None = None,
) -> str:
    """Create a sweep, as `wandb.sweep` does: on W&B when it is in use, else in the local store.

    Args:
        sweep: the sweep config (the dict a sweep YAML holds), or a callable returning it.
        entity: W&B entity of the runs (default: $WANDB_ENTITY, then the config's).
        project: the runs' project (default: $WANDB_PROJECT, then the config's); offline runs
            carry it, and `sweepkit sync` uploads them there.
        prior_runs: ids of W&B runs to seed the sweep with (W&B only).

    Returns:
        The sweep id: W&B's, or ``local-...``.

    Raises:
        ConfigError: the sweeps engine cannot run the config (every problem, one per line), or
            prior_runs without W&B.
    """
    from sweepkit.credentials import use_wandb_server

    if use_wandb_server():
        return _wandb("sweep")(sweep, entity=entity, project=project, prior_runs=prior_runs)
    config = _checked(sweep() if callable(sweep) else sweep)
    if prior_runs:
        raise ConfigError(
            "prior_runs names runs on W&B, and W&B is not in use here; `sweepkit sync` uploads "
            "a local sweep's runs and seeds a W&B sweep with them"
        )
    from sweepkit.backends.local import LocalBackend

    sweep_id = LocalBackend().create(
        config,
        project=project or os.environ.get("WANDB_PROJECT"),
        entity=entity or os.environ.get("WANDB_ENTITY"),
    )
    note(f"sweep {sweep_id} created on the local backend ({_why_local()})")
    return sweep_id


def agent(
    sweep_id: str,
    function: Callable[[], Any] | None = None,
    entity: str | None = None,
    project: str | None = None,
    count: int | None = None,
) -> None:
    """Run runs of a sweep, as `wandb.agent` does, then return (the script goes on).

    A ``local-...`` id runs on the local agent: each run of `function` is its own process
    (forked from this script; in-process from an interactive session whose function no
    other process can import, said in one line), logging a real offline wandb run. Any
    other id is W&B's, handed to `wandb.agent` with these arguments.

    Args:
        sweep_id: the id `sweep` returned.
        function: what each run calls (W&B's function-agent contract: it calls wandb.init
            and reads wandb.config); None runs the sweep's program, or sweepkit's train.
        entity, project: where W&B finds the sweep (a local id needs neither).
        count: the most runs this agent performs (default: until the sweep is done).

    Raises:
        UnknownSweepError: no such local sweep, or a W&B id while W&B is not in use.
        ConfigError: `function` is not callable.
    """
    from sweepkit.backends.store import LOCAL_PREFIX
    from sweepkit.credentials import use_wandb_server

    if not sweep_id.startswith(LOCAL_PREFIX):
        if use_wandb_server():
            return _wandb("agent")(
                sweep_id, function=function, entity=entity, project=project, count=count
            )
        from sweepkit.backends import UnknownSweepError

        raise UnknownSweepError(
            f"unknown sweep {sweep_id}: local sweep ids start with {LOCAL_PREFIX}, and W&B is "
            f"not in use here ({_why_local()}); `sweepkit status` lists the local sweeps"
        )
    if function is not None and not callable(function):
        raise ConfigError(
            f"function must be callable (W&B's function agent calls it), got {function!r}"
        )
    from sweepkit.backends.base import DEFAULT_FUNCTION
    from sweepkit.backends.local import LocalBackend
    from sweepkit.launch import AgentLaunch, start
    from sweepkit.program import runs_a_command
    from sweepkit.runner.target import resolve_function

    backend = LocalBackend()
    if function is None and not runs_a_command(backend.sweep(sweep_id).config, None):
        # As a function, so that its runs fork from this script like any other (`place`).
        function = resolve_function(DEFAULT_FUNCTION)
    code = start(backend, sweep_id, AgentLaunch(function=function, count=count), store=None)
    if code == 143:  # SIGTERM (preemption): the script stops, as it would under W&B
        sys.exit(code)
    return None  # as wandb.agent: failed runs are said and recorded, and the script goes on


def _checked(config: Any) -> dict[str, Any]:
    """The config as the store keeps it (read back from its JSON), once checked: refuse what
    the engine cannot run; say every other violation, as W&B says it."""
    import json

    from sweepkit import jsondata
    from sweepkit.config import check

    if not isinstance(config, dict):
        raise ConfigError(
            f"a sweep config is a dict (method, parameters, ...), not {type(config).__name__}"
        )
    if problems := jsondata.problems(config):
        raise ConfigError("\n".join(f"sweep config: {problem}" for problem in problems))
    config = json.loads(jsondata.dumps(config))
    findings = check(config)
    if findings.errors:
        raise ConfigError("\n".join(f"sweep config: {problem}" for problem in findings.errors))
    for warning in findings.warnings:
        print(f"warning: sweep config: {warning} (W&B warns and runs it; so does sweepkit)",
              file=sys.stderr)  # fmt: skip
    return config


def _why_local() -> str:
    from sweepkit.credentials import wandb_credentials_configured

    return "WANDB_MODE is offline" if wandb_credentials_configured() else "no W&B credentials"


def _wandb(name: str) -> Callable[..., Any]:
    """wandb's own `sweep` or `agent`, also while `sweepkit python` has ours in their place."""
    if name in wandb_originals:
        return wandb_originals[name]
    import wandb

    return getattr(wandb, name)
