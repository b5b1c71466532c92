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
import random
import re
import secrets
import socket
import string
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

from sweepkit import engine, jsondata
from sweepkit.backends.store import base
from sweepkit.backends.store.base import LOCAL_PREFIX, Store, StoreError
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

T = TypeVar("T")


class Cursor(Protocol):
    """What a transaction function gets: a DB-API cursor of either driver (``?`` placeholders)."""

    rowcount: int

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any: ...
    def executemany(self, sql: str, params: Sequence[Sequence[Any]]) -> Any: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


# Version 1 is the schema as it was before migrations were numbered (a SQLite store from then is
# brought up to it column by column, see SQLiteStore); each later entry is one change, applied
# once, in order, inside one transaction with the version it brings.
_SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS sweeps (
    id          TEXT PRIMARY KEY,
    name        TEXT,
    project     TEXT,
    entity      TEXT,
    config      TEXT NOT NULL,          -- the sweep YAML as JSON
    state       TEXT NOT NULL,          -- running, paused, stopped, canceled, finished
    created_at  DOUBLE PRECISION NOT NULL,
    updated_at  DOUBLE PRECISION NOT NULL,
    wandb_sweep TEXT                    -- the W&B sweep `sweepkit sync` last created from it
);
CREATE TABLE IF NOT EXISTS runs (
    sweep_id     TEXT NOT NULL REFERENCES sweeps(id),
    id           TEXT NOT NULL,         -- the wandb run id
    name         TEXT,                  -- its readable name (wandb's run.name), e.g. quick-grid-3
    log_file     TEXT,                  -- where the agent sent the run's output
    wandb_dir    TEXT,                  -- its agent's WANDB_DIR: the reaper finds the run there
    agent        TEXT,                  -- the label of the agent that ran it (a worker: w0 gpu0)
    host         TEXT,                  -- the machine it ran on
    state        TEXT NOT NULL,         -- a sweepkit.core.lifecycle.RunState
    config       TEXT NOT NULL,         -- {"name": {"value": v}}, as the engine suggested it
    search_info  TEXT,                  -- what the engine attached to the suggestion
    summary      TEXT NOT NULL DEFAULT '{}',  -- the run's summary entry for the sweep metric
    -- The sweep metric as logged, in what the scheduler needs and no more (see MetricProgress):
    metric_count INTEGER NOT NULL DEFAULT 0,  -- points logged
    metric_min   DOUBLE PRECISION,
    metric_max   DOUBLE PRECISION,
    metric_last  DOUBLE PRECISION,
    metric_value DOUBLE PRECISION,      -- the run's metric as W&B uses it (its summary)
    run_dir      TEXT,
    error        TEXT,
    created_at   DOUBLE PRECISION NOT NULL,
    heartbeat_at DOUBLE PRECISION NOT NULL,
    ended_at     DOUBLE PRECISION,
    attempt      INTEGER NOT NULL DEFAULT 1,  -- 2+ : the same config again, after a crash
    retry_of     TEXT,                  -- the crashed run this one repeats
    synced_at    DOUBLE PRECISION,      -- when `sweepkit sync` uploaded its run folder
    PRIMARY KEY (sweep_id, id)
);
CREATE INDEX IF NOT EXISTS runs_by_sweep_state ON runs (sweep_id, state);
-- A run's first KEEP_POINTS metric points, for sweeps with early_terminate: hyperband reads
-- each run's metric at its bands. Other sweeps keep none: the aggregates above are enough.
CREATE TABLE IF NOT EXISTS metric_points (
    sweep_id TEXT NOT NULL,
    run_id   TEXT NOT NULL,
    idx      INTEGER NOT NULL,          -- 0-based position among the run's metric points
    value    DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (sweep_id, run_id, idx)
)
"""
MIGRATIONS: list[tuple[int, str, str]] = [
    (1, "sweeps, runs and their metric", _SCHEMA_V1),
    # A claim reads a sweep's runs in claim order: one index walk, however many sweeps.
    (2, "runs in claim order", "CREATE INDEX IF NOT EXISTS runs_by_sweep_created"
     " ON runs (sweep_id, created_at)"),
    # Each run's number in its sweep, given while the claim holds the sweep: a grid claim reads
    # only the runs claimed since its window of points was worked out (scheduling.GridAhead).
    # Runs of an older store are numbered in claim order; two claims can never share a number.
    # The newest window of each grid sweep is kept for every agent to start from: one works it
    # out (the engine's grid search over every run), the others read it.
    (3, "runs numbered in claim order, grid windows", """
        ALTER TABLE runs ADD COLUMN seq INTEGER;
        CREATE TEMPORARY TABLE numbered (sweep_id TEXT, id TEXT, seq INTEGER,
                                         PRIMARY KEY (sweep_id, id));
        INSERT INTO numbered SELECT sweep_id, id,
            row_number() OVER (PARTITION BY sweep_id ORDER BY created_at, id) FROM runs;
        UPDATE runs SET seq = (SELECT seq FROM numbered
                               WHERE numbered.sweep_id = runs.sweep_id AND numbered.id = runs.id);
        DROP TABLE numbered;
        CREATE UNIQUE INDEX runs_by_sweep_seq ON runs (sweep_id, seq);
        CREATE TABLE grid_windows (
            -- No foreign key: on PostgreSQL its check would lock the sweep's row (FOR KEY
            -- SHARE), and keeping a window would wait behind every claim holding the sweep.
            sweep_id TEXT PRIMARY KEY,
            seen     INTEGER NOT NULL,      -- GridAhead.seen: past the sweep's first `seen` runs
            last     INTEGER NOT NULL,      -- 1: the grid has no points past these
            points   TEXT NOT NULL          -- a JSON list of GridAhead.points
        )
    """),
]  # fmt: skip
SCHEMA_VERSION = MIGRATIONS[-1][0]

_SWEEP_COLUMNS = "id, name, project, entity, config, state, created_at, wandb_sweep"
# ScheduledRun's fields, in order; then the rest of StoredRun's.
_SCHEDULED_COLUMNS = (
    "id, state, config, attempt, retry_of, ended_at, metric_count, metric_min, metric_max,"
    " metric_last, metric_value"
)
_RUN_COLUMNS = (
    f"{_SCHEDULED_COLUMNS}, name, created_at, heartbeat_at, log_file, wandb_dir, agent, host,"
    " run_dir, error, summary, synced_at"
)


def new_id(length: int = 8) -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _sweep(row: Sequence[Any]) -> StoredSweep:
    sweep_id, name, project, entity, config, state, created_at, wandb_sweep = row
    return StoredSweep(
        sweep_id, name, project, entity, json.loads(config), state, created_at, wandb_sweep
    )


class SQLStore(Store):
    """A store over a SQL database; subclasses connect and run transactions."""

    # Appended to the claim's read of its sweep and an end's read of its run: the lock that
    # serialises them (PostgreSQL `FOR UPDATE`; SQLite's `BEGIN IMMEDIATE` holds the file).
    _LOCK_SWEEP = ""
    _LOCK_RUN = ""
    # Whether the store has its version table yet (each kind's own catalogue).
    _HAS_SCHEMA_TABLE = "SELECT count(*) FROM sqlite_master WHERE name = 'sweepkit_schema'"

    def __init__(self, location: str) -> None:
        self.location = location
        # sweep id -> its config, read once: a sweep's config never changes once created.
        self._configs: dict[str, dict[str, Any]] = {}
        # grid sweep id -> its next points past the runs this store last read (GridAhead).
        self._grid_windows: dict[str, scheduling.GridAhead] = {}
        # Below this many points, prepare_claim works a window out again (scheduling).
        self._prepare_below = random.randint(
            scheduling.GRID_PREPARE_BELOW, scheduling.GRID_PREPARED // 2
        )

    @abc.abstractmethod
    def _transact(self, work: Callable[[Cursor], T], *, write: bool = True) -> T:
        """Run `work` on a cursor in one transaction (a read on its own snapshot if not
        `write`), commit, and return what it returned; roll back if it raises."""

    def _lock_for_migration(self, cursor: Cursor) -> None:
        """Keep two processes from migrating at once (SQLite's write lock does already)."""

    def _adopt_unnumbered(self, cursor: Cursor) -> None:
        """Bring a store made before migrations were numbered up to version 1."""

    # Schema -----------------------------------------------------------------

    def _migrate(self) -> None:
        """Apply the migrations this store lacks, each with its version, in one transaction.

        Raises:
            StoreError: the store was made by a newer sweepkit.
        """

        if self._schema_version() == SCHEMA_VERSION:
            return  # the usual case: no write lock taken just to open the store

        def work(cursor: Cursor) -> None:
            self._lock_for_migration(cursor)
            cursor.execute("CREATE TABLE IF NOT EXISTS sweepkit_schema (version INTEGER NOT NULL)")
            cursor.execute("SELECT max(version) FROM sweepkit_schema")
            (version,) = cursor.fetchone()
            version = version or 0
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"the sweep store {self.location} was made by a newer sweepkit (schema "
                    f"{version}; this one knows {SCHEMA_VERSION}): upgrade sweepkit"
                )
            for number, _, script in MIGRATIONS:
                if number <= version:
                    continue
                for statement in _statements(script):
                    cursor.execute(statement)
                if number == 1:
                    self._adopt_unnumbered(cursor)
                cursor.execute("INSERT INTO sweepkit_schema (version) VALUES (?)", (number,))

        self._transact(work)

    def _schema_version(self) -> int | None:
        """The store's schema version, read without a lock; None for a store without one."""

        def work(cursor: Cursor) -> int | None:
            cursor.execute(self._HAS_SCHEMA_TABLE)
            if not cursor.fetchone()[0]:
                return None
            cursor.execute("SELECT max(version) FROM sweepkit_schema")
            return cursor.fetchone()[0]

        return self._transact(work, write=False)

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
            cursor.execute(f"SELECT {_SWEEP_COLUMNS} FROM sweeps WHERE id = ?", (sweep_id,))
            row = cursor.fetchone()
            return None if row is None else _sweep(row)

        return self._transact(work, write=False)

    def sweeps(self) -> list[StoredSweep]:
        def work(cursor: Cursor) -> list[StoredSweep]:
            cursor.execute(f"SELECT {_SWEEP_COLUMNS} FROM sweeps ORDER BY created_at")
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
                f"SELECT {_SWEEP_COLUMNS} FROM sweeps WHERE id = ?{self._LOCK_SWEEP}", (sweep_id,)
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
        if kept is None:
            self._grid_windows.pop(sweep_id, None)
        else:
            self._grid_windows[sweep_id] = kept
        return claimed

    def prepare_claim(self, sweep_id: str) -> None:
        config = self._transact(lambda cursor: self._config(cursor, sweep_id), write=False)
        if config is not None and config["method"] == "grid":
            self._grid_windows[sweep_id] = self._grid_window(
                sweep_id, config, scheduling.GRID_PREPARED, self._prepare_below
            )

    def _grid_window(
        self,
        sweep_id: str,
        config: dict[str, Any],
        ahead: int,
        below: int,
    ) -> scheduling.GridAhead:
        """A grid sweep's next points past its runs, worked out before a claim holds the
        sweep: this store's last window less the runs claimed since; where that cannot tell
        or has fewer than `below` points left, the sweep's newest (kept in `grid_windows` by
        whichever agent worked it out); where that will not do either, `ahead` new ones from
        every run, kept there for the others."""
        window = self._grid_windows.get(sweep_id)

        def work(cursor: Cursor) -> list[ScheduledRun] | None:
            nonlocal window
            if window is not None:
                window = window.past(self._runs_since(cursor, sweep_id, window.seen))
            if window is None or window.needs_refill(below):  # the sweep's newest, if enough
                cursor.execute(
                    "SELECT seen, last, points FROM grid_windows WHERE sweep_id = ?", (sweep_id,)
                )
                kept = cursor.fetchone()
                window = None
                if kept is not None:
                    seen, last, points = kept
                    window = scheduling.GridAhead(seen, tuple(json.loads(points)), bool(last))
                    window = window.past(self._runs_since(cursor, sweep_id, seen))
            if window is not None and not window.needs_refill(below):
                return None
            cursor.execute(
                f"SELECT {_SCHEDULED_COLUMNS} FROM runs WHERE sweep_id = ? ORDER BY seq",
                (sweep_id,),
            )
            return [ScheduledRun(*row) for row in cursor.fetchall()]

        every = self._transact(work, write=False)
        if every is None:
            return window
        window = scheduling.grid_ahead(config, every, ahead)
        self._transact(  # for every agent of the sweep, unless one kept a newer window meanwhile
            lambda cursor: cursor.execute(
                "INSERT INTO grid_windows (sweep_id, seen, last, points) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (sweep_id) DO UPDATE SET seen = excluded.seen,"
                " last = excluded.last, points = excluded.points"
                " WHERE grid_windows.seen < excluded.seen",
                (sweep_id, window.seen, int(window.last), json.dumps(window.points)),
            )
        )
        return window

    def _runs_since(self, cursor: Cursor, sweep_id: str, seen: int) -> list[ScheduledRun]:
        """The runs claimed after the sweep's first `seen`."""
        cursor.execute(
            f"SELECT {_SCHEDULED_COLUMNS} FROM runs WHERE sweep_id = ? AND seq > ? ORDER BY seq",
            (sweep_id, seen),
        )
        return [ScheduledRun(*row) for row in cursor.fetchall()]

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
                f"SELECT {_SCHEDULED_COLUMNS} FROM runs WHERE sweep_id = ? ORDER BY created_at, id",
                (sweep_id,),
            )
            read = every = [ScheduledRun(*row) for row in cursor.fetchall()]
        else:
            # The unsettled runs and the (few) retries, in one round trip: on a networked store
            # each one is paid while every other agent of the sweep waits.
            marks = ", ".join("?" for _ in scheduling.UNSETTLED)
            cursor.execute(
                f"SELECT {_SCHEDULED_COLUMNS} FROM runs WHERE sweep_id = ?"
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
            f"SELECT {_RUN_COLUMNS} FROM runs WHERE sweep_id = ? ORDER BY created_at, id",
            (sweep_id,),
        )
        return [StoredRun(*row) for row in cursor.fetchall()]

    def runs(self, sweep_id: str) -> list[StoredRun]:
        return self._transact(lambda cursor: self._runs(cursor, sweep_id), write=False)

    def stale_runs(self, sweep_id: str, heartbeat_before: float) -> list[StoredRun]:
        def work(cursor: Cursor) -> list[StoredRun]:
            cursor.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE sweep_id = ? AND state = 'running'"
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


# What a run's row keeps of its metric (what the scheduler reads), and the values for it.
METRIC_SET = "metric_count = ?, metric_min = ?, metric_max = ?, metric_last = ?, metric_value = ?"


def metric_values(progress: MetricProgress) -> tuple[Any, ...]:
    return (progress.count, progress.minimum, progress.maximum, progress.last, progress.value)


def _metric_columns(progress: MetricProgress | None) -> tuple[str, tuple[Any, ...]]:
    """The metric's part of a beat's or an end's SET clause, and its values: written by the
    same UPDATE, one round trip and not two (on a networked store each is paid for)."""
    return ("", ()) if progress is None else (f", {METRIC_SET}", metric_values(progress))


def _statements(script: str) -> list[str]:
    """A script's statements, comments dropped (a driver runs one statement per call)."""
    without_comments = re.sub(r"--[^\n]*", "", script)
    return [s.strip() for s in without_comments.split(";") if s.strip()]


def _slug(name: str) -> str:
    """A sweep name fit for a run name: ``My sweep!`` -> ``my-sweep``."""
    return re.sub(r"[^a-z0-9._]+", "-", name.lower()).strip("-") or "sweep"
