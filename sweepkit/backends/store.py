"""The local backend's state: one SQLite file (WAL), safe for many agent processes.

Every change is one transaction. Claiming a run is `BEGIN IMMEDIATE` (the
write lock) -> read the sweep's runs -> ask the `sweeps` engine for the next
config -> insert the run -> commit, so two agents can never be handed the same
grid point and `run_cap` holds exactly, whatever the number of processes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import os
import re
import secrets
import socket
import sqlite3
import string
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sweepkit import engine
from sweepkit.backends.base import CRASH_GRACE_S, MAX_RETRIES
from sweepkit.errors import SweepkitError
from sweepkit.follow import MetricProgress, RunMetrics
from sweepkit.lifecycle import ENGINE_STATE, TERMINAL, RunState, check_move, judge_lost_run
from sweepkit.log import note

LOCAL_PREFIX = "local-"
TERMINAL_RUN_STATES = tuple(state.value for state in TERMINAL)
# A run whose end no later run repeats (SQL over `runs c`).
_NOT_RETRIED = (
    "NOT EXISTS (SELECT 1 FROM runs r WHERE r.sweep_id = c.sweep_id AND r.retry_of = c.id)"
)
# Sweep states and the transitions `sweepkit stop|cancel|pause|resume` may make (W&B's own).
SWEEP_COMMANDS = {
    "stop": ("stopped", ("running", "paused")),  # no new runs; running runs finish
    "cancel": ("canceled", ("running", "paused")),  # no new runs; running runs are killed
    "pause": ("paused", ("running", "paused")),  # no new runs until resumed; agents wait
    "resume": ("running", ("paused", "stopped", "running")),
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sweeps (
    id          TEXT PRIMARY KEY,
    name        TEXT,
    project     TEXT,
    entity      TEXT,
    config      TEXT NOT NULL,          -- the sweep YAML as JSON
    state       TEXT NOT NULL,          -- running, paused, stopped, canceled, finished
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL,
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
    state        TEXT NOT NULL,         -- running, finished, failed, crashed, killed, stopped
    config       TEXT NOT NULL,         -- {"name": {"value": v}}, as the engine suggested it
    search_info  TEXT,                  -- what the engine attached to the suggestion
    summary      TEXT NOT NULL DEFAULT '{}',  -- the run's summary entry for the sweep metric
    -- The sweep metric as logged, in what the scheduler needs and no more (see MetricProgress):
    metric_count INTEGER NOT NULL DEFAULT 0,  -- points logged
    metric_min   REAL,
    metric_max   REAL,
    metric_last  REAL,
    metric_value REAL,                  -- the run's metric as W&B uses it (its summary)
    run_dir      TEXT,
    error        TEXT,
    created_at   REAL NOT NULL,
    heartbeat_at REAL NOT NULL,
    ended_at     REAL,
    attempt      INTEGER NOT NULL DEFAULT 1,  -- 2+ : the same config again, after a crash
    retry_of     TEXT,                  -- the crashed run this one repeats
    synced_at    REAL,                  -- when `sweepkit sync` uploaded its run folder
    PRIMARY KEY (sweep_id, id)
);
CREATE INDEX IF NOT EXISTS runs_by_sweep_state ON runs (sweep_id, state);
-- A run's first KEEP_POINTS metric points, for sweeps with early_terminate: hyperband reads
-- each run's metric at its bands. Other sweeps keep none: the aggregates above are enough.
CREATE TABLE IF NOT EXISTS metric_points (
    sweep_id TEXT NOT NULL,
    run_id   TEXT NOT NULL,
    idx      INTEGER NOT NULL,          -- 0-based position among the run's metric points
    value    REAL NOT NULL,
    PRIMARY KEY (sweep_id, run_id, idx)
);
"""
KEEP_POINTS = 10_000  # per run, for hyperband; past them it sees the run's min, max and last
# Columns added after the first release of the schema: a store made before them gets them
# on open (SQLite adds a column without rewriting the table).
_ADDED_COLUMNS = [
    ("runs", "attempt", "INTEGER NOT NULL DEFAULT 1"),
    ("runs", "retry_of", "TEXT"),
    ("runs", "synced_at", "REAL"),
    ("sweeps", "wandb_sweep", "TEXT"),
    ("sweeps", "entity", "TEXT"),
    ("runs", "name", "TEXT"),
    ("runs", "log_file", "TEXT"),
    ("runs", "agent", "TEXT"),
    ("runs", "host", "TEXT"),
    ("runs", "metric_count", "INTEGER NOT NULL DEFAULT 0"),
    ("runs", "metric_min", "REAL"),
    ("runs", "metric_max", "REAL"),
    ("runs", "metric_last", "REAL"),
    ("runs", "metric_value", "REAL"),
    ("runs", "wandb_dir", "TEXT"),
]


