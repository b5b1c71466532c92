"""The store's contract: what every kind of sweep store keeps and how it may change.

A store is only storage (as Optuna's `storages/_base.py` is): sweeps, their
runs and the runs' metric, as typed records. What to hand out next, when a
sweep is done, which run is offered again and which runs hyperband stops is
decided by `sweepkit.core.scheduling` on the records the store hands it, and a
run's life by `sweepkit.core.lifecycle`. One test suite runs over every kind
(tests/backends/store/test_store_contract.py): SQLite (one machine) and PostgreSQL
(any number of machines).
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import Any

from sweepkit.core.lifecycle import MAX_RETRIES
from sweepkit.core.records import ClaimedRun, MetricProgress, StoredRun, StoredSweep
from sweepkit.errors import SweepkitError

LOCAL_PREFIX = "local-"
KEEP_POINTS = 10_000  # per run, for hyperband; past them it sees the run's min, max and last


class StoreError(SweepkitError):
    """The store cannot be opened, is not a sweepkit store, or failed after opening."""


class Store(abc.ABC):
    """Sweeps and their runs, shared by every agent of a sweep.

    Contract, for every kind (tests/backends/store/test_store_contract.py):

    - Every change is one transaction: it lands whole or not at all, whatever
      happens to the process or the connection in the middle.
    - `claim_run` is one transaction that holds the sweep (SQLite: the write
      lock; PostgreSQL: a row lock on the sweep) while the engine suggests
      the next config (random search's draw, which reads no runs, is made
      before: `scheduling.draw_ahead`), so no two agents, on any machines,
      get the same grid point, and `run_cap` holds exactly.
    - A beat or an end writes nothing of a run that has already ended.
    - A run ends once: every write of a run's state reads the state it has under
      the lock and passes both to `sweepkit.core.lifecycle.check_move`; the
      first end recorded, by its agent or by the reaper, stands.
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
        """Apply stop|cancel|pause|resume (`sweepkit.core.lifecycle.SWEEP_COMMANDS`) to the
        state read under the lock (`sweep_move`).

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
        max_retries: int = MAX_RETRIES,
        log_dir: str | Path | None = None,
        agent: str = "",
        retry_ended_before: float | None = None,
        wandb_dir: str | Path | None = None,
    ) -> ClaimedRun | None:
        """Reserve the sweep's next run (`sweepkit.core.scheduling.choose`), in one transaction.

        What scheduling chooses on the sweep's runs: a point offered again, or
        the engine's next suggestion, inserted as a ``running`` run; a sweep
        with nothing left is marked finished. Runs whose agent died are the
        reaper's to end first (`sweepkit.runner.reaper.reap`): a claim does not.

        Args:
            sweep_id: the sweep.
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

    @abc.abstractmethod
    def has_running(self, sweep_id: str) -> bool:
        """Whether a run of the sweep is going (here or under another agent), without reading
        every run."""

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
