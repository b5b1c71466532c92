"""The W&B backend: sweep state on a W&B server (cloud or self-hosted), runs online.

Everything goes through wandb's public API: `wandb.sweep` registers,
`wandb.agent` runs (W&B's server picks each run), `wandb.Api().sweep` reads.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sweepkit.backends.base import (
    TABLE_KEYS,
    AgentOptions,
    AgentResult,
    Backend,
    RunDetails,
    UnknownSweepError,
)
from sweepkit.core.records import RunRecord, SweepInfo
from sweepkit.credentials import server_url, unreachable_reason, wandb_credentials_configured
from sweepkit.errors import ConfigError, SweepkitError
from sweepkit.log import note

T = TypeVar("T")


class WandbUnavailableError(SweepkitError):
    """No credentials, or the W&B server could not be reached."""


class WandbBackend(Backend):
    name = "wandb"

    def __init__(self) -> None:
        if not wandb_credentials_configured():
            raise WandbUnavailableError(
                "no W&B credentials: run `wandb login` or set WANDB_API_KEY, or use --backend local"
            )

    def create(
        self,
        config: dict[str, Any],
        *,
        project: str | None = None,
        entity: str | None = None,
        name: str | None = None,
        prior_runs: list[str] | None = None,
    ) -> str:
        """`wandb.sweep`; `prior_runs` (ids of runs already on W&B) seed it, as `sweepkit sync` does."""
        import wandb

        if name:
            config = {**config, "name": name}
        extra = {"prior_runs": prior_runs} if prior_runs else {}
        sweep_id = _call(
            "creating the sweep", wandb.sweep, config, entity=entity, project=project, **extra
        )
        # A full path resolves with no help from WANDB_ENTITY/WANDB_PROJECT on another machine.
        return f"{entity}/{project}/{sweep_id}" if entity and project else sweep_id

    def agent(
        self,
        sweep_id: str,
        *,
        function: str | None = None,
        count: int | None = None,
        options: AgentOptions | None = None,
    ) -> AgentResult:
        import wandb

        from sweepkit.backends.base import DEFAULT_FUNCTION
        from sweepkit.program import runs_a_command
        from sweepkit.runner.target import resolve_function

        # An unknown id fails here, with our message. W&B's agent prints its own lines and
        # runs in this process: options.label and options.log_dir have nothing to add.
        sweep = self.sweep(sweep_id)
        before = {r.id for r in sweep.runs}
        if runs_a_command(sweep.config, function):
            target = None  # wandb.agent runs the sweep's command itself
        else:
            target = resolve_function(function or DEFAULT_FUNCTION)
        options = options or AgentOptions()
        if options.run_timeout_s is not None:
            raise ConfigError(
                "--run-timeout needs the local backend: W&B's agent has no run timeout"
            )
        if options.retry_failed:
            raise ConfigError("--retry-failed needs the local backend: W&B's server picks runs")
        # W&B's server owns crash handling; its agent takes the failure limit.
        wandb.agent(
            sweep_id, function=target, count=count, max_consecutive_failed_runs=options.max_failures
        )
        new = [r for r in self.sweep(sweep_id).runs if r.id not in before]
        return AgentResult(
            performed=len(new), failed=sum(r.state in ("failed", "crashed") for r in new)
        )

    def control(self, sweep_id: str, command: str, *, crash_grace_s: float = 0.0) -> str:
        """The state change `wandb sweep --stop|--cancel|--pause|--resume` makes, through wandb's own helper."""
        import wandb
        from wandb.apis.public.sweeps import _set_sweep_state

        self.sweep(sweep_id)  # an unknown id fails with our message
        state = {"stop": "FINISHED", "cancel": "CANCELED", "pause": "PAUSED", "resume": "RUNNING"}[
            command
        ]
        entity, project, name = _split_path(sweep_id)
        try:
            _call(
                f"changing the sweep state ({command})",
                _set_sweep_state,
                wandb.Api(),
                name,
                state,
                entity=entity,
                project=project,
            )
        except WandbUnavailableError:
            raise
        except Exception as exc:  # wandb raises a bare Exception for a state it cannot leave
            raise SweepkitError(f"cannot {command} W&B sweep {sweep_id}: {exc}") from exc
        return state.lower()

    def run_details(self, sweep_id: str, run_ids: list[str]) -> dict[str, RunDetails]:
        """History through `Run.history`, tables by downloading the runs' run_table artifacts."""
        import tempfile

        import wandb

        from sweepkit.runlog import LoggedTable

        wanted = set(run_ids)
        remote = _call("reading the sweep", lambda: wandb.Api().sweep(sweep_id))
        download_root = Path(tempfile.mkdtemp(prefix="sweepkit-report-"))
        details = {}
        for run in remote.runs:
            if run.id not in wanted:
                continue
            history = _call("reading run history", run.history, pandas=False)
            tables: dict[str, list[LoggedTable]] = {key: [] for key in TABLE_KEYS}
            for artifact in _call("listing run artifacts", run.logged_artifacts):
                key = artifact.name.split(":")[0].removeprefix(f"run-{run.id}-")
                if artifact.type == "run_table" and key in tables:
                    folder = Path(
                        _call(
                            "downloading a table",
                            artifact.download,
                            root=str(download_root / artifact.name),
                        )
                    )
                    table = json.loads((folder / f"{key}.table.json").read_text())
                    files = {
                        str(p.relative_to(folder)): p for p in folder.rglob("*") if p.is_file()
                    }
                    tables[key].append(LoggedTable(table["columns"], table["data"], files))
            details[run.id] = RunDetails.from_tables(
                [{k: v for k, v in row.items() if _number(v) is not None} for row in history],
                tables,
            )
        return details

    def sweep(self, sweep_id: str) -> SweepInfo:
        import wandb

        try:
            remote = _call("reading the sweep", lambda: wandb.Api().sweep(sweep_id))
        except ValueError as exc:  # wandb's "Could not find sweep"
            raise UnknownSweepError(f"unknown W&B sweep {sweep_id}: {exc}") from exc
        metric = (remote.config.get("metric") or {}).get("name")
        runs = [
            RunRecord(
                id=run.id,
                state=run.state,
                config={k: v for k, v in run.config.items() if not k.startswith("_")},
                metric=_number(run.summary.get(metric)) if metric else None,
                runtime=_number(run.summary.get("_runtime")),
                location=run.url,
                name=run.name,
            )
            for run in remote.runs
        ]
        config = dict(remote.config)
        return SweepInfo(
            sweep_id, self.name, config, str(remote.state).lower(), runs, name=config.get("name")
        )


