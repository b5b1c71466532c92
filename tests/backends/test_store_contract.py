"""One contract, every store kind: SQLite and PostgreSQL run the same tests (as Optuna's
storage tests do, optuna/testing/pytest_storages.py).

`store_location` (tests/conftest.py) is a fresh SQLite file and a fresh database on the
session's throwaway PostgreSQL server; the PostgreSQL half skips, with the reason, where
the server is not installed.
"""

from __future__ import annotations

import itertools
import multiprocessing
import random

import numpy as np
import pytest

from sweepkit.backends.store import Store, StoredRun, StoredSweep, StoreError, open_store
from sweepkit.lifecycle import InvalidMove
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


def test_grid_hands_out_every_combination_exactly_once_then_finishes(store_location):
    store = open_store(store_location)
    sweep_id = store.create_sweep(GRID_12)
    configs = drain(store, sweep_id)
    expected = {(a, b, c) for a, b, c in itertools.product([1, 2, 3], ["x", "y"], [True, False])}
    assert sorted((c["a"], c["b"], c["c"]) for c in configs) == sorted(expected)
    assert store.sweep(sweep_id).state == "finished"


def test_run_cap_holds_for_random_search(store_location):
    store = open_store(store_location)
    sweep_id = store.create_sweep(
        {
            "method": "random",
            "run_cap": 5,
            "parameters": {"lr": {"distribution": "uniform", "min": 0, "max": 1}},
        }
    )
    assert len(drain(store, sweep_id)) == 5


def test_metric_target_ends_the_sweep(store_location):
    store = open_store(store_location)
    config = {
        "method": "grid",
        "metric": {"name": "loss", "goal": "minimize", "target": 0.5},
        "parameters": {"a": {"values": [1, 0, 2, 3]}},
    }
    sweep_id = store.create_sweep(config)
    configs = drain(store, sweep_id, loss=lambda cfg: float(cfg["a"]))
    assert [c["a"] for c in configs] == [1, 0]  # a=0 reached the target: a=2, a=3 never ran


def test_bayes_gets_the_metric_history_it_needs(store_location):
    # The engine draws from numpy's and Python's global generators: seeded, the test is exact.
    np.random.seed(0)
    random.seed(0)
    store = open_store(store_location)
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
    store = open_store(path)
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
def test_parallel_processes_never_share_a_grid_point_nor_pass_run_cap(
    store_location, config, expected
):
    path = store_location
    sweep_id = open_store(path).create_sweep(config)
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    workers = [ctx.Process(target=_claim_all, args=(path, sweep_id, out)) for _ in range(6)]
    for w in workers:
        w.start()
    claimed = [c for _ in workers for c in out.get(timeout=600)]  # a hang guard
    for w in workers:
        w.join(timeout=30)
    assert len(claimed) == expected
    assert len(set(claimed)) == expected


HYPERBAND_GRID = {
    "method": "grid",
    "metric": {"name": "loss", "goal": "minimize"},
    "early_terminate": {"type": "hyperband", "min_iter": 2, "eta": 2},
    "parameters": {"a": {"values": [1, 2]}},
}


def kept_points(store: Store, sweep_id: str, run_id: str) -> list[float]:
    return store.metric_points(sweep_id).get(run_id, [])


def test_heartbeats_append_only_the_new_points_and_keep_a_bounded_prefix(
    store_location, monkeypatch
):
    import sweepkit.backends.store.base as store_module
    from sweepkit.follow import RunMetrics

    monkeypatch.setattr(store_module, "KEEP_POINTS", 5)
    store = open_store(store_location)
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
    (stored,) = store.runs(sweep_id)
    assert (stored.metric_count, stored.metric_min, stored.metric_max, stored.metric_last) == (
        8,
        2.0,
        9.0,
        2.0,
    )


def test_a_sweep_without_early_termination_keeps_no_points(store_location):
    store = open_store(store_location)
    config = dict(HYPERBAND_GRID)
    del config["early_terminate"]
    sweep_id = store.create_sweep(config)
    run = store.claim_run(sweep_id)
    store.heartbeat(sweep_id, run.id, logged([3.0, 2.0, 1.0]))
    assert kept_points(store, sweep_id, run.id) == []


