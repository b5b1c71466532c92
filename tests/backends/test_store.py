"""The SQLite store and the engine inside its transactions, including from parallel processes."""

from __future__ import annotations

import itertools
import json
import multiprocessing
import random
import sqlite3

import numpy as np
import pytest

from sweepkit.backends.store import Store, StoreError
from tests.logged import logged

GRID_12 = {
    "method": "grid",
    "parameters": {
        "a": {"values": [1, 2, 3]},
        "b": {"values": ["x", "y"]},
        "c": {"values": [True, False]},
    },
}


def drain(store: Store, sweep_id: str, loss=lambda cfg: 0.0) -> list[dict]:
    configs = []
    while (run := store.claim_run(sweep_id)) is not None:
        configs.append({k: v["value"] for k, v in run.config.items()})
        value = loss(configs[-1])
        store.finish_run(
            sweep_id,
            run.id,
            state="finished",
            progress=logged([value]),
            summary={"loss": value},
            run_dir=None,
        )
    return configs


def test_grid_hands_out_every_combination_exactly_once_then_finishes(tmp_path):
    store = Store(tmp_path / "s.db")
    sweep_id = store.create_sweep(GRID_12)
    configs = drain(store, sweep_id)
    expected = {(a, b, c) for a, b, c in itertools.product([1, 2, 3], ["x", "y"], [True, False])}
    assert sorted((c["a"], c["b"], c["c"]) for c in configs) == sorted(expected)
    assert store.sweep_row(sweep_id)["state"] == "finished"


def test_run_cap_holds_for_random_search(tmp_path):
    store = Store(tmp_path / "s.db")
    sweep_id = store.create_sweep(
        {
            "method": "random",
            "run_cap": 5,
            "parameters": {"lr": {"distribution": "uniform", "min": 0, "max": 1}},
        }
    )
    assert len(drain(store, sweep_id)) == 5


def test_metric_target_ends_the_sweep(tmp_path):
    store = Store(tmp_path / "s.db")
    config = {
        "method": "grid",
        "metric": {"name": "loss", "goal": "minimize", "target": 0.5},
        "parameters": {"a": {"values": [1, 0, 2, 3]}},
    }
    sweep_id = store.create_sweep(config)
    configs = drain(store, sweep_id, loss=lambda cfg: float(cfg["a"]))
    assert [c["a"] for c in configs] == [1, 0]  # a=0 reached the target: a=2, a=3 never ran


def test_bayes_gets_the_metric_history_it_needs(tmp_path):
    # The engine draws from numpy's and Python's global generators: seeded, the test is exact.
    np.random.seed(0)
    random.seed(0)
    store = Store(tmp_path / "s.db")
    config = {
        "method": "bayes",
        "metric": {"name": "loss", "goal": "minimize"},
        "run_cap": 12,
        "parameters": {"x": {"distribution": "uniform", "min": -10, "max": 10}},
    }
    sweep_id = store.create_sweep(config)
    configs = drain(store, sweep_id, loss=lambda cfg: (cfg["x"] - 3) ** 2)
    assert len(configs) == 12
    # Past its random start, bayes concentrates near the optimum at x=3.
    assert min(abs(c["x"] - 3) for c in configs[6:]) < 2


def _claim_all(path: str, sweep_id: str, out: multiprocessing.Queue) -> None:
    store = Store(path)
    got = []
    while (run := store.claim_run(sweep_id)) is not None:
        got.append(tuple(sorted((k, v["value"]) for k, v in run.config.items())))
        store.finish_run(
            sweep_id, run.id, state="finished", progress=None, summary={}, run_dir=None
        )
    out.put(got)


@pytest.mark.parametrize(
    ("config", "expected"),
    [(GRID_12, 12), ({**GRID_12, "run_cap": 7}, 7)],
    ids=["grid", "run_cap"],
)
def test_parallel_processes_never_share_a_grid_point_nor_pass_run_cap(tmp_path, config, expected):
    path = str(tmp_path / "s.db")
    sweep_id = Store(path).create_sweep(config)
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    workers = [ctx.Process(target=_claim_all, args=(path, sweep_id, out)) for _ in range(6)]
    for w in workers:
        w.start()
    claimed = [c for _ in workers for c in out.get(timeout=60)]
    for w in workers:
        w.join(timeout=30)
    assert len(claimed) == expected
    assert len(set(claimed)) == expected


def test_a_file_that_is_not_sqlite_is_a_clear_error(tmp_path):
    bogus = tmp_path / "notes.txt"
    bogus.write_text("this is not a database, just some text " * 100)
    with pytest.raises(StoreError, match="cannot use"):
        Store(bogus)
    assert bogus.read_text().startswith("this is not a database")


def test_store_is_in_wal_mode(tmp_path):
    Store(tmp_path / "s.db")
    (mode,) = sqlite3.connect(tmp_path / "s.db").execute("PRAGMA journal_mode").fetchone()
    assert mode == "wal"


HYPERBAND_GRID = {
    "method": "grid",
    "metric": {"name": "loss", "goal": "minimize"},
    "early_terminate": {"type": "hyperband", "min_iter": 2, "eta": 2},
    "parameters": {"a": {"values": [1, 2]}},
}


def kept_points(store: Store, sweep_id: str, run_id: str) -> list[float]:
    rows = store._db.execute(
        "SELECT value FROM metric_points WHERE sweep_id = ? AND run_id = ? ORDER BY idx",
        (sweep_id, run_id),
    )
    return [value for (value,) in rows]


def test_heartbeats_append_only_the_new_points_and_keep_a_bounded_prefix(tmp_path, monkeypatch):
    import sweepkit.backends.store as store_module
    from sweepkit.follow import RunMetrics

    monkeypatch.setattr(store_module, "KEEP_POINTS", 5)
    store = Store(tmp_path / "s.db")
    sweep_id = store.create_sweep(HYPERBAND_GRID)
    run = store.claim_run(sweep_id)
    metrics = RunMetrics("loss")
    for beat in ([9.0, 8.0, 7.0], [6.0, 5.0], [4.0, 3.0, 2.0]):
        store.heartbeat(sweep_id, run.id, metrics.replay(beat, {}))  # each beat: its new points
    assert kept_points(store, sweep_id, run.id) == [
        9.0,
        8.0,
        7.0,
        6.0,
        5.0,
    ]  # the first 5, in order
    row = store._db.execute(
        "SELECT metric_count, metric_min, metric_max, metric_last FROM runs WHERE id = ?", (run.id,)
    ).fetchone()
    assert row == (8, 2.0, 9.0, 2.0)


def test_a_sweep_without_early_termination_keeps_no_points(tmp_path):
    store = Store(tmp_path / "s.db")
    config = dict(HYPERBAND_GRID)
    del config["early_terminate"]
    sweep_id = store.create_sweep(config)
    run = store.claim_run(sweep_id)
    store.heartbeat(sweep_id, run.id, logged([3.0, 2.0, 1.0]))
    assert kept_points(store, sweep_id, run.id) == []


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

    store = Store(path)
    row = store._db.execute(
        "SELECT metric_count, metric_min, metric_max, metric_last, metric_value FROM runs"
    ).fetchone()
    assert row == (3, 1.0, 3.0, 2.0, 2.0)
    assert kept_points(store, "local-old", "r1") == [3.0, 1.0, 2.0]
    assert store.claim_run("local-old").config == {"a": {"value": 2}}  # the grid goes on
