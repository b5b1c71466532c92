"""What only the SQLite store has: its file, WAL, the stores made before numbered migrations, and
its refusal of network filesystems. The contract every kind shares is test_store_contract.py."""

from __future__ import annotations

import json
import os
import re
import sqlite3

import pytest

from sweepkit.backends.store import StoreError, open_store
from tests.helpers.grids import HYPERBAND_GRID


def test_reads_never_wait_for_the_write_lock(tmp_path, monkeypatch):
    """`status` and the report read while an agent holds the write lock (WAL: readers
    never wait); a read that took the lock would wait, and say so."""
    import sweepkit.backends.store.sqlite as sqlite_store

    def waited(line: str) -> None:
        raise AssertionError(f"a read waited for the write lock: {line}")

    monkeypatch.setattr(sqlite_store, "LOCK_WAIT_S", 0.05)
    monkeypatch.setattr(sqlite_store, "note", waited)
    store = open_store(tmp_path / "sweeps.db")
    sweep_id = store.create_sweep(HYPERBAND_GRID)
    run = store.claim_run(sweep_id)
    holder = sqlite3.connect(tmp_path / "sweeps.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # an agent in the middle of a claim
    try:
        assert store.sweep(sweep_id).id == sweep_id and len(store.sweeps()) == 1
        assert store.sweep_state(sweep_id) == "running" and store.has_running(sweep_id)
        assert [r.id for r in store.runs(sweep_id)] == [run.id]
        assert store.metric_points(sweep_id) == {}
        assert store.stale_runs(sweep_id, 0.0) == []
        open_store(tmp_path / "sweeps.db").close()  # `sweepkit status` opening it
    finally:
        holder.execute("ROLLBACK")


def test_a_store_file_deleted_or_replaced_under_it_is_refused(tmp_path):
    path = tmp_path / "sweeps.db"
    said = re.escape(
        f"the sweep store {path} was deleted or replaced while in use: stopping "
        "(what its runs logged stays in their folders under wandb/)"
    )
    deleted = open_store(path)
    deleted.check_alive()  # the file it opened
    path.unlink()
    with pytest.raises(StoreError, match=said):
        deleted.check_alive()
    replaced = open_store(path)
    open_store(tmp_path / "other.db").close()
    os.replace(tmp_path / "other.db", path)
    with pytest.raises(StoreError, match=said):
        replaced.check_alive()


class FailingBegins:
    """The store's connection, whose next BEGIN IMMEDIATEs fail as SQLite's do when another
    process holds the write lock past the wait (or with another error), then go through."""

    def __init__(self, db: sqlite3.Connection, failures: int, error: str = "database is locked"):
        self._db, self._left, self._error = db, failures, error

    def execute(self, sql: str, *args):
        if sql == "BEGIN IMMEDIATE" and self._left:
            self._left -= 1
            raise sqlite3.OperationalError(self._error)
        return self._db.execute(sql, *args)

    def __getattr__(self, name: str):
        return getattr(self._db, name)


class CountingBegins:
    """A SQLite connection that counts the write transactions begun on it."""

    def __init__(self, db: sqlite3.Connection):
        self._db, self.begun = db, 0

    def execute(self, sql: str, *args):
        self.begun += sql == "BEGIN IMMEDIATE"
        return self._db.execute(sql, *args)

    def __getattr__(self, name: str):
        return getattr(self._db, name)


def test_a_grid_claim_takes_the_write_lock_once_and_preparing_one_not_at_all(tmp_path):
    # Only the claim's own transaction holds the sweep: the config, the window and the runs
    # since are read without the write lock that every other agent's claim waits for.
    store = open_store(tmp_path / "sweeps.db")
    sweep_id = store.create_sweep({"method": "grid", "parameters": {"x": {"values": [1, 2, 3]}}})
    store._db = db = CountingBegins(store._db)
    store.claim_run(sweep_id)
    assert db.begun == 2  # the window it worked out, kept for the sweep; the claim
    store.prepare_claim(sweep_id)  # its window holds the rest of the grid: nothing to do
    assert db.begun == 2
    store.claim_run(sweep_id)
    assert db.begun == 3


def test_a_write_waits_for_the_lock_and_says_so_once_each_way(tmp_path, monkeypatch):
    import sweepkit.backends.store.sqlite as sqlite_store

    notes: list[str] = []
    monkeypatch.setattr(sqlite_store, "note", notes.append)
    monkeypatch.setattr(sqlite_store, "LOCK_WAIT_S", 0.25)
    monkeypatch.setattr(sqlite_store, "LOCK_SLICE_S", 0.25)
    store = open_store(tmp_path / "sweeps.db")
    store._db = FailingBegins(store._db, failures=3)  # three of SQLite's waits run out
    sweep_id = store.create_sweep(HYPERBAND_GRID)
    assert notes == [
        f"the sweep store {store.path} is locked by another process (for 0.25 s now): waiting"
        " for it (Ctrl-C to give up)",
        f"the sweep store {store.path} is free again after 0.75+ s",
    ]
    assert store.sweep(sweep_id) is not None  # it landed


@pytest.mark.parametrize(
    ("error", "remedy"),
    [
        ("database disk image is malformed", "; the file is damaged: keep a copy, then `sqlite3"),
        ("database or disk is full", "; free some disk space, then start the agent again"),
        ("disk I/O error", None),
    ],
)
def test_a_sqlite_failure_is_one_line_with_its_remedy(tmp_path, error, remedy):
    store = open_store(tmp_path / "sweeps.db")
    store._db = FailingBegins(store._db, failures=1, error=error)
    with pytest.raises(StoreError) as failed:
        store.create_sweep(HYPERBAND_GRID)
    said = f"the sweep store {store.path} failed: {error}"
    assert str(failed.value).startswith(said + (remedy or ""))
    assert remedy or str(failed.value) == said
    assert store.sweeps() == []


def test_a_store_in_a_folder_not_made_yet_is_made_there(tmp_path):
    store = open_store(tmp_path / "a" / "b" / "sweeps.db")
    assert store.location == str(tmp_path / "a" / "b" / "sweeps.db")
    assert (tmp_path / "a" / "b" / "sweeps.db").is_file()


def test_a_file_that_is_not_sqlite_is_a_clear_error(tmp_path):
    bogus = tmp_path / "notes.txt"
    bogus.write_text("this is not a database, just some text " * 100)
    with pytest.raises(StoreError, match="cannot use"):
        open_store(bogus)
    assert bogus.read_text().startswith("this is not a database")


def test_store_is_in_wal_mode(tmp_path):
    open_store(tmp_path / "s.db")
    (mode,) = sqlite3.connect(tmp_path / "s.db").execute("PRAGMA journal_mode").fetchone()
    assert mode == "wal"


def test_a_store_from_before_the_metric_columns_is_migrated(tmp_path):
    # The schema of the release before this one: each run's whole metric history as JSON.
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript(
        """
        CREATE TABLE sweeps (id TEXT PRIMARY KEY, name TEXT, project TEXT, config TEXT NOT NULL,
            state TEXT NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL, wandb_sweep TEXT);
        CREATE TABLE runs (sweep_id TEXT NOT NULL, id TEXT NOT NULL, state TEXT NOT NULL,
            config TEXT NOT NULL, search_info TEXT, history TEXT NOT NULL DEFAULT '[]',
            summary TEXT NOT NULL DEFAULT '{}', run_dir TEXT, error TEXT, created_at REAL NOT NULL,
            heartbeat_at REAL NOT NULL, ended_at REAL, attempt INTEGER NOT NULL DEFAULT 1,
            retry_of TEXT, synced_at REAL, PRIMARY KEY (sweep_id, id));
        """
    )
    unmeasured = {"method": "grid", "parameters": {"a": {"values": [1]}}}  # no metric: skipped
    maximized = {**unmeasured, "metric": {"name": "acc", "goal": "maximize"}}  # no early_terminate
    for sweep_id, config in [("local-none", unmeasured), ("local-old", HYPERBAND_GRID),
                             ("local-max", maximized)]:  # fmt: skip
        old.execute(
            "INSERT INTO sweeps VALUES (?, NULL, NULL, ?, 'running', 0, 0, NULL)",
            (sweep_id, json.dumps(config)),
        )
    old.execute(
        "INSERT INTO runs (sweep_id, id, state, config, history, summary, created_at, heartbeat_at)"
        " VALUES ('local-max', 'm1', 'finished', ?, ?, ?, 0, 0)",
        (
            json.dumps({"a": {"value": 1}}),
            json.dumps([{"acc": 10.0}, {"acc": 90.0}]),
            json.dumps({"acc": {"min": 10.0, "max": 90.0}}),  # define_metric(summary=min,max)
        ),
    )
    old.execute(
        "INSERT INTO runs (sweep_id, id, state, config, history, summary, created_at, heartbeat_at)"
        " VALUES ('local-old', 'r1', 'finished', ?, ?, ?, 0, 0)",
        (
            json.dumps({"a": {"value": 1}}),
            json.dumps([{"loss": 3.0}, {"loss": 1.0}, {"loss": 2.0}]),
            json.dumps({"loss": 1.5, "acc": 50.0}),  # the summary, not the last point
        ),
    )
    old.commit()
    old.close()

    store = open_store(path)
    (run,) = store.runs("local-old")
    assert (run.metric_count, run.metric_min, run.metric_max, run.metric_last) == (3, 1.0, 3.0, 2.0)
    assert run.metric_value == 1.5
    assert store.metric_points("local-old").get("r1", []) == [3.0, 1.0, 2.0]
    (maxed,) = store.runs("local-max")
    assert (maxed.metric_count, maxed.metric_value) == (2, 90.0)  # the goal picks the max
    assert store.metric_points("local-max").get("m1", []) == []
    assert store.claim_run("local-old").config == {"a": {"value": 2}}  # the grid goes on
