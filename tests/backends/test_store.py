"""The SQLite store and the engine inside its transactions, including from parallel processes."""

from __future__ import annotations

import itertools
import multiprocessing
import random
import sqlite3

import numpy as np
import pytest

from sweepkit.backends.store import Store, StoreError

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
            history=[{"loss": value}],
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
        store.finish_run(sweep_id, run.id, state="finished", history=[], summary={}, run_dir=None)
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
