"""The store's contract: what every kind of sweep store keeps and how it may change.

A store is only storage (as Optuna's `storages/_base.py` is): sweeps, their
runs and the runs' metric, as typed records. What to hand out next, when a
sweep is done, which run is offered again and which runs hyperband stops is
decided by `sweepkit.scheduling` on the records the store hands it, and a
run's life by `sweepkit.lifecycle`. One test suite runs over every kind
(tests/backends/test_store_contract.py): SQLite (one machine) and PostgreSQL
(any number of machines).
"""

from __future__ import annotations

import abc
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from sweepkit.backends.base import CRASH_GRACE_S, MAX_RETRIES
from sweepkit.errors import SweepkitError
from sweepkit.follow import MetricProgress

LOCAL_PREFIX = "local-"
KEEP_POINTS = 10_000  # per run, for hyperband; past them it sees the run's min, max and last
# Sweep states and the transitions `sweepkit stop|cancel|pause|resume` may make (W&B's own).
SWEEP_COMMANDS = {
    "stop": ("stopped", ("running", "paused")),  # no new runs; running runs finish
    "cancel": ("canceled", ("running", "paused")),  # no new runs; running runs are killed
    "pause": ("paused", ("running", "paused")),  # no new runs until resumed; agents wait
    "resume": ("running", ("paused", "stopped", "running")),
}


class StoreError(SweepkitError):
    """The store cannot be opened, is not a sweepkit store, or failed after opening."""


@dataclasses.dataclass(frozen=True)
class StoredSweep:
    """A sweep as the store keeps it."""

    id: str
    name: str | None
    project: str | None
    entity: str | None
    config: dict[str, Any]  # the sweep YAML
    state: str  # running, paused, stopped, canceled, finished
    created_at: float
    wandb_sweep: str | None = None  # the W&B sweep `sweepkit sync` last created from it

    @property
    def keeps_points(self) -> bool:
        """Whether its runs' first KEEP_POINTS metric points are kept (hyperband reads them)."""
        return "early_terminate" in self.config


@dataclasses.dataclass(frozen=True, slots=True)
class ScheduledRun:
    """What scheduling reads of a run: a claim loads this much of every run of the sweep, and
    no more (no metric history, no error text).

    `config` is parsed when read: only grid and bayes need the past runs' configs.
    """

    id: str  # the wandb run id
    state: str  # a sweepkit.lifecycle.RunState value
    config_json: str  # {"name": {"value": v}}, as the engine suggested it
    attempt: int  # 2+: the same config again, after a crash or a preemption
    retry_of: str | None  # the run whose point this one runs again
    ended_at: float | None
    metric_count: int  # points of the sweep metric logged
    metric_min: float | None
    metric_max: float | None
    metric_last: float | None
    metric_value: float | None  # the run's metric as W&B uses it (its summary)

    @property
    def config(self) -> dict[str, Any]:
        return json.loads(self.config_json)


@dataclasses.dataclass(frozen=True, slots=True)
class StoredRun(ScheduledRun):
    """A run as the store keeps it: what `status`, the report, `sync` and the reaper read."""

    name: str | None  # its readable name (wandb's run.name), e.g. quick-grid-3
    created_at: float
    heartbeat_at: float
    log_file: str | None  # where its agent sent its output
    wandb_dir: str | None  # its agent's WANDB_DIR: where the reaper looks for its folder
    agent: str | None  # the label of the agent that ran it
    host: str | None  # the machine it ran on
    run_dir: str | None  # its wandb run folder (on `host`)
    error: str | None
    summary_json: str  # its summary entry for the sweep metric
    synced_at: float | None  # when `sweepkit sync` uploaded its folder

    @property
    def summary(self) -> dict[str, Any]:
        return json.loads(self.summary_json)


@dataclasses.dataclass(frozen=True)
class ClaimedRun:
    """A run handed to an agent."""

    id: str  # the wandb run id
    display_name: str  # its readable name, as W&B's agent gives one: <sweep name>-<n>
    config: dict[str, Any]  # {"name": {"value": v}}, as the engine suggested it
    log_file: str | None  # where its output goes, if the agent asked for a file


