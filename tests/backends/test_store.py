"""What only the SQLite store has: its file, WAL, the stores made before numbered migrations, and
its refusal of network filesystems. The contract every kind shares is test_store_contract.py."""

from __future__ import annotations

import json
import sqlite3

import pytest

from sweepkit.backends.store import StoreError, open_store
from tests.backends.test_store_contract import HYPERBAND_GRID, kept_points


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
    old.execute(
        "INSERT INTO sweeps VALUES ('local-old', NULL, NULL, ?, 'running', 0, 0, NULL)",
        (json.dumps(HYPERBAND_GRID),),
    )
    old.execute(
        "INSERT INTO runs (sweep_id, id, state, config, history, summary, created_at, heartbeat_at)"
        " VALUES ('local-old', 'r1', 'finished', ?, ?, ?, 0, 0)",
        (
            json.dumps({"a": {"value": 1}}),
            json.dumps([{"loss": 3.0}, {"loss": 1.0}, {"loss": 2.0}]),
            json.dumps({"loss": 2.0, "acc": 50.0}),
        ),
    )
    old.commit()
    old.close()

    store = open_store(path)
    (run,) = store.runs("local-old")
    assert (run.metric_count, run.metric_min, run.metric_max, run.metric_last) == (3, 1.0, 3.0, 2.0)
    assert run.metric_value == 2.0
    assert kept_points(store, "local-old", "r1") == [3.0, 1.0, 2.0]
    assert store.claim_run("local-old").config == {"a": {"value": 2}}  # the grid goes on
