"""The sweep store's tables, as both kinds keep them: the schema, its numbered migrations,
and the columns each record is read from.

A store made before migrations were numbered is brought up to version 1 by its kind
(SQLite adds the columns it lacks); every later change is one migration, applied once, in
order, inside one transaction with the version it brings (`SQLStore._migrate`). A store made
by a newer sweepkit is refused in one line.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from sweepkit.backends.store.base import StoreError
from sweepkit.core.records import MetricProgress

# Version 1 is the schema as it was before migrations were numbered (a SQLite store from then is
# brought up to it column by column, see SQLiteStore); each later entry is one change, applied
# once, in order, inside one transaction with the version it brings.
SCHEMA_V1 = """
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
    (1, "sweeps, runs and their metric", SCHEMA_V1),
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

SWEEP_COLUMNS = "id, name, project, entity, config, state, created_at, wandb_sweep"
# ScheduledRun's fields, in order; then the rest of StoredRun's.
SCHEDULED_COLUMNS = (
    "id, state, config, attempt, retry_of, ended_at, metric_count, metric_min, metric_max,"
    " metric_last, metric_value"
)
RUN_COLUMNS = (
    f"{SCHEDULED_COLUMNS}, name, created_at, heartbeat_at, log_file, wandb_dir, agent, host,"
    " run_dir, error, summary, synced_at"
)


# What a run's row keeps of its metric (what the scheduler reads), and the values for it.
METRIC_SET = "metric_count = ?, metric_min = ?, metric_max = ?, metric_last = ?, metric_value = ?"


def metric_values(progress: MetricProgress) -> tuple[Any, ...]:
    return (progress.count, progress.minimum, progress.maximum, progress.last, progress.value)


def statements(script: str) -> list[str]:
    """A script's statements, comments dropped (a driver runs one statement per call)."""
    without_comments = re.sub(r"--[^\n]*", "", script)
    return [s.strip() for s in without_comments.split(";") if s.strip()]


T = TypeVar("T")


class Cursor(Protocol):
    """What a transaction function gets: a DB-API cursor of either driver (``?`` placeholders)."""

    rowcount: int

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any: ...
    def executemany(self, sql: str, params: Sequence[Sequence[Any]]) -> Any: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


class Migrations(abc.ABC):
    """What a SQL store does when it opens: bring its tables up to this release's schema."""

    location: str
    # Whether the store has its version table yet (each kind's own catalogue).
    _HAS_SCHEMA_TABLE = "SELECT count(*) FROM sqlite_master WHERE name = 'sweepkit_schema'"

    @abc.abstractmethod
    def _transact(self, work: Callable[[Cursor], T], *, write: bool = True) -> T:
        """Run `work` on a cursor in one transaction (the store kind's)."""

    def _lock_for_migration(self, cursor: Cursor) -> None:  # noqa: B027 (a kind may need none)
        """Keep two processes from migrating at once (SQLite's write lock does already)."""

    def _adopt_unnumbered(self, cursor: Cursor) -> None:  # noqa: B027 (a kind may need none)
        """Bring a store made before migrations were numbered up to version 1."""

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
                for statement in statements(script):
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
