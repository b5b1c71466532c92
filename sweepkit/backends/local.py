"""The embedded local backend: sweep state in a store (a SQLite file or a PostgreSQL database),
runs chosen by W&B's `sweeps` engine."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sweepkit.backends.base import (
    AgentOptions,
    AgentResult,
    Backend,
    RunDetails,
    UnknownSweepError,
)
from sweepkit.backends.store import (
    Store,
    default_store_location,
    open_store,
    redacted,
    store_exists,
)
from sweepkit.core.lifecycle import CRASH_GRACE_S
from sweepkit.core.records import RunRecord, StoredSweep, SweepInfo
from sweepkit.errors import SweepkitError


class LocalBackend(Backend):
    """Sweeps in a store (a SQLite file on this machine, or PostgreSQL for many machines); runs
    logged to wandb offline folders."""

    name = "local"

    def __init__(self, store: str | Path | None = None) -> None:
        self.store_location = str(store) if store else default_store_location()
        self._store: Store | None = None

    @property
    def store_label(self) -> str:
        """Where the store is, for messages (a URL's password hidden); opens nothing."""
        return redacted(self.store_location)

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = open_store(self.store_location)
        return self._store

    def create(
        self,
        config: dict[str, Any],
        *,
        project: str | None = None,
        entity: str | None = None,
        name: str | None = None,
    ) -> str:
        # As `wandb sweep`: --project/--entity (or WANDB_PROJECT/WANDB_ENTITY), else the YAML's.
        return self.store.create_sweep(config, name=name, project=project, entity=entity)

    def agent(
        self,
        sweep_id: str,
        *,
        function: str | Callable[[], Any] | None = None,  # a function too: `sweepkit.agent`
        count: int | None = None,
        options: AgentOptions | None = None,
    ) -> AgentResult:
        from sweepkit.runner.loop import run_agent  # imports wandb: only for commands that run

        state = self._existing(sweep_id).state
        if state in ("finished", "canceled", "stopped"):
            hint = (
                f"`sweepkit resume {sweep_id}` to go on"
                if state == "stopped"
                else "create a new sweep"
            )
            raise SweepkitError(f"sweep {sweep_id} is {state}: it hands out no more runs ({hint})")
        return run_agent(
            self.store, sweep_id, function=function, count=count, options=options,
            sweep_info=lambda: self.sweep(sweep_id),
        )  # fmt: skip

    def run_details(self, sweep_id: str, run_ids: list[str]) -> dict[str, RunDetails]:
        from sweepkit.views.details import read_details  # wandb's records: only for a report

        info = self.sweep(sweep_id)
        runs = {r.id: r for r in info.runs}
        details = {}
        kept: dict[str, list[float]] | None = None
        for run_id in run_ids:
            folder = runs[run_id].location
            if folder and not Path(folder).is_dir():  # logged on a machine this one cannot see
                if kept is None:
                    kept = self.store.metric_points(sweep_id)
                details[run_id] = RunDetails(
                    history=[{info.metric_name: v} for v in kept.get(run_id, [])],
                    elsewhere=runs[run_id].host or "another machine",
                )
                continue
            run_file = next(Path(folder).glob("run-*.wandb"), None) if folder else None
            details[run_id] = read_details(run_file) if run_file else RunDetails(history=[])
        return details

    def control(self, sweep_id: str, command: str, *, crash_grace_s: float = CRASH_GRACE_S) -> str:
        self._existing(sweep_id)
        state = self.store.change_sweep_state(sweep_id, command)
        # A stopped or canceled sweep has no claims: its runs whose agents died are reaped here.
        from sweepkit.runner.reaper import reap  # reads run logs (wandb's records)

        reap(self.store, sweep_id, crash_grace_s)
        return state

    def sweep(self, sweep_id: str) -> SweepInfo:
        row = self._existing(sweep_id)
        metric = (row.config.get("metric") or {}).get("name")
        runs = [
            RunRecord(
                id=r.id,
                state=r.state,
                config={k: v.get("value") for k, v in r.config.items()},
                metric=r.metric_value if metric else None,
                runtime=(r.ended_at or r.heartbeat_at) - r.created_at,
                location=r.run_dir,
                name=r.name,
                error=r.error,
                log_file=r.log_file,
                agent=r.agent,
                host=r.host,
                retry_of=r.retry_of,
            )
            for r in self.store.runs(sweep_id)
        ]
        return SweepInfo(sweep_id, self.name, row.config, row.state, runs, name=row.name)

    def sweeps(self) -> list[SweepInfo]:
        """Every sweep in the store, oldest first (`sweepkit status` with no id)."""
        if not store_exists(self.store_location):
            return []
        return [self.sweep(row.id) for row in self.store.sweeps()]

    def _existing(self, sweep_id: str) -> StoredSweep:
        if not store_exists(self.store_location):
            raise UnknownSweepError(
                f"unknown sweep {sweep_id}: there is no store at {self.store_label} (--store / SWEEPKIT_STORE)"
            )
        row = self.store.sweep(sweep_id)
        if row is None:
            raise UnknownSweepError(
                f"unknown sweep {sweep_id} in {self.store.location}; `sweepkit create` prints the ids"
            )
        return row