RETRY_DELAYS_S = (
    2.0,
    4.0,
    8.0,
    16.0,
)  # back-off between tries while W&B is unreachable or rate-limiting


def _call(what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call W&B, retrying with back-off on network errors and rate limits, then fail in one line.

    A server with no network path to it fails at once (wandb would retry it for minutes).
    """
    import requests
    import wandb

    _check_reachable(what)
    for attempt, delay in enumerate((*RETRY_DELAYS_S, None)):
        try:
            return fn(*args, **kwargs)
        except (wandb.errors.CommError, requests.ConnectionError, requests.Timeout) as exc:
            if delay is None:
                raise WandbUnavailableError(
                    f"W&B did not answer while {what} ({attempt + 1} tries): {exc}; "
                    "check the network and WANDB_BASE_URL, or use --backend local"
                ) from exc
            note(f"W&B did not answer while {what} ({exc}); retrying in {delay:g} s")
            time.sleep(delay)
    raise AssertionError("unreachable")


_reached: set[str] = set()  # servers a connection opened to, in this process


def _check_reachable(what: str) -> None:
    url = server_url()
    if url in _reached:
        return
    reason = unreachable_reason(url)
    if reason is not None:
        raise WandbUnavailableError(
            f"cannot reach the W&B server {url} while {what} ({reason}); check the network "
            "and WANDB_BASE_URL, or use --backend local to run offline"
        )
    _reached.add(url)


def _split_path(sweep_id: str) -> tuple[str | None, str | None, str]:
    """``entity/project/id``, ``project/id`` or ``id``."""
    parts = sweep_id.split("/")
    padded: list[str | None] = [None] * (3 - len(parts)) + list(parts)
    return padded[0], padded[1], str(padded[2])


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
