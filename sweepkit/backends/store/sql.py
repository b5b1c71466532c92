"""The SQL both store kinds share: one schema, its migrations, and every read and write.

A kind (`sqlite.py`, `postgres.py`) only says how to connect, how a
transaction runs (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: a transaction, with
the sweep's row locked by `SELECT ... FOR UPDATE` for a claim), and what its
failures mean. The SQL is written once, in the subset both speak (``?``
placeholders, `ON CONFLICT`, DOUBLE PRECISION), and every transaction is a
function of one cursor, so that a networked kind can run it again whole on a
new connection when the old one was lost.
"""

from __future__ import annotations

import abc
import json
import re
import secrets
import socket
import string
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sweepkit import engine, jsondata
from sweepkit.backends.store import base, schema
from sweepkit.backends.store.base import LOCAL_PREFIX, Store, StoreError
from sweepkit.backends.store.grid import GridWindowStorage
from sweepkit.backends.store.schema import Cursor, Migrations, T
from sweepkit.core import scheduling
from sweepkit.core.lifecycle import (
    MAX_RETRIES,
    TERMINAL,
    InvalidMove,
    RunState,
    check_move,
    sweep_move,
)
from sweepkit.core.records import ClaimedRun, MetricProgress, ScheduledRun, StoredRun, StoredSweep


def new_id(length: int = 8) -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _sweep(row: Sequence[Any]) -> StoredSweep:
    sweep_id, name, project, entity, config, state, created_at, wandb_sweep = row
    return StoredSweep(
        sweep_id, name, project, entity, json.loads(config), state, created_at, wandb_sweep
    )


