"""The store in one SQLite file (WAL): any number of agents on one machine.

Every change is one transaction under SQLite's write lock (`BEGIN
IMMEDIATE`), so claims are serialised across processes. SQLite's WAL needs
shared memory between its processes, which a network filesystem does not
give: a store on NFS, Lustre, GPFS, CIFS and the like is refused, pointing
at the PostgreSQL store (`sweepkit.backends.store.netfs`).
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from sweepkit.backends.store.base import StoreError
from sweepkit.backends.store.netfs import refuse_network_filesystem
from sweepkit.backends.store.schema import METRIC_SET, metric_values
from sweepkit.backends.store.sql import Cursor, SQLStore
from sweepkit.core.records import MetricTally
from sweepkit.log import note

T = TypeVar("T")

LOCK_WAIT_S = 10.0  # how long a wait for the write lock goes unsaid
LOCK_SLICE_S = 0.1  # SQLite's own wait for the write lock, between two looks at stop_waiting
# What to do about a store failure, by a word of SQLite's message.
_REMEDIES = {
    "malformed": "the file is damaged: keep a copy, then `sqlite3 FILE .recover` or start a new "
    "store with --store; run folders under wandb/ keep what the runs logged",
    "full": "free some disk space, then start the agent again: the run it was watching is "
    "reaped and finished from its log or offered again",
}
# Columns added to the schema before migrations were numbered: a store made before one of them
# gets it on open (SQLite adds a column without rewriting the table).
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


def _remedy(path: Path, exc: Exception) -> str | None:
    """What to do about a store failure: SQLite's words for a read-only store vary ("attempt
    to write a readonly database", "unable to open database file", "disk I/O error" when
    its -wal or -shm file cannot be written), so a file or folder that cannot be written is
    asked about first."""
    beside = [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm")]
    read_only = [p for p in [path, *beside] if p.exists() and not os.access(p, os.W_OK)]
    if not os.access(path.parent, os.W_OK):
        read_only.append(path.parent)
    if read_only:
        return (
            f"{read_only[0]} cannot be written (read-only): the store needs its file, its "
            "-wal and -shm files and their folder writable; make them so, or copy the store "
            "somewhere writable and pass --store"
        )
    return next((r for word, r in _REMEDIES.items() if word in str(exc)), None)


def _identity(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_dev, stat.st_ino


class SQLiteStore(SQLStore):
    """Sweeps and their runs in one SQLite file.

    >>> import tempfile, os
    >>> store = SQLiteStore(os.path.join(tempfile.mkdtemp(), "s.db"))
    >>> sid = store.create_sweep({"method": "grid", "parameters": {"a": {"values": [1]}}})
    >>> store.claim_run(sid).config
    {'a': {'value': 1}}
    """

    def __init__(self, path: str | Path) -> None:
        super().__init__(str(path))
        self.path = Path(path)
        refuse_network_filesystem(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: we open transactions ourselves (BEGIN IMMEDIATE).
            self._db = sqlite3.connect(self.path, timeout=LOCK_WAIT_S, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
            self._file = _identity(self.path)
        except (sqlite3.DatabaseError, OSError) as exc:
            remedy = _remedy(self.path, exc)
            raise StoreError(
                f"cannot use {self.path} as a sweep store: {exc}"
                + (f"; {remedy}" if remedy else "")
            ) from exc

    def check_alive(self) -> None:
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

    def close(self) -> None:
        self._db.close()

    def _transact(self, work: Callable[[Cursor], T], *, write: bool = True) -> T:
        """One transaction: all of it lands, or none of it; a SQLite failure is one line.

        The write lock is waited for as long as another process holds it (an
        agent stopped in a debugger, a `sqlite3` shell left in a transaction),
        said once per wait, rather than failing after SQLite's own timeout.
        """
        try:
            if not write:  # one statement's snapshot, no lock (WAL: readers never wait)
                return work(self._db.cursor())
            self._begin_immediate()
            try:
                result = work(self._db.cursor())
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return result
        except sqlite3.Error as exc:
            remedy = _remedy(self.path, exc)
            raise StoreError(
                f"the sweep store {self.path} failed: {exc}" + (f"; {remedy}" if remedy else "")
            ) from exc

    def _begin_immediate(self) -> None:
        """Take the write lock, however long another process holds it, in slices of
        LOCK_SLICE_S: between two, an agent told to stop (SIGTERM, Ctrl-C twice) stops, as
        Slurm gives a preempted task seconds, not the lock holder's time."""
        waited, said = 0.0, False
        self._db.execute(f"PRAGMA busy_timeout = {int(LOCK_SLICE_S * 1000)}")
        try:
            while True:
                try:
                    self._db.execute("BEGIN IMMEDIATE")
                    break
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc):
                        raise
                waited += LOCK_SLICE_S  # SQLite waited this long before it said "locked"
                if self.stop_waiting():
                    raise StoreError(
                        f"told to stop while the sweep store {self.path} is locked by another "
                        "process: stopping without it (the run going is left to the next "
                        "agent, which reaps it and offers it again)"
                    )
                if waited >= LOCK_WAIT_S and not said:
                    said = True
                    note(
                        f"the sweep store {self.path} is locked by another process (for "
                        f"{waited:g} s now): waiting for it (Ctrl-C to give up)"
                    )
        finally:
            self._db.execute(f"PRAGMA busy_timeout = {int(LOCK_WAIT_S * 1000)}")
        if said:
            note(f"the sweep store {self.path} is free again after {waited:g}+ s")

    def _adopt_unnumbered(self, cursor: Cursor) -> None:
        """Add the columns a store from before numbered migrations lacks; a store from before
        the metric columns kept each run's whole metric history as JSON: fill them from it."""
        added = set()
        for table, column, declaration in _ADDED_COLUMNS:
            present = {row[1] for row in cursor.execute(f"PRAGMA table_info({table})").fetchall()}
            if column not in present:
                cursor.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
                added.add(column)
        if "metric_value" not in added:
            return
        for sweep_id, config in cursor.execute("SELECT id, config FROM sweeps").fetchall():
            metric = json.loads(config).get("metric") or {}
            if "name" not in metric:
                continue
            rows = cursor.execute(
                "SELECT id, history, summary FROM runs WHERE sweep_id = ?", (sweep_id,)
            ).fetchall()
            for run_id, history, summary in rows:
                tracked = MetricTally(metric["name"], metric.get("goal", "minimize"))
                points = [row.get(metric["name"]) for row in json.loads(history)]
                progress = tracked.replay(points, json.loads(summary))
                cursor.execute(
                    f"UPDATE runs SET {METRIC_SET} WHERE sweep_id = ? AND id = ?",
                    (*metric_values(progress), sweep_id, run_id),
                )
                self._keep_points(cursor, sweep_id, run_id, progress)