def test_records_are_typed_and_an_unknown_sweep_is_none(store_location):
    store = open_store(store_location)
    assert store.sweep("local-nosuchid") is None and store.sweeps() == []
    sweep_id = store.create_sweep(GRID_12, name="my sweep", project="p")
    (sweep,) = store.sweeps()
    assert isinstance(sweep, StoredSweep) and sweep == store.sweep(sweep_id)
    assert (sweep.id, sweep.name, sweep.project, sweep.state) == (
        sweep_id,
        "my sweep",
        "p",
        "running",
    )
    assert sweep.config == GRID_12
    run = store.claim_run(sweep_id, agent="w0", log_dir="/logs", wandb_dir="/wd")
    (stored,) = store.runs(sweep_id)
    assert isinstance(stored, StoredRun)
    assert (stored.id, stored.name, stored.state, stored.attempt) == (
        run.id,
        "my-sweep-1",
        "running",
        1,
    )
    assert stored.config == run.config and stored.log_file == f"/logs/{run.id}.log"
    assert (stored.agent, stored.wandb_dir, stored.retry_of) == ("w0", "/wd", None)


def test_a_run_ends_once_and_only_into_an_end(store_location):
    store = open_store(store_location)
    sweep_id = store.create_sweep(GRID_12)
    run = store.claim_run(sweep_id)
    with pytest.raises(InvalidMove):
        store.finish_run(sweep_id, run.id, state="running", progress=None, summary={}, run_dir=None)
    assert store.finish_run(
        sweep_id, run.id, state="failed", progress=None, summary={}, run_dir="/r", error="boom"
    )
    assert not store.finish_run(
        sweep_id, run.id, state="finished", progress=None, summary={}, run_dir=None
    )
    (stored,) = store.runs(sweep_id)
    assert (stored.state, stored.error, stored.run_dir) == ("failed", "boom", "/r")
    assert store.unfinished_points(sweep_id) == {"failed": 1}


def test_sweep_commands_move_its_state_and_pause_hands_out_nothing(store_location):
    store = open_store(store_location)
    sweep_id = store.create_sweep(GRID_12)
    assert store.change_sweep_state(sweep_id, "pause") == "paused"
    assert store.claim_run(sweep_id) is None and store.sweep_state(sweep_id) == "paused"
    assert store.change_sweep_state(sweep_id, "resume") == "running"
    assert store.claim_run(sweep_id) is not None
    store.change_sweep_state(sweep_id, "cancel")
    with pytest.raises(StoreError, match=r"cannot stop sweep .*: it is canceled"):
        store.change_sweep_state(sweep_id, "stop")


def test_a_crashed_point_is_offered_again_then_lost_past_its_retries(store_location):
    store = open_store(store_location)
    sweep_id = store.create_sweep({"method": "grid", "parameters": {"x": {"values": [1]}}})
    first = store.claim_run(sweep_id)
    configs = [first.config]
    for _ in range(2):  # --retries 2: offered twice more, as attempts 2 and 3
        store.reap(sweep_id, crash_grace_s=0.0)
        configs.append(store.claim_run(sweep_id, crash_grace_s=0.0).config)
    store.reap(sweep_id, crash_grace_s=0.0)
    assert store.claim_run(sweep_id) is None
    assert configs == [first.config] * 3
    assert [r.attempt for r in store.runs(sweep_id)] == [1, 2, 3]
    assert store.unfinished_points(sweep_id) == {"crashed": 1}
    assert store.sweep_state(sweep_id) == "running"  # a lost point keeps it from finishing


def test_a_preempted_point_is_offered_again_without_using_a_retry(store_location):
    store = open_store(store_location)
    sweep_id = store.create_sweep({"method": "grid", "parameters": {"x": {"values": [1, 2]}}})
    run = store.claim_run(sweep_id)
    store.finish_run(sweep_id, run.id, state="preempted", progress=None, summary={}, run_dir=None)
    again = store.claim_run(sweep_id, max_retries=0)
    assert again.config == run.config
    assert store.runs(sweep_id)[-1].retry_of == run.id