LOCK_WAIT_S = 10.0  # SQLite's own wait for the write lock, before we say that we wait
# What to do about a store failure, by a word of SQLite's message.
_REMEDIES = {
    "malformed": "the file is damaged: keep a copy, then `sqlite3 FILE .recover` or start a new "
    "store with --store; run folders under wandb/ keep what the runs logged",
    "full": "free some disk space, then start the agent again: the run it was watching is "
    "reaped and finished from its log or offered again",
}


class StoreError(SweepkitError):
    """The store file cannot be opened, is not a sweepkit store, or failed after opening."""


def _failures_are_store_errors(cls: type) -> type:
    """Every public method of the store raises StoreError, one line, for a SQLite failure.

    A store can break after it was opened (a damaged page, a full disk, an I/O
    error): the caller gets what happened and what to do, never a traceback.
    """

    def wrap(method: Any) -> Any:
        @functools.wraps(method)
        def wrapper(self: Store, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, *args, **kwargs)
            except sqlite3.Error as exc:
                remedy = next((r for word, r in _REMEDIES.items() if word in str(exc)), None)
                raise StoreError(
                    f"the sweep store {self.path} failed: {exc}" + (f"; {remedy}" if remedy else "")
                ) from exc

        return wrapper

    for name, value in list(vars(cls).items()):
        if callable(value) and not name.startswith("_"):
            setattr(cls, name, wrap(value))
    return cls


@dataclasses.dataclass(frozen=True)
class ClaimedRun:
    """A run handed to an agent."""

    id: str  # the wandb run id
    display_name: str  # its readable name, as W&B's agent gives one: <sweep name>-<n>
    config: dict[str, Any]  # {"name": {"value": v}}, as the engine suggested it
    log_file: str | None  # where its output goes, if the agent asked for a file