class Store(abc.ABC):
    """Sweeps and their runs, shared by every agent of a sweep.

    Contract, for every kind (tests/backends/test_store_contract.py):

    - Every change is one transaction: it lands whole or not at all, whatever
      happens to the process or the connection in the middle.
    - `claim_run` is one transaction that holds the sweep (SQLite: the write
      lock; PostgreSQL: a row lock on the sweep) while the engine suggests
      the next config (random search's draw, which reads no runs, is made
      before: `scheduling.draw_ahead`), so no two agents, on any machines,
      get the same grid point, and `run_cap` holds exactly.
    - A beat or an end writes nothing of a run that has already ended.
    - A run ends once (`sweepkit.lifecycle.check_move`): the first end
      recorded, by its agent or by the reaper, stands.
    - A store keeps per run the metric's count, min, max and last and, for
      sweeps with `early_terminate`, its first KEEP_POINTS points: what it
      hands the engine does not grow with what a run logged.
    - Failures of the storage itself (a damaged file, a full disk, a server
      gone for longer than the store waits for it) raise StoreError with one
      line that says what to do. A networked store waits for its server to
      come back (with back-off, said in one line) before it gives up; a file
      store waits for the write lock another process holds (said in one line
      after a while). Either wait gives up within 0.1 s once `stop_waiting`
      says so.
    """

    location: str  # what the user gave: a file path, or a postgresql:// URL (password hidden)

    @staticmethod
    def stop_waiting() -> bool:
        """Whether a wait for a lost server or a held lock should end now (with StoreError);
        the agent sets its own, true once it got SIGTERM or Ctrl-C twice: a preempted agent has
        seconds, not the store's patience, before SIGKILL."""
        return False

    # Sweeps ---------------------------------------------------------------

    @abc.abstractmethod
    def create_sweep(
        self,
        config: dict[str, Any],
        *,
        name: str | None = None,
        project: str | None = None,
        entity: str | None = None,
    ) -> str:
        """Register a validated sweep config, in state ``running``.

        Args:
            config: the sweep YAML, already checked (`sweepkit.config`).
            name, project, entity: override the config's own keys.

        Returns:
            The new sweep's id, ``local-`` and 8 letters or digits.
        """

    @abc.abstractmethod
    def sweep(self, sweep_id: str) -> StoredSweep | None:
        """The sweep with that id, or None if this store has none."""

    @abc.abstractmethod
    def sweeps(self) -> list[StoredSweep]:
        """Every sweep in the store, oldest first."""

    @abc.abstractmethod
    def change_sweep_state(self, sweep_id: str, command: str) -> str:
        """Apply stop|cancel|pause|resume (`SWEEP_COMMANDS`).

        Returns:
            The sweep's new state.

        Raises:
            StoreError: the sweep is in a state the command cannot leave (resume a finished one).
        """

    @abc.abstractmethod
    def sweep_state(self, sweep_id: str) -> str:
        """The sweep's state (``running``, ``paused``, ...), read alone (the agent asks between
        heartbeats); the sweep must exist."""

    # Runs -----------------------------------------------------------------

    @abc.abstractmethod
    def claim_run(
        self,
        sweep_id: str,
        *,
        crash_grace_s: float = CRASH_GRACE_S,
        max_retries: int = MAX_RETRIES,
        log_dir: str | Path | None = None,
        agent: str = "",
        retry_ended_before: float | None = None,
        wandb_dir: str | Path | None = None,
    ) -> ClaimedRun | None:
        """Reserve the sweep's next run (`sweepkit.scheduling.choose`), in one transaction.

        First the reaper (`reap`). Then what scheduling chooses on the sweep's
        runs: a point offered again, or the engine's next suggestion, inserted
        as a ``running`` run; a sweep with nothing left is marked finished.

        Args:
            sweep_id: the sweep.
            crash_grace_s: for the reaper.
            max_retries: times a crashed point is offered again.
            log_dir: the run's output is to go to ``log_dir/<run id>.log``.
            agent: the claiming agent's label, kept with the run.
            retry_ended_before: also offer again points that failed or crashed
                for good before then (`--retry-failed`).
            wandb_dir: where the run's folder will be (for the reaper).

        Returns:
            The run, or None when the sweep hands out nothing now (not running,
            done, or only waiting on runs still going).
        """

    def prepare_claim(self, sweep_id: str) -> None:  # noqa: B027 (nothing to prepare by default)
        """Work out now, while the caller's run trains, what the sweep's next claim would
        otherwise compute while it holds the sweep (every other agent waiting): a grid's next
        points. Optional: a claim does without, at the cost of that wait."""

    @abc.abstractmethod
    def heartbeat(
        self,
        sweep_id: str,
        run_id: str,
        progress: MetricProgress | None = None,
        run_dir: str | None = None,
    ) -> None:
        """Record that a running run is alive, where its folder is, and the metric's new points
        (appended; nothing written before is written again).

        Raises:
            StoreError: the store failed (or, for a file, was deleted or replaced).
        """

    @abc.abstractmethod
    def finish_run(
        self,
        sweep_id: str,
        run_id: str,
        *,
        state: str,
        progress: MetricProgress | None,
        summary: dict[str, Any],
        run_dir: str | None,
        error: str | None = None,
        stale_before: float | None = None,
    ) -> bool:
        """Record how a running run ended, with the rest of its metric and its summary entry.

        Args:
            state: a terminal `RunState`.
            stale_before: (the reaper) only if its heartbeat is still older than this.

        Returns:
            False if its end was recorded already (the first end stands).

        Raises:
            InvalidMove: `state` is not an end of a run.
        """

    @abc.abstractmethod
    def runs(self, sweep_id: str) -> list[StoredRun]:
        """Every run of the sweep, in the order they were claimed."""

    @abc.abstractmethod
    def stale_runs(self, sweep_id: str, heartbeat_before: float) -> list[StoredRun]:
        """The sweep's running runs whose last heartbeat is older than `heartbeat_before`."""

    @abc.abstractmethod
    def metric_points(self, sweep_id: str) -> dict[str, list[float]]:
        """The kept metric points of the sweep's runs, in order: {run id: points}."""

    @abc.abstractmethod
    def mark_synced(self, sweep_id: str, run_ids: list[str], wandb_sweep: str | None) -> None:
        """Record that `sweepkit sync` uploaded these runs' folders (and the W&B sweep it made)."""

    def check_alive(self) -> None:  # noqa: B027 (a kind with nothing to check needs no override)
        """Raise StoreError if the store can no longer be written where it was opened (a file
        deleted or replaced under it). Called before every claim and heartbeat."""

    @abc.abstractmethod
    def close(self) -> None:
        """Let go of the store's file or connection."""

    # What every kind derives from the above --------------------------------

    def reap(self, sweep_id: str, crash_grace_s: float = CRASH_GRACE_S) -> list[tuple[str, str]]:
        """Record the end of every run whose agent died (no heartbeat for `crash_grace_s`).

        Each such run's own log decides (`lifecycle.judge_lost_run`): finished
        if it holds a clean exit, else crashed. The log is read outside any
        transaction; the end is written only if the run is still running with
        a stale heartbeat (an agent that came back, or another reaper, wins).

        Returns:
            (run id, state recorded) of the runs reaped here.
        """
        from sweepkit.lifecycle import judge_lost_run

        cutoff = time.time() - crash_grace_s
        stale = self.stale_runs(sweep_id, cutoff)
        sweep = self.sweep(sweep_id) if stale else None
        if sweep is None:
            return []
        metric = sweep.config.get("metric") or {}
        reaped = []
        for run in stale:
            verdict = judge_lost_run(
                run.wandb_dir, run.id, metric.get("name"), metric.get("goal", "minimize"),
                crash_grace_s,
            )  # fmt: skip
            if self.finish_run(
                sweep_id, run.id, state=verdict.state.value, progress=verdict.progress,
                summary={}, run_dir=verdict.run_dir, error=verdict.error, stale_before=cutoff,
            ):  # fmt: skip
                reaped.append((run.id, verdict.state.value))
        return reaped

    @abc.abstractmethod
    def has_running(self, sweep_id: str) -> bool:
        """Whether a run of the sweep is going (here or under another agent), without reading
        every run."""

    def unfinished_points(self, sweep_id: str, max_retries: int = MAX_RETRIES) -> dict[str, int]:
        """Points of the sweep that ended without a result and will not be offered again on
        their own: {"failed": n, "crashed": m} (crashed past `max_retries`)."""
        from sweepkit import scheduling

        return scheduling.unfinished_points(self.runs(sweep_id), max_retries)

    def runs_to_stop(self, sweep_id: str) -> set[str]:
        """Running runs that the sweep's early_terminate rule (hyperband) would stop now."""
        from sweepkit import scheduling

        sweep = self.sweep(sweep_id)
        if sweep is None or not scheduling.stops_runs(sweep.config):
            return set()
        return scheduling.runs_to_stop(
            sweep.config, self.runs(sweep_id), self.metric_points(sweep_id)
        )

    def unsynced_runs(self, sweep_id: str) -> list[tuple[str, str]]:
        """(run id, run folder) of ended runs whose folders `sweepkit sync` has not uploaded."""
        return [
            (run.id, run.run_dir)
            for run in self.runs(sweep_id)
            if run.synced_at is None and run.run_dir is not None and run.state != "running"
        ]

    def synced_run_ids(self, sweep_id: str) -> list[str]:
        """The runs `sweepkit sync` uploaded already, in claim order."""
        return [run.id for run in self.runs(sweep_id) if run.synced_at is not None]