def test_reopening_a_store_migrates_nothing_twice_and_a_newer_one_is_refused(store_location):
    from sweepkit.backends.store.sql import SCHEMA_VERSION

    store = open_store(store_location)
    sweep_id = store.create_sweep(GRID_12)
    store.claim_run(sweep_id)
    store.close()
    again = open_store(store_location)  # every migration is applied once
    assert len(again.runs(sweep_id)) == 1
    versions = again._transact(
        lambda c: c.execute("SELECT version FROM sweepkit_schema ORDER BY version").fetchall()
    )
    assert [v for (v,) in versions] == list(range(1, SCHEMA_VERSION + 1))
    again._transact(
        lambda c: c.execute(
            "INSERT INTO sweepkit_schema (version) VALUES (?)", (SCHEMA_VERSION + 1,)
        )
    )
    again.close()
    with pytest.raises(StoreError, match="made by a newer sweepkit"):
        open_store(store_location)


def test_a_store_at_schema_1_gets_the_later_migrations(store_location, monkeypatch):
    from sweepkit.backends.store import sql

    monkeypatch.setattr(sql, "MIGRATIONS", sql.MIGRATIONS[:1])
    monkeypatch.setattr(sql, "SCHEMA_VERSION", 1)
    old = open_store(store_location)
    sweep_id = old.create_sweep(GRID_12)
    old.close()
    monkeypatch.undo()
    store = open_store(store_location)
    versions = store._transact(
        lambda c: c.execute("SELECT max(version) FROM sweepkit_schema").fetchone()
    )
    assert versions == (sql.SCHEMA_VERSION,) and store.sweep(sweep_id).config == GRID_12


@pytest.mark.parametrize("method", ["grid", "random"])
def test_a_claim_reads_the_same_facts_as_scheduling_computes_from_every_run(store_location, method):
    # The store's SQL (counts, extremes, only the unsettled runs for random search) must agree
    # with `SweepRuns.of`, the definition in Python, on the same runs.
    from sweepkit.scheduling import SweepRuns, reads_past_runs

    store = open_store(store_location)
    config = {"method": method, "parameters": {"x": {"values": list(range(8))}}}
    sweep_id = store.create_sweep(config)
    ends = ["finished", "failed", "crashed", "preempted", "finished", None]  # None: still running
    for value, state in enumerate(ends):
        run = store.claim_run(sweep_id, max_retries=0)
        if state is not None:
            progress = logged([float(value)]) if state == "finished" else None
            store.finish_run(
                sweep_id, run.id, state=state, progress=progress, summary={}, run_dir=None
            )
    store.claim_run(sweep_id, max_retries=0)  # the preempted point again: a retry
    with_every = reads_past_runs(config)
    read = store._transact(lambda cursor: store._sweep_runs(cursor, sweep_id, with_every))
    expected = SweepRuns.of(store.runs(sweep_id), with_every=with_every)
    facts = ("tries", "points", "metric_min", "metric_max", "retried")
    assert [getattr(read, f) for f in facts] == [getattr(expected, f) for f in facts]
    assert [(r.id, r.state) for r in read.unsettled] == [
        (r.id, r.state) for r in expected.unsettled
    ]
    assert (read.every is None) == (expected.every is None) == (method == "random")
    if read.every is not None:
        assert [r.id for r in read.every] == [r.id for r in expected.every]
    assert (read.tries, read.points, len(read.unsettled)) == (7, 6, 5)


_FIRST_CLAIM = """
import sys
from sweepkit import scheduling
from sweepkit.backends.store import open_store

loaded = []
choose = scheduling.choose
def spy(*args, **kwargs):  # inside the claim's transaction, holding the sweep
    loaded.append("sweeps.bayes_search" in sys.modules)
    return choose(*args, **kwargs)
scheduling.choose = spy
open_store(sys.argv[1]).claim_run(sys.argv[2])
print(loaded)
"""


def test_an_agents_first_claim_imports_the_engine_before_it_holds_the_sweep(store_location):
    # The engine's first suggestion imports scipy and scikit-learn (~0.5 s): inside the
    # claim's transaction every other agent of the sweep waited it out (32 agents: 20 s).
    import subprocess
    import sys

    store = open_store(store_location)
    sweep_id = store.create_sweep({"method": "random", "parameters": {"x": {"min": 0, "max": 1}}})
    first = subprocess.run(  # a fresh process: nothing imported yet
        [sys.executable, "-c", _FIRST_CLAIM, store_location, sweep_id],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert first.stdout.split() == ["[True]"]