def _identity(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_dev, stat.st_ino


def default_store_path() -> Path:
    """$SWEEPKIT_STORE, or .sweepkit/sweeps.db in the working directory."""
    return Path(os.environ.get("SWEEPKIT_STORE") or Path(".sweepkit") / "sweeps.db")


def new_id(length: int = 8) -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


@_failures_are_store_errors
class Store:
    """Sweeps and their runs in one SQLite file.

    >>> import tempfile, os
    >>> store = Store(os.path.join(tempfile.mkdtemp(), "s.db"))
    >>> sid = store.create_sweep({"method": "grid", "parameters": {"a": {"values": [1]}}})
    >>> store.claim_run(sid).config
    {'a': {'value': 1}}
    """

    def __init__(self, path: str | Path, *, create: bool = True) -> None:
        self.path = Path(path)
        if not create and not self.path.exists():
            raise StoreError(f"no sweep store at {self.path} (set --store or SWEEPKIT_STORE)")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: we open transactions ourselves (BEGIN IMMEDIATE).
            self._db = sqlite3.connect(self.path, timeout=LOCK_WAIT_S, isolation_level=None)
            self._keeps: dict[str, bool] = {}  # sweep id -> whether it keeps metric points
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self._add_missing_columns()
            self._file = _identity(self.path)
        except (sqlite3.DatabaseError, OSError) as exc:
            raise StoreError(f"cannot use {self.path} as a sweep store: {exc}") from exc

    def check_same_file(self) -> None:
        """Raise StoreError if the store's file was deleted or replaced since it was opened
        (SQLite would go on writing to the unlinked file, and every result would be lost)."""
        try:
            same = _identity(self.path) == self._file
        except OSError:
            same = False
        if not same:
            raise StoreError(
                f"the sweep store {self.path} was deleted or replaced while in use: stopping "
                "(what its runs logged stays in their folders under wandb/)"
            )

    def _add_missing_columns(self) -> None:
        added = set()
        for table, column, declaration in _ADDED_COLUMNS:
            present = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            if column not in present:
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
                added.add(column)
        if "metric_value" in added:
            self._migrate_metric_history()

    def _migrate_metric_history(self) -> None:
        """A store from before the metric columns kept each run's whole metric history as JSON:
        fill the columns (and a hyperband sweep's points) from it, once."""
        with self._write() as db:
            for sweep_id, config in db.execute("SELECT id, config FROM sweeps").fetchall():
                metric = json.loads(config).get("metric") or {}
                if "name" not in metric:
                    continue
                keeps = "early_terminate" in json.loads(config)
                rows = db.execute(
                    "SELECT id, history, summary FROM runs WHERE sweep_id = ?", (sweep_id,)
                ).fetchall()
                for run_id, history, summary in rows:
                    tracked = RunMetrics(metric["name"], metric.get("goal", "minimize"))
                    points = [row.get(metric["name"]) for row in json.loads(history)]
                    progress = tracked.replay(points, json.loads(summary))
                    self._record_metric(db, sweep_id, run_id, progress, keep_points=keeps)

    def close(self) -> None:
        self._db.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: all of it lands, or none of it.

        The write lock is waited for as long as another process holds it (an
        agent stopped in a debugger, a `sqlite3` shell left in a transaction),
        said once per wait, rather than failing after SQLite's own timeout.
        """
        waited = 0.0
        while True:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc):
                    raise
                waited += LOCK_WAIT_S
                if waited == LOCK_WAIT_S:
                    note(
                        f"the sweep store {self.path} is locked by another process (for "
                        f"{waited:g} s now): waiting for it (Ctrl-C to give up)"
                    )
        if waited:
            note(f"the sweep store {self.path} is free again after {waited:g}+ s")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # Sweeps ---------------------------------------------------------------

    def create_sweep(
        self,
        config: dict[str, Any],
        *,
        name: str | None = None,
        project: str | None = None,
        entity: str | None = None,
    ) -> str:
        """Register a validated config; `name`, `project` and `entity` default to the config's."""
        sweep_id = LOCAL_PREFIX + new_id()
        now = time.time()
        with self._write() as db:
            db.execute(
                "INSERT INTO sweeps (id, name, project, entity, config, state, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, 'running', ?, ?)",
                (
                    sweep_id, name or config.get("name"), project or config.get("project"),
                    entity or config.get("entity"), json.dumps(config), now, now,
                ),
            )  # fmt: skip
        return sweep_id

    _SWEEP_COLUMNS = ("id", "name", "project", "entity", "config", "state", "created_at")

    def sweep_row(self, sweep_id: str) -> dict[str, Any] | None:
        row = self._db.execute(
            f"SELECT {', '.join(self._SWEEP_COLUMNS)} FROM sweeps WHERE id = ?", (sweep_id,)
        ).fetchone()
        return None if row is None else self._sweep_record(row)

    def sweep_rows(self) -> list[dict[str, Any]]:
        """Every sweep in the store, oldest first."""
        rows = self._db.execute(
            f"SELECT {', '.join(self._SWEEP_COLUMNS)} FROM sweeps ORDER BY created_at"
        ).fetchall()
        return [self._sweep_record(row) for row in rows]

    def _sweep_record(self, row: tuple[Any, ...]) -> dict[str, Any]:
        record = dict(zip(self._SWEEP_COLUMNS, row, strict=True))
        record["config"] = json.loads(record["config"])
        return record

    def change_sweep_state(self, sweep_id: str, command: str) -> str:
        """Apply stop|cancel|pause|resume; return the new state.

        Raises:
            StoreError: the sweep is in a state the command cannot leave (e.g. resume a finished sweep).
        """
        new_state, allowed_from = SWEEP_COMMANDS[command]
        with self._write() as db:
            (state,) = db.execute("SELECT state FROM sweeps WHERE id = ?", (sweep_id,)).fetchone()
            if state not in allowed_from:
                raise StoreError(f"cannot {command} sweep {sweep_id}: it is {state}")
            db.execute(
                "UPDATE sweeps SET state = ?, updated_at = ? WHERE id = ?",
                (new_state, time.time(), sweep_id),
            )
        return new_state

    def sweep_state(self, sweep_id: str) -> str:
        (state,) = self._db.execute("SELECT state FROM sweeps WHERE id = ?", (sweep_id,)).fetchone()
        return state

    # Runs -----------------------------------------------------------------

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
        """Reserve the sweep's next run, or None when it hands out none now (see `sweep_state`
        and `unfinished_points`).

        First the reaper (`reap`). Then, in one transaction: the exact config of
        a crashed run (up to `max_retries` times) or a preempted one is offered
        again before anything new; with `retry_ended_before`, so is that of a
        run that failed or crashed past its retries before then (--retry-failed);
        otherwise the engine suggests the next config, and a sweep with nothing
        left, nothing running and no point left unfinished is marked finished.
        With `log_dir`, the run's output is to go to ``log_dir/<run id>.log``,
        and the store remembers it, with the claiming agent's label, this
        machine's name and `wandb_dir`, where the run's folder will be.
        """
        self.check_same_file()
        self.reap(sweep_id, crash_grace_s)
        with self._write() as db:
            row = db.execute(
                "SELECT config, state, name FROM sweeps WHERE id = ?", (sweep_id,)
            ).fetchone()
            if row is None or row[1] != "running":
                return None
            now = time.time()
            retry = db.execute(
                "SELECT c.id, c.config, c.attempt FROM runs c"
                " WHERE c.sweep_id = ? AND ((c.state = 'crashed' AND c.attempt <= ?)"
                " OR c.state = 'preempted' OR (c.state IN ('failed', 'crashed') AND c.ended_at < ?))"
                f" AND {_NOT_RETRIED} ORDER BY c.created_at LIMIT 1",
                (sweep_id, max_retries, retry_ended_before or -math.inf),
            ).fetchone()
            if retry is not None:
                suggestion = engine.SweepRun(name=new_id(), config=json.loads(retry[1]))
                attempt, retry_of = retry[2] + 1, retry[0]
            else:
                config = json.loads(row[0])
                suggestion = None
                if not self._sweep_is_done(db, sweep_id, config):
                    # Random search draws independently of past runs: the engine needs none of them.
                    runs = (
                        []
                        if config["method"] == "random"
                        else self._engine_runs(db, sweep_id, config)
                    )
                    suggestion = engine.next_run(config, runs)
                if suggestion is None:
                    if not self._has_running(db, sweep_id) and not self._lost(db, sweep_id):
                        db.execute(
                            "UPDATE sweeps SET state = 'finished', updated_at = ? WHERE id = ?",
                            (now, sweep_id),
                        )
                    return None
                suggestion.name = new_id()
                # The engine hands out numpy scalars; the run's param file and wandb want plain values.
                suggestion.config = _plain(suggestion.config)
                suggestion.search_info = _plain(suggestion.search_info)
                attempt, retry_of = 1, None
            (ordinal,) = db.execute(
                "SELECT count(*) + 1 FROM runs WHERE sweep_id = ?", (sweep_id,)
            ).fetchone()
            claimed = ClaimedRun(
                id=suggestion.name,
                display_name=f"{_slug(row[2] or sweep_id)}-{ordinal}",
                config=suggestion.config,
                log_file=str(Path(log_dir) / f"{suggestion.name}.log") if log_dir else None,
            )
            db.execute(
                "INSERT INTO runs (sweep_id, id, name, log_file, agent, host, wandb_dir, state,"
                " config, search_info, created_at, heartbeat_at, attempt, retry_of)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?)",
                (
                    sweep_id, claimed.id, claimed.display_name, claimed.log_file, agent,
                    socket.gethostname(), str(wandb_dir) if wandb_dir else None,
                    json.dumps(claimed.config),
                    json.dumps(suggestion.search_info), now, now, attempt, retry_of,
                ),
            )  # fmt: skip
            return claimed

    def reap(self, sweep_id: str, crash_grace_s: float = CRASH_GRACE_S) -> list[tuple[str, str]]:
        """Record the end of every run whose agent died (no heartbeat for `crash_grace_s`).

        Each such run's own log decides (`lifecycle.judge_lost_run`): finished
        if it holds a clean exit, else crashed. The log is read outside any
        transaction; the end is written only if the run is still running with
        a stale heartbeat (an agent that came back, or another reaper, wins).

        Returns:
            (run id, state recorded) of the runs reaped here.
        """
        cutoff = time.time() - crash_grace_s
        stale = self._db.execute(
            "SELECT r.id, r.wandb_dir, s.config FROM runs r JOIN sweeps s ON s.id = r.sweep_id"
            " WHERE r.sweep_id = ? AND r.state = 'running' AND r.heartbeat_at < ?",
            (sweep_id, cutoff),
        ).fetchall()
        reaped = []
        for run_id, wandb_dir, config in stale:
            metric = json.loads(config).get("metric") or {}
            verdict = judge_lost_run(
                wandb_dir, run_id, metric.get("name"), metric.get("goal", "minimize"), crash_grace_s
            )
            if self.finish_run(
                sweep_id, run_id, state=verdict.state.value, progress=verdict.progress,
                summary={}, run_dir=verdict.run_dir, error=verdict.error, stale_before=cutoff,
            ):  # fmt: skip
                reaped.append((run_id, verdict.state.value))
        return reaped

    def unfinished_points(self, sweep_id: str, max_retries: int = MAX_RETRIES) -> dict[str, int]:
        """Points of the sweep that ended without a result and will not be offered again on
        their own: {"failed": n, "crashed": m} (crashed past `max_retries`)."""
        rows = self._db.execute(
            f"SELECT c.state, count(*) FROM runs c WHERE c.sweep_id = ?"
            f" AND (c.state = 'failed' OR (c.state = 'crashed' AND c.attempt > ?))"
            f" AND {_NOT_RETRIED} GROUP BY c.state",
            (sweep_id, max_retries),
        ).fetchall()
        return dict(rows)

    @staticmethod
    def _lost(db: sqlite3.Connection, sweep_id: str) -> bool:
        """A crashed run whose retries are spent: the sweep is not finished while it is lost."""
        lost = db.execute(
            f"SELECT 1 FROM runs c WHERE c.sweep_id = ? AND c.state = 'crashed' AND {_NOT_RETRIED}"
            " LIMIT 1",
            (sweep_id,),
        ).fetchone()
        return lost is not None

    def has_running(self, sweep_id: str) -> bool:
        """Whether a run of the sweep is going (here or under another agent)."""
        return self._has_running(self._db, sweep_id)

    @staticmethod
    def _has_running(db: sqlite3.Connection, sweep_id: str) -> bool:
        """A running run may still crash and need its config again: the sweep is not over yet."""
        running = db.execute(
            "SELECT 1 FROM runs WHERE sweep_id = ? AND state = 'running' LIMIT 1", (sweep_id,)
        ).fetchone()
        return running is not None

    def _engine_runs(
        self,
        db: sqlite3.Connection,
        sweep_id: str,
        config: dict[str, Any],
        *,
        with_points: bool = False,
    ) -> list[engine.SweepRun]:
        """The sweep's runs as the engine reads them: configs, the metric, its history.

        The engine reads a run's metric as the extremes of its history and its
        summary (bayes), its last point (bayes' `impute: latest`), and, for
        hyperband (`with_points`), its points in order. A run's history is
        handed over as its kept points, if any, followed by its min, max and
        last: the same answers as its whole history, at a size that does not
        grow with what it logged.
        """
        metric = (config.get("metric") or {}).get("name")
        rows = db.execute(
            "SELECT id, state, config, metric_count, metric_min, metric_max, metric_last,"
            " metric_value FROM runs WHERE sweep_id = ? ORDER BY created_at",
            (sweep_id,),
        ).fetchall()
        points: dict[str, list[float]] = {}
        if with_points:
            for run_id, value in db.execute(
                "SELECT run_id, value FROM metric_points WHERE sweep_id = ? ORDER BY run_id, idx",
                (sweep_id,),
            ):
                points.setdefault(run_id, []).append(value)
        names = engine.parameter_names(config)
        runs = []
        for run_id, state, run_config, count, low, high, last, value in rows:
            kept = points.get(run_id, [])
            tail = [v for v in (low, high, last) if v is not None] if count > len(kept) else []
            runs.append(
                engine.sweep_run(
                    run_id,
                    state=ENGINE_STATE[RunState(state)],
                    config=json.loads(run_config),
                    history=[{metric: v} for v in (*kept, *tail)] if metric else [],
                    summary={metric: value} if metric and value is not None else {},
                    parameter_names=names,
                )
            )
        return runs

    @staticmethod
    def _sweep_is_done(db: sqlite3.Connection, sweep_id: str, config: dict[str, Any]) -> bool:
        """run_cap reached, or a run reached metric.target: answered by SQLite, no run loaded."""
        cap = config.get("run_cap")
        if cap is not None:  # points, not tries: a retry repeats a point already counted
            (n,) = db.execute(
                "SELECT count(*) FROM runs WHERE sweep_id = ? AND retry_of IS NULL", (sweep_id,)
            ).fetchone()
            if n >= cap:
                return True
        metric = config.get("metric") or {}
        if metric.get("target") is None:
            return False
        compare = ">=" if metric.get("goal", "minimize") == "maximize" else "<="
        reached = db.execute(
            f"SELECT 1 FROM runs WHERE sweep_id = ? AND metric_value {compare} ? LIMIT 1",
            (sweep_id, metric["target"]),
        ).fetchone()
        return reached is not None

    def heartbeat(
        self,
        sweep_id: str,
        run_id: str,
        progress: MetricProgress | None = None,
        run_dir: str | None = None,
    ) -> None:
        """Record that a run is alive, where its folder is (for the reaper, should its agent
        die), and what it has logged of the sweep metric since the last beat (its new points
        are appended; nothing logged before is written again).

        Raises:
            StoreError: the store failed, or its file was deleted or replaced.
        """
        self.check_same_file()
        with self._write() as db:
            db.execute(
                "UPDATE runs SET heartbeat_at = ?, run_dir = coalesce(?, run_dir)"
                " WHERE sweep_id = ? AND id = ? AND state = 'running'",
                (time.time(), run_dir, sweep_id, run_id),
            )
            if progress is not None:
                self._record_metric(db, sweep_id, run_id, progress)

    def _record_metric(
        self,
        db: sqlite3.Connection,
        sweep_id: str,
        run_id: str,
        progress: MetricProgress,
        *,
        keep_points: bool | None = None,
    ) -> None:
        db.execute(
            "UPDATE runs SET metric_count = ?, metric_min = ?, metric_max = ?, metric_last = ?,"
            " metric_value = ? WHERE sweep_id = ? AND id = ?",
            (
                progress.count, progress.minimum, progress.maximum, progress.last,
                progress.value, sweep_id, run_id,
            ),
        )  # fmt: skip
        if keep_points is None:
            keep_points = self._keeps_points(db, sweep_id)
        first = progress.count - len(progress.new_points)  # the index of the first new point
        if keep_points and first < KEEP_POINTS:
            db.executemany(
                "INSERT OR REPLACE INTO metric_points (sweep_id, run_id, idx, value)"
                " VALUES (?, ?, ?, ?)",
                [
                    (sweep_id, run_id, first + i, value)
                    for i, value in enumerate(progress.new_points[: KEEP_POINTS - first])
                ],
            )

    def _keeps_points(self, db: sqlite3.Connection, sweep_id: str) -> bool:
        """Whether the sweep stops runs early (hyperband), and so needs their points."""
        if sweep_id not in self._keeps:
            (config,) = db.execute("SELECT config FROM sweeps WHERE id = ?", (sweep_id,)).fetchone()
            self._keeps[sweep_id] = "early_terminate" in json.loads(config)
        return self._keeps[sweep_id]

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
        """Record how a run ended, with the rest of its metric (`progress`) and its summary entry
        for the metric. A run ends once (`lifecycle.check_move`): False if its end was recorded
        already (the reaper was first; its result stays in its folder). With `stale_before`
        (the reaper), only if its heartbeat is still older than that."""
        check_move(RunState.RUNNING, state)  # a terminal state; the WHERE below checks the rest
        state = RunState(state).value
        with self._write() as db:
            cursor = db.execute(
                "UPDATE runs SET state = ?, summary = ?, run_dir = coalesce(?, run_dir),"
                " error = ?, ended_at = ?, heartbeat_at = ?"
                " WHERE sweep_id = ? AND id = ? AND state = 'running' AND heartbeat_at < ?",
                (
                    state, json.dumps(summary), run_dir, error, time.time(), time.time(),
                    sweep_id, run_id, math.inf if stale_before is None else stale_before,
                ),
            )  # fmt: skip
            if cursor.rowcount == 1 and progress is not None:
                self._record_metric(db, sweep_id, run_id, progress)
        return cursor.rowcount == 1

    def unsynced_runs(self, sweep_id: str) -> list[tuple[str, str]]:
        """(run id, run folder) of ended runs whose folders `sweepkit sync` has not uploaded."""
        placeholders = ", ".join("?" for _ in TERMINAL_RUN_STATES)
        return self._db.execute(
            f"SELECT id, run_dir FROM runs WHERE sweep_id = ? AND synced_at IS NULL AND run_dir IS NOT NULL"
            f" AND state IN ({placeholders}) ORDER BY created_at",
            (sweep_id, *TERMINAL_RUN_STATES),
        ).fetchall()

    def synced_run_ids(self, sweep_id: str) -> list[str]:
        rows = self._db.execute(
            "SELECT id FROM runs WHERE sweep_id = ? AND synced_at IS NOT NULL ORDER BY created_at",
            (sweep_id,),
        ).fetchall()
        return [r[0] for r in rows]

    def mark_synced(self, sweep_id: str, run_ids: list[str], wandb_sweep: str | None) -> None:
        with self._write() as db:
            db.executemany(
                "UPDATE runs SET synced_at = ? WHERE sweep_id = ? AND id = ?",
                [(time.time(), sweep_id, run_id) for run_id in run_ids],
            )
            if wandb_sweep:
                db.execute(
                    "UPDATE sweeps SET wandb_sweep = ? WHERE id = ?", (wandb_sweep, sweep_id)
                )

    def runs_to_stop(self, sweep_id: str) -> set[str]:
        """Running runs that the sweep's early_terminate rule (hyperband) would stop now."""
        row = self.sweep_row(sweep_id)
        if row is None or "early_terminate" not in row["config"] or "metric" not in row["config"]:
            return set()
        runs = self._engine_runs(self._db, sweep_id, row["config"], with_points=True)
        return {r.name for r in engine.stop_runs(row["config"], runs) if r.state == "running"}

    def run_rows(self, sweep_id: str) -> list[dict[str, Any]]:
        cols = (
            "id",
            "name",
            "log_file",
            "agent",
            "host",
            "attempt",
            "retry_of",
            "state",
            "config",
            "summary",
            "run_dir",
            "error",
            "metric_value",
            "created_at",
            "ended_at",
            "heartbeat_at",
        )
        rows = self._db.execute(
            f"SELECT {', '.join(cols)} FROM runs WHERE sweep_id = ? ORDER BY created_at",
            (sweep_id,),
        ).fetchall()
        out = []
        for row in rows:
            record = dict(zip(cols, row, strict=True))
            record["config"] = json.loads(record["config"])
            record["summary"] = json.loads(record["summary"])
            out.append(record)
        return out


def _slug(name: str) -> str:
    """A sweep name fit for a run name: ``My sweep!`` -> ``my-sweep``."""
    return re.sub(r"[^a-z0-9._]+", "-", name.lower()).strip("-") or "sweep"


def _plain(value: Any) -> Any:
    """Deep copy with numpy scalars and arrays turned into Python numbers and lists."""
    return json.loads(
        json.dumps(value, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
    )