class SQLStore(Migrations, GridWindowStorage, Store):
    """A store over a SQL database; subclasses connect and run transactions."""

    # Appended to the claim's read of its sweep and an end's read of its run: the lock that
    # serialises them (PostgreSQL `FOR UPDATE`; SQLite's `BEGIN IMMEDIATE` holds the file).
    _LOCK_SWEEP = ""
    _LOCK_RUN = ""

    def __init__(self, location: str) -> None:
        self.location = location
        # sweep id -> its config, read once: a sweep's config never changes once created.
        self._configs: dict[str, dict[str, Any]] = {}
        # This agent's grid windows and when it works one out (scheduling.GridWindows).
        self._windows = scheduling.GridWindows()

    @abc.abstractmethod
    def _transact(self, work: Callable[[Cursor], T], *, write: bool = True) -> T:
        """Run `work` on a cursor in one transaction (a read on its own snapshot if not
        `write`), commit, and return what it returned; roll back if it raises."""

    # Sweeps ---------------------------------------------------------------

    def create_sweep(
        self,
        config: dict[str, Any],
        *,
        name: str | None = None,
        project: str | None = None,
        entity: str | None = None,
    ) -> str:
        sweep_id = LOCAL_PREFIX + new_id()
        now = time.time()
        values = (
            sweep_id, name or config.get("name"), project or config.get("project"),
            entity or config.get("entity"), jsondata.dumps(config), now, now,
        )  # fmt: skip
        self._transact(
            lambda cursor: cursor.execute(
                "INSERT INTO sweeps (id, name, project, entity, config, state, created_at,"
                " updated_at) VALUES (?, ?, ?, ?, ?, 'running', ?, ?) ON CONFLICT (id) DO NOTHING",
                values,
            )
        )
        return sweep_id

    def sweep(self, sweep_id: str) -> StoredSweep | None:
        def work(cursor: Cursor) -> StoredSweep | None:
            cursor.execute(f"SELECT {schema.SWEEP_COLUMNS} FROM sweeps WHERE id = ?", (sweep_id,))
            row = cursor.fetchone()
            return None if row is None else _sweep(row)

        return self._transact(work, write=False)

    def sweeps(self) -> list[StoredSweep]:
        def work(cursor: Cursor) -> list[StoredSweep]:
            cursor.execute(f"SELECT {schema.SWEEP_COLUMNS} FROM sweeps ORDER BY created_at")
            return [_sweep(row) for row in cursor.fetchall()]

        return self._transact(work, write=False)

    def change_sweep_state(self, sweep_id: str, command: str) -> str:
        def work(cursor: Cursor) -> str:
            cursor.execute(f"SELECT state FROM sweeps WHERE id = ?{self._LOCK_SWEEP}", (sweep_id,))
            (state,) = cursor.fetchone()
            try:
                new_state = sweep_move(command, state)
            except InvalidMove:
                raise StoreError(f"cannot {command} sweep {sweep_id}: it is {state}") from None
            cursor.execute(
                "UPDATE sweeps SET state = ?, updated_at = ? WHERE id = ?",
                (new_state.value, time.time(), sweep_id),
            )
            return new_state.value

        return self._transact(work)

    def sweep_state(self, sweep_id: str) -> str:
        def work(cursor: Cursor) -> str:
            cursor.execute("SELECT state FROM sweeps WHERE id = ?", (sweep_id,))
            return cursor.fetchone()[0]

        return self._transact(work, write=False)

    # Runs -----------------------------------------------------------------

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
        self.check_alive()
        engine.load_methods()  # its imports, not inside the transaction that holds the sweep
        config = self._transact(lambda cursor: self._config(cursor, sweep_id), write=False)
        if config is None:
            return None
        drawn = scheduling.draw_ahead(config)  # random search: not while holding the sweep
        window = (
            self._grid_window(sweep_id, config, scheduling.GRID_AHEAD, scheduling.GRID_REFILL)
            if config["method"] == "grid"
            else None
        )
        # Chosen before the transaction, so that one run again on a new connection (the
        # server went away at the commit) finds its own run instead of claiming a second.
        run_id = new_id()
        log_file = str(Path(log_dir) / f"{run_id}.log") if log_dir else None

        tries = 0
        kept: scheduling.GridAhead | None = None

        def work(cursor: Cursor) -> ClaimedRun | None:
            nonlocal tries, kept
            tries += 1
            cursor.execute(
                f"SELECT {schema.SWEEP_COLUMNS} FROM sweeps WHERE id = ?{self._LOCK_SWEEP}",
                (sweep_id,),
            )
            row = cursor.fetchone()
            if row is None:
                return None
            if tries > 1:  # run again on a new connection: did the first try's commit land?
                cursor.execute("SELECT name, config FROM runs WHERE sweep_id = ? AND id = ?",
                               (sweep_id, run_id))  # fmt: skip
                if (mine := cursor.fetchone()) is not None:
                    return ClaimedRun(run_id, mine[0], json.loads(mine[1]), log_file)
            sweep = _sweep(row)
            if sweep.state != "running":
                return None
            # The window less what was claimed since; None: the engine reads every run, here.
            if window is not None:
                kept = window.past(self._runs_since(cursor, sweep_id, window.seen))
            every = scheduling.reads_past_runs(sweep.config) and kept is None
            runs = self._sweep_runs(cursor, sweep_id, every)
            if kept is not None and kept.seen != runs.tries:
                # Runs the numbering does not account for (one an older sweepkit claimed
                # while this store was being migrated): the window cannot tell.
                kept = None
                runs = self._sweep_runs(cursor, sweep_id, True)
            choice = scheduling.choose(
                sweep, runs, max_retries=max_retries, retry_ended_before=retry_ended_before,
                drawn=drawn, ahead=kept,
            )  # fmt: skip
            now = time.time()
            if choice.config is None:
                if choice.finished:
                    cursor.execute(
                        "UPDATE sweeps SET state = 'finished', updated_at = ? WHERE id = ?",
                        (now, sweep_id),
                    )
                return None
            claimed = ClaimedRun(
                id=run_id,
                display_name=f"{_slug(sweep.name or sweep_id)}-{runs.tries + 1}",
                config=choice.config,
                log_file=log_file,
            )
            cursor.execute(
                "INSERT INTO runs (sweep_id, id, seq, name, log_file, agent, host, wandb_dir,"
                " state, config, search_info, created_at, heartbeat_at, attempt, retry_of)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?)",
                (
                    sweep_id, run_id, runs.tries + 1, claimed.display_name, log_file, agent,
                    socket.gethostname(), str(wandb_dir) if wandb_dir else None,
                    scheduling.point_json(claimed.config), json.dumps(choice.search_info), now, now,
                    choice.attempt, choice.retry_of.id if choice.retry_of else None,
                ),
            )  # fmt: skip
            return claimed

        claimed = self._transact(work)
        self._windows.keep(sweep_id, kept)
        return claimed

    def _sweep_runs(self, cursor: Cursor, sweep_id: str, with_every: bool) -> scheduling.SweepRuns:
        """What a claim reads of the sweep's runs (`scheduling.SweepRuns`): the runs it may act
        on in full, counts and the metric's extremes of the rest; every run only for methods
        that read past runs."""
        cursor.execute(
            "SELECT count(*), sum(CASE WHEN retry_of IS NULL THEN 1 ELSE 0 END),"
            " min(metric_value), max(metric_value) FROM runs WHERE sweep_id = ?",
            (sweep_id,),
        )
        tries, points, low, high = cursor.fetchone()
        every = None
        if with_every:
            cursor.execute(
                f"SELECT {schema.SCHEDULED_COLUMNS} FROM runs WHERE sweep_id = ? ORDER BY created_at, id",
                (sweep_id,),
            )
            read = every = [ScheduledRun(*row) for row in cursor.fetchall()]
        else:
            # The unsettled runs and the (few) retries, in one round trip: on a networked store
            # each one is paid while every other agent of the sweep waits.
            marks = ", ".join("?" for _ in scheduling.UNSETTLED)
            cursor.execute(
                f"SELECT {schema.SCHEDULED_COLUMNS} FROM runs WHERE sweep_id = ?"
                f" AND (state IN ({marks}) OR retry_of IS NOT NULL) ORDER BY created_at, id",
                (sweep_id, *scheduling.UNSETTLED),
            )
            read = [ScheduledRun(*row) for row in cursor.fetchall()]
        unsettled = [run for run in read if run.state in scheduling.UNSETTLED]
        retried = frozenset(run.retry_of for run in read if run.retry_of)
        return scheduling.SweepRuns(
            tries=tries, points=points or 0, metric_min=low, metric_max=high,
            unsettled=unsettled, retried=retried, every=every,
        )  # fmt: skip

    def _runs(self, cursor: Cursor, sweep_id: str) -> list[StoredRun]:
        cursor.execute(
            f"SELECT {schema.RUN_COLUMNS} FROM runs WHERE sweep_id = ? ORDER BY created_at, id",
            (sweep_id,),
        )
        return [StoredRun(*row) for row in cursor.fetchall()]

    def runs(self, sweep_id: str) -> list[StoredRun]:
        return self._transact(lambda cursor: self._runs(cursor, sweep_id), write=False)

    def stale_runs(self, sweep_id: str, heartbeat_before: float) -> list[StoredRun]:
        def work(cursor: Cursor) -> list[StoredRun]:
            cursor.execute(
                f"SELECT {schema.RUN_COLUMNS} FROM runs WHERE sweep_id = ? AND state = 'running'"
                " AND heartbeat_at < ? ORDER BY created_at",
                (sweep_id, heartbeat_before),
            )
            return [StoredRun(*row) for row in cursor.fetchall()]

        return self._transact(work, write=False)

    def has_running(self, sweep_id: str) -> bool:
        def work(cursor: Cursor) -> bool:
            cursor.execute(
                "SELECT 1 FROM runs WHERE sweep_id = ? AND state = 'running' LIMIT 1", (sweep_id,)
            )
            return cursor.fetchone() is not None

        return self._transact(work, write=False)

    def metric_points(self, sweep_id: str) -> dict[str, list[float]]:
        def work(cursor: Cursor) -> dict[str, list[float]]:
            cursor.execute(
                "SELECT run_id, value FROM metric_points WHERE sweep_id = ? ORDER BY run_id, idx",
                (sweep_id,),
            )
            points: dict[str, list[float]] = {}
            for run_id, value in cursor.fetchall():
                points.setdefault(run_id, []).append(value)
            return points

        return self._transact(work, write=False)

    def heartbeat(
        self,
        sweep_id: str,
        run_id: str,
        progress: MetricProgress | None = None,
        run_dir: str | None = None,
    ) -> None:
        self.check_alive()

        metric_set, metric = _metric_columns(progress)

        def work(cursor: Cursor) -> None:
            cursor.execute(
                f"UPDATE runs SET heartbeat_at = ?, run_dir = coalesce(?, run_dir){metric_set}"
                " WHERE sweep_id = ? AND id = ? AND state = 'running'",
                (time.time(), run_dir, *metric, sweep_id, run_id),
            )
            if progress is not None and cursor.rowcount == 1:
                self._keep_points(cursor, sweep_id, run_id, progress)

        self._transact(work)

    def _keep_points(
        self, cursor: Cursor, sweep_id: str, run_id: str, progress: MetricProgress
    ) -> None:
        """Store the run's new metric points, for a sweep that stops runs early (hyperband)."""
        keep_points = "early_terminate" in (self._config(cursor, sweep_id) or {})
        first = progress.count - len(progress.new_points)  # the index of the first new point
        if keep_points and first < base.KEEP_POINTS:
            # Upserted: a beat sent again on a new connection writes the same points again.
            cursor.executemany(
                "INSERT INTO metric_points (sweep_id, run_id, idx, value) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (sweep_id, run_id, idx) DO UPDATE SET value = excluded.value",
                [
                    (sweep_id, run_id, first + i, value)
                    for i, value in enumerate(progress.new_points[: base.KEEP_POINTS - first])
                ],
            )

    def _config(self, cursor: Cursor, sweep_id: str) -> dict[str, Any] | None:
        """The sweep's config, read once per store (it never changes); None: no such sweep."""
        if sweep_id not in self._configs:
            cursor.execute("SELECT config FROM sweeps WHERE id = ?", (sweep_id,))
            row = cursor.fetchone()
            if row is None:
                return None
            self._configs[sweep_id] = json.loads(row[0])
        return self._configs[sweep_id]

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
        state = RunState(state).value
        ended_at = time.time()
        metric_set, metric = _metric_columns(progress)

        def work(cursor: Cursor) -> bool:
            cursor.execute(
                "SELECT state, ended_at, heartbeat_at FROM runs WHERE sweep_id = ? AND id = ?"
                f"{self._LOCK_RUN}",
                (sweep_id, run_id),
            )  # fmt: skip
            row = cursor.fetchone()
            if row is None:
                return False  # no such run
            old, old_ended_at, beat = row
            if (old, old_ended_at) == (state, ended_at):
                return True  # run again on a new connection after the first try's commit landed
            try:
                check_move(old, state)  # the state just read under the lock, and the new one
            except InvalidMove:
                if RunState(state) in TERMINAL:
                    return False  # its end was recorded already: the first end stands
                raise  # not an end at all
            if stale_before is not None and beat >= stale_before:
                return False  # the reaper's end, of a run whose agent beat again meanwhile
            cursor.execute(
                "UPDATE runs SET state = ?, summary = ?, run_dir = coalesce(?, run_dir),"
                f" error = ?, ended_at = ?, heartbeat_at = ?{metric_set}"
                " WHERE sweep_id = ? AND id = ?",
                (state, json.dumps(summary), run_dir, error, ended_at, ended_at, *metric,
                 sweep_id, run_id),
            )  # fmt: skip
            if progress is not None:
                self._keep_points(cursor, sweep_id, run_id, progress)
            return True

        return self._transact(work)

    def mark_synced(self, sweep_id: str, run_ids: list[str], wandb_sweep: str | None) -> None:
        now = time.time()

        def work(cursor: Cursor) -> None:
            cursor.executemany(
                "UPDATE runs SET synced_at = ? WHERE sweep_id = ? AND id = ?",
                [(now, sweep_id, run_id) for run_id in run_ids],
            )
            if wandb_sweep:
                cursor.execute(
                    "UPDATE sweeps SET wandb_sweep = ? WHERE id = ?", (wandb_sweep, sweep_id)
                )

        self._transact(work)


def _metric_columns(progress: MetricProgress | None) -> tuple[str, tuple[Any, ...]]:
    """The metric's part of a beat's or an end's SET clause, and its values: written by the
    same UPDATE, one round trip and not two (on a networked store each is paid for)."""
    return (
        ("", ()) if progress is None else (f", {schema.METRIC_SET}", schema.metric_values(progress))
    )


def _slug(name: str) -> str:
    """A sweep name fit for a run name: ``My sweep!`` -> ``my-sweep``."""
    return re.sub(r"[^a-z0-9._]+", "-", name.lower()).strip("-") or "sweep"
