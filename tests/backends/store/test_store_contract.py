"""One contract, every store kind: SQLite and PostgreSQL run the same tests (as Optuna's
storage tests do, optuna/testing/pytest_storages.py).

`store_location` (tests/conftest.py) is a fresh SQLite file and a fresh database on the
session's throwaway PostgreSQL server; the PostgreSQL half skips, with the reason, where
the server is not installed.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing
import random
import re
import time
import warnings

import numpy as np
import pytest

from sweepkit.backends.store import Store, StoreError, open_store, redacted
from sweepkit.core.lifecycle import MAX_RETRIES, InvalidMove, check_move
from sweepkit.core.records import StoredRun, StoredSweep
from sweepkit.core.scheduling import unfinished_points
from sweepkit.runner.reaper import reap
from tests.helpers.grids import GRID_12, HYPERBAND_GRID
from tests.helpers.logged import logged


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
    one = store.create_sweep(
        {"method": "random", "run_cap": 1, "parameters": {"x": {"values": [1]}}}
    )
    assert len(drain(store, one)) == 1  # no runs yet is 0 points, not none


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


def kept_points(store: Store, sweep_id: str, run_id: str) -> list[float]:
    return store.metric_points(sweep_id).get(run_id, [])


def test_heartbeats_append_only_the_new_points_and_keep_a_bounded_prefix(
    store_location, monkeypatch
):
    import sweepkit.backends.store.base as store_module
    from sweepkit.core.records import MetricTally

    monkeypatch.setattr(store_module, "KEEP_POINTS", 5)
    store = open_store(store_location)
    sweep_id = store.create_sweep(HYPERBAND_GRID)
    run = store.claim_run(sweep_id)
    metrics = MetricTally("loss")
    # The second beat straddles the limit: only its first two points are kept.
    for beat in ([9.0, 8.0, 7.0], [6.0, 5.0, 4.0], [3.0, 2.0]):
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


def test_a_beat_after_the_runs_end_changes_nothing_of_it(store_location):
    # A beat sent late (the reaper, or the run's own end, came first) must not overwrite the
    # metric its end recorded: the scheduler reads that one.
    store = open_store(store_location)
    sweep_id = store.create_sweep(
        {"method": "grid", "metric": {"name": "loss"}, "parameters": {"x": {"values": [1, 2]}}}
    )
    run = store.claim_run(sweep_id)
    store.finish_run(
        sweep_id, run.id, state="finished", progress=logged([2.0, 1.0]), summary={}, run_dir="/a"
    )
    store.heartbeat(sweep_id, run.id, logged([2.0, 1.0, 0.5, 0.1]), run_dir="/b")
    (ended,) = store.runs(sweep_id)
    assert (ended.state, ended.metric_count, ended.metric_min, ended.run_dir) == (
        "finished", 2, 1.0, "/a",
    )  # fmt: skip


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
    assert stored.config == run.config and stored.log_file == run.log_file == f"/logs/{run.id}.log"
    assert (stored.agent, stored.wandb_dir, stored.retry_of) == ("w0", "/wd", None)


def test_sync_marks_the_runs_it_uploaded_and_keeps_the_w_and_b_sweep_it_made(store_location):
    store = open_store(store_location)
    sweep_id, other_id = store.create_sweep(GRID_12), store.create_sweep(GRID_12)
    runs = [store.claim_run(sweep_id) for _ in range(3)]
    for run in runs:
        store.finish_run(
            sweep_id, run.id, state="finished", progress=None, summary={}, run_dir=f"/r/{run.id}"
        )
    going = store.claim_run(sweep_id)
    store.heartbeat(sweep_id, going.id, run_dir="/r/going")  # a running run is not uploaded
    assert store.runs(sweep_id)[-1].run_dir == "/r/going"
    before = time.time()
    store.mark_synced(sweep_id, [runs[0].id, runs[2].id], "ent/proj/abc123")
    assert store.synced_run_ids(sweep_id) == [runs[0].id, runs[2].id]
    assert store.unsynced_runs(sweep_id) == [(runs[1].id, f"/r/{runs[1].id}")]
    assert all(run.synced_at >= before for run in store.runs(sweep_id) if run.synced_at)
    assert store.sweep(sweep_id).wandb_sweep == "ent/proj/abc123"
    assert store.sweep(other_id).wandb_sweep is None
    store.mark_synced(sweep_id, [runs[1].id], None)  # `sync --no-sweep` keeps the W&B sweep
    assert store.unsynced_runs(sweep_id) == []
    assert store.sweep(sweep_id).wandb_sweep == "ent/proj/abc123"


def test_run_names_are_the_sweeps_name_slugged_and_numbered(store_location):
    store = open_store(store_location)
    named = store.create_sweep(GRID_12, name="  My sweep!  ")
    unnamed = store.create_sweep(GRID_12, name="!!!")
    assert [store.claim_run(named).display_name for _ in range(2)] == ["my-sweep-1", "my-sweep-2"]
    assert store.claim_run(unnamed).display_name == "sweep-1"
    first = store.runs(named)[0]
    assert (first.agent, first.wandb_dir) == ("", None)  # claimed without a label or a folder
    assert re.fullmatch(r"[a-z0-9]{8}", first.id) and re.fullmatch(r"local-[a-z0-9]{8}", named)


def test_a_sweeps_name_project_and_entity_come_from_its_yaml_unless_given(store_location):
    store = open_store(store_location)
    config = {**GRID_12, "name": "from yaml", "project": "yp", "entity": "ye"}
    from_yaml = store.sweep(store.create_sweep(config))
    assert (from_yaml.name, from_yaml.project, from_yaml.entity) == ("from yaml", "yp", "ye")
    given = store.sweep(store.create_sweep(config, name="n", project="p", entity="e"))
    assert (given.name, given.project, given.entity) == ("n", "p", "e")
    assert time.time() - 60 < given.created_at <= time.time()


def test_retry_failed_offers_again_the_points_that_failed_before_the_agent_started(
    store_location,
):
    store = open_store(store_location)
    sweep_id = store.create_sweep({"method": "grid", "parameters": {"x": {"values": [1, 2]}}})
    failed = store.claim_run(sweep_id)
    store.finish_run(sweep_id, failed.id, state="failed", progress=None, summary={}, run_dir=None)
    started = time.time()  # `sweepkit agent --retry-failed` starts
    again = store.claim_run(sweep_id, retry_ended_before=started)
    assert again.config == failed.config and store.runs(sweep_id)[-1].retry_of == failed.id
    assert store.claim_run(sweep_id).config != failed.config  # without it: the next point


def replay_transactions(store, monkeypatch):
    """Every write transaction lands, then runs again whole: what PostgreSQL's store does when
    the connection is lost at COMMIT (it cannot know whether the commit landed)."""
    real = store._transact

    def twice(work, *, write=True):
        first = real(work, write=write)
        return real(work, write=write) if write else first

    monkeypatch.setattr(store, "_transact", twice)


def test_a_claim_or_end_run_again_after_its_commit_landed_is_done_once(store_location, monkeypatch):
    store = open_store(store_location)
    sweep_id = store.create_sweep(GRID_12)
    replay_transactions(store, monkeypatch)
    run = store.claim_run(sweep_id, log_dir="/logs")
    (stored,) = store.runs(sweep_id)  # one run, not two: the second try found its own
    assert run.log_file == stored.log_file == f"/logs/{run.id}.log"
    assert (stored.id, stored.name, stored.config) == (run.id, run.display_name, run.config)
    assert store.finish_run(
        sweep_id, run.id, state="finished", progress=None, summary={}, run_dir=None
    )  # the second try sees its own end: still True
    assert store.runs(sweep_id)[0].state == "finished"


def test_a_claim_after_the_reaper_offers_the_crashed_point_again(store_location):
    store = open_store(store_location)
    sweep_id = store.create_sweep({"method": "grid", "parameters": {"x": {"values": [1]}}})
    lost = store.claim_run(sweep_id)
    assert store.claim_run(sweep_id) is None  # a claim alone reaps nothing: the run is going
    assert reap(store, sweep_id, crash_grace_s=0.0) == [(lost.id, "crashed")]  # no beat since
    again = store.claim_run(sweep_id)
    first, second = store.runs(sweep_id)
    assert (first.id, first.state) == (lost.id, "crashed")
    assert first.error == "no heartbeat for 0 s: its agent died" and first.summary == {}
    assert (second.retry_of, again.config) == (lost.id, lost.config)


def test_an_end_is_guarded_with_the_state_read_under_the_lock(store_location, monkeypatch):
    """Optuna's `check_trial_is_updatable` on the row just locked: the guard sees the state
    the run has, not a constant 'running' (an end over an end is refused by the guard)."""
    from sweepkit.backends.store import sql

    asked = []

    def guard(old: str, new: str) -> None:
        asked.append((old, new))
        return check_move(old, new)

    monkeypatch.setattr(sql, "check_move", guard)
    store = open_store(store_location)
    sweep_id = store.create_sweep(GRID_12)
    run = store.claim_run(sweep_id)
    end = {"progress": None, "summary": {}, "run_dir": None}
    assert store.finish_run(sweep_id, run.id, state="stopped", **end)
    assert not store.finish_run(sweep_id, run.id, state="crashed", **end)  # the first end stands
    assert asked == [("running", "stopped"), ("stopped", "crashed")]


def test_a_reaper_loses_to_a_heartbeat_newer_than_its_cutoff(store_location):
    store = open_store(store_location)
    sweep_id = store.create_sweep(GRID_12)
    run = store.claim_run(sweep_id)
    cutoff = time.time() - 60.0  # the run beat since: its agent is alive
    assert not store.finish_run(
        sweep_id, run.id, state="crashed", progress=None, summary={}, run_dir=None,
        stale_before=cutoff,
    )  # fmt: skip
    assert store.runs(sweep_id)[0].state == "running"
    assert not store.finish_run(
        sweep_id, "nosuchrun", state="finished", progress=None, summary={}, run_dir=None
    )


def test_a_transaction_that_raises_leaves_nothing(store_location):
    store = open_store(store_location)
    sweep_id = store.create_sweep(GRID_12)

    def half(cursor):
        cursor.execute("UPDATE sweeps SET state = 'paused' WHERE id = ?", (sweep_id,))
        raise RuntimeError("the claim broke half-way")

    with pytest.raises(RuntimeError):
        store._transact(half)
    assert store.sweep_state(sweep_id) == "running"


def test_a_run_ends_once_and_only_into_an_end(store_location):
    store = open_store(store_location)
    sweep_id = store.create_sweep(GRID_12)
    run = store.claim_run(sweep_id)
    with pytest.raises(InvalidMove):
        store.finish_run(sweep_id, run.id, state="running", progress=None, summary={}, run_dir=None)
    assert store.finish_run(
        sweep_id, run.id, state="failed", progress=None, summary={"loss": 0.5}, run_dir="/r",
        error="boom",
    )  # fmt: skip
    assert not store.finish_run(
        sweep_id, run.id, state="finished", progress=None, summary={}, run_dir=None
    )
    (stored,) = store.runs(sweep_id)
    assert (stored.state, stored.error, stored.run_dir) == ("failed", "boom", "/r")
    assert stored.summary == {"loss": 0.5}
    assert unfinished_points(store.runs(sweep_id), MAX_RETRIES) == {"failed": 1}


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
        reap(store, sweep_id, crash_grace_s=0.0)
        configs.append(store.claim_run(sweep_id).config)
    reap(store, sweep_id, crash_grace_s=0.0)
    assert store.claim_run(sweep_id) is None
    assert configs == [first.config] * 3
    assert [r.attempt for r in store.runs(sweep_id)] == [1, 2, 3]
    assert unfinished_points(store.runs(sweep_id), MAX_RETRIES) == {"crashed": 1}
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
    from sweepkit.backends.store.schema import SCHEMA_VERSION

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
    with pytest.raises(
        StoreError, match=re.escape(f"{redacted(store_location)} was made by a newer")
    ):
        open_store(store_location)


def test_a_store_another_process_migrated_meanwhile_is_migrated_once(store_location, monkeypatch):
    """Two agents of a new release open an old store at once: the second reads the old
    version, then waits for the first's migration; it applies nothing again."""
    from sweepkit.backends.store import sql
    from sweepkit.backends.store.schema import SCHEMA_VERSION

    open_store(store_location).close()  # the first agent migrated it
    monkeypatch.setattr(sql.SQLStore, "_schema_version", lambda self: SCHEMA_VERSION - 1)
    second = open_store(store_location)  # must neither refuse it nor apply one twice
    versions = second._transact(
        lambda c: c.execute("SELECT version FROM sweepkit_schema").fetchall()
    )
    assert sorted(v for (v,) in versions) == list(range(1, SCHEMA_VERSION + 1))


def test_a_store_at_schema_1_gets_the_later_migrations(store_location, monkeypatch):
    from sweepkit.backends.store import schema

    monkeypatch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:1])
    monkeypatch.setattr(schema, "SCHEMA_VERSION", 1)
    old = open_store(store_location)
    sweep_id = old.create_sweep(GRID_12)
    old.close()
    monkeypatch.undo()
    store = open_store(store_location)
    versions = store._transact(
        lambda c: c.execute("SELECT max(version) FROM sweepkit_schema").fetchone()
    )
    assert versions == (schema.SCHEMA_VERSION,) and store.sweep(sweep_id).config == GRID_12


def test_a_store_from_before_runs_were_numbered_numbers_them_in_claim_order(store_location):
    # Migration 3 numbers every run of each sweep by (created_at, id), the order claims read.
    store = open_store(store_location)
    a, b = store.create_sweep(GRID_12), store.create_sweep(GRID_12)
    claimed = [store.claim_run(sweep_id).id for sweep_id in (a, b, a, a)]

    def unnumber(cursor):
        cursor.execute("DROP INDEX runs_by_sweep_seq")
        cursor.execute("ALTER TABLE runs DROP COLUMN seq")
        cursor.execute("DROP TABLE grid_windows")
        # The first two of sweep a at the same instant: the id breaks the tie.
        cursor.execute("UPDATE runs SET created_at = 5.0 WHERE id IN (?, ?)", claimed[2:4])
        cursor.execute("UPDATE runs SET created_at = 9.0 WHERE id = ?", (claimed[0],))
        cursor.execute("DELETE FROM sweepkit_schema WHERE version = 3")

    store._transact(unnumber)
    store.close()
    store = open_store(store_location)
    numbered = store._transact(
        lambda c: c.execute("SELECT sweep_id, id, seq FROM runs ORDER BY sweep_id, seq").fetchall()
    )
    in_order = [*sorted(claimed[2:4]), claimed[0]]
    assert sorted(tuple(row) for row in numbered) == sorted(
        [(a, run_id, i) for i, run_id in enumerate(in_order, 1)] + [(b, claimed[1], 1)]
    )
    fourth = store.claim_run(a)  # numbered on from there, no point handed out twice
    assert fourth.display_name.endswith("-4")
    points = [r.config_json for r in store.runs(a)]
    assert len(set(points)) == 4


@pytest.mark.parametrize("method", ["grid", "random"])
def test_a_claim_reads_the_same_facts_as_scheduling_computes_from_every_run(store_location, method):
    # The store's SQL (counts, extremes, only the unsettled runs for random search) must agree
    # with `SweepRuns.of`, the definition in Python, on the same runs.
    from sweepkit.core.scheduling import SweepRuns, reads_past_runs

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
    again = store.claim_run(sweep_id, max_retries=0)  # the preempted point again: a retry,
    store.finish_run(  # settled: only its retry_of says the preempted point was run again
        sweep_id, again.id, state="finished", progress=None, summary={}, run_dir=None
    )
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
    assert (read.tries, read.points, len(read.unsettled), len(read.retried)) == (7, 6, 4, 1)


def _in_transaction(store: Store) -> bool:
    """Whether the store's connection is inside a transaction (holding the sweep, in a claim)."""
    if hasattr(store, "_db"):  # SQLite
        return store._db.in_transaction
    import psycopg

    return store._conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE


@pytest.mark.parametrize("method", ["random", "grid"])
def test_random_search_draws_and_grid_works_its_points_out_before_the_claim_holds_the_sweep(
    store_location, monkeypatch, method
):
    # Every other agent of the sweep waits while a claim holds it: random search reads no runs,
    # so its draw (~1.5 ms of the engine validating parameters) is made before; grid's next
    # points (~10 ms at 1,000 runs) too, checked inside against the runs claimed since.
    from sweepkit import engine

    store = open_store(store_location)
    other = open_store(store_location)  # another agent, that claims in between
    sweep_id = store.create_sweep({"method": method, "parameters": {"x": {"values": [1, 2, 3]}}})
    store.claim_run(sweep_id)  # the sweep's config read and cached: one read before
    other.claim_run(sweep_id)
    asked, real = [], {"next_run": engine.next_run, "next_runs": engine.next_runs}

    def spy(name):
        def ask(config, runs, *n):
            suggested = real[name](config, runs, *n)
            asked.append((_in_transaction(store), suggested))
            return suggested

        return ask

    for name in real:
        monkeypatch.setattr(engine, name, spy(name))
    run = store.claim_run(sweep_id)
    assert [held for held, _ in asked] == ([False] if method == "random" else [])
    if method == "random":
        assert run.config == asked[0][1].config  # the draw is what was claimed, not a second one
    else:  # its window, less the point the other agent took
        assert run.config == {"x": {"value": 3}}
        assert store.claim_run(sweep_id) is None


def test_a_grid_claim_asks_the_engine_with_every_run_where_its_window_cannot_tell(
    store_location, monkeypatch
):
    # A run that took a point the window does not hold (another engine release's, a point from
    # elsewhere) leaves the window unable to say what is next: the engine decides, holding the
    # sweep, and nothing is handed out twice.
    from sweepkit import engine
    from sweepkit.core import scheduling

    store = open_store(store_location)
    sweep_id = store.create_sweep({"method": "grid", "parameters": {"x": {"values": [1, 2, 3, 4]}}})
    assert store.claim_run(sweep_id).config == {"x": {"value": 1}}
    other = open_store(store_location)  # an agent whose engine hands out x=9 next
    other._configs[sweep_id] = store._configs[sweep_id]
    nine = {"x": {"value": 9}}
    other._windows.by_sweep[sweep_id] = scheduling.GridAhead(1, (json.dumps(nine),), last=False)
    monkeypatch.setattr(scheduling.GridAhead, "needs_refill", lambda self, below: False)
    worked_out, held, real = store._grid_window, [], engine.next_run

    def then_the_other_claims(*args):  # between this claim's window and its transaction
        window = worked_out(*args)
        if not held:
            assert other.claim_run(sweep_id).config == nine
        return window

    def ask(config, runs):
        held.append(_in_transaction(store))
        return real(config, runs)

    monkeypatch.setattr(store, "_grid_window", then_the_other_claims)
    monkeypatch.setattr(engine, "next_run", ask)
    claimed = [store.claim_run(sweep_id) for _ in range(4)]
    assert held == [True]  # once, with every run; then a window again
    assert [c and c.config["x"]["value"] for c in claimed] == [2, 3, 4, None]


def _engine_calls(monkeypatch) -> list[str]:
    """The engine's suggestions asked for from here on: "next_run" or "next_runs N"."""
    from sweepkit import engine

    calls, next_run, next_runs = [], engine.next_run, engine.next_runs

    def one(config, runs):
        calls.append("next_run")
        return next_run(config, runs)

    def many(config, runs, n):
        calls.append(f"next_runs {n}")
        return next_runs(config, runs, n)

    monkeypatch.setattr(engine, "next_run", one)
    monkeypatch.setattr(engine, "next_runs", many)
    return calls


def _small_windows(monkeypatch, *, prepared: int, below: int, stores: list) -> None:
    """Windows of a few points, so that a 12-point grid shows every step: `prepared` points
    worked out by prepare_claim, again when fewer than `below` are left."""
    from sweepkit.core import scheduling

    for store in stores:
        store._windows.prepare_below = below
    monkeypatch.setattr(scheduling, "GRID_PREPARED", prepared)
    monkeypatch.setattr(scheduling, "GRID_REFILL", 1)  # claims draw on the window to its end


def test_a_claim_prepared_while_a_run_trains_asks_the_engine_nothing(store_location, monkeypatch):
    # prepare_claim works out a long window (GRID_PREPARED) while the run trains; the claims
    # after it take their points from it, handing out what the engine would, in its order.
    from sweepkit import engine
    from sweepkit.core import scheduling

    in_order = [_plain(run.config) for run in engine.next_runs(GRID_12, [], 12)]
    store = open_store(store_location)
    _small_windows(monkeypatch, prepared=6, below=3, stores=[store])
    sweep_id = store.create_sweep(GRID_12)
    calls = _engine_calls(monkeypatch)
    store.prepare_claim(sweep_id)
    assert calls == ["next_runs 6"]
    got = [_plain(store.claim_run(sweep_id).config) for _ in range(3)]
    store.prepare_claim(sweep_id)  # 3 left: not below 3, nothing to do
    assert calls == ["next_runs 6"]
    got.append(_plain(store.claim_run(sweep_id).config))
    store.prepare_claim(sweep_id)  # 2 left: the next 6 of the 8 left, from every run
    assert calls == ["next_runs 6", "next_runs 6"]
    got += drain(store, sweep_id)  # the claim that finds it used up works its own out
    assert calls == ["next_runs 6", "next_runs 6", f"next_runs {scheduling.GRID_AHEAD}"]
    assert got == in_order


def _plain(config: dict) -> dict:
    return {name: v["value"] for name, v in config.items()}


def test_random_and_bayes_sweeps_have_nothing_to_prepare(store_location, monkeypatch):
    store = open_store(store_location)
    sweep_ids = [
        store.create_sweep(
            {"method": m, "metric": {"name": "loss"}, "parameters": {"x": {"min": 0.0, "max": 1.0}}}
        )
        for m in ("random", "bayes")
    ]
    calls = _engine_calls(monkeypatch)
    for sweep_id in sweep_ids:
        store.prepare_claim(sweep_id)
    store.prepare_claim("local-unknown")
    assert calls == [] and store._windows.by_sweep == {}


def test_an_agent_starts_from_the_window_another_agent_worked_out(store_location, monkeypatch):
    # The engine's grid search over every run is done once for the sweep, not once per agent:
    # the newest window is kept in the store, and an agent whose own is missing or shorter
    # starts from it, less the runs claimed since.
    first, second = open_store(store_location), open_store(store_location)
    _small_windows(monkeypatch, prepared=8, below=4, stores=[first, second])
    sweep_id = first.create_sweep(GRID_12)
    calls = _engine_calls(monkeypatch)
    first.prepare_claim(sweep_id)
    assert calls == ["next_runs 8"]
    got = [_plain(first.claim_run(sweep_id).config) for _ in range(2)]
    got += [_plain(second.claim_run(sweep_id).config) for _ in range(2)]  # first's window
    second.prepare_claim(sweep_id)  # 4 left in it: nothing to do
    assert calls == ["next_runs 8"]
    got.append(_plain(second.claim_run(sweep_id).config))  # 3 left: below 4
    second.prepare_claim(sweep_id)  # its own, from every run: the 7 left, kept for the sweep
    assert calls == ["next_runs 8", "next_runs 8"]
    first._windows.prepare_below = (
        10  # the kept one has 7 left, below 10, but they are the grid's last
    )
    first.prepare_claim(sweep_id)  # first's has 3 left: it takes the kept one
    assert calls == ["next_runs 8", "next_runs 8"]
    assert first._windows.by_sweep[sweep_id] == second._windows.by_sweep[sweep_id]
    got += drain(first, sweep_id)
    assert calls == ["next_runs 8", "next_runs 8"]
    assert len(got) == 12 and len({json.dumps(c) for c in got}) == 12


def test_a_kept_window_is_replaced_only_by_a_newer_one(store_location, monkeypatch):
    # Two agents working windows out at once: the one past more runs stays, whichever of
    # them finished last.
    from sweepkit.core import scheduling

    store, late = open_store(store_location), open_store(store_location)
    store._windows.prepare_below, late._windows.prepare_below = 3, 10
    monkeypatch.setattr(scheduling, "GRID_AHEAD", 2)
    monkeypatch.setattr(scheduling, "GRID_PREPARED", 4)
    sweep_id = store.create_sweep(GRID_12)

    def kept() -> tuple[int, int]:
        seen, points = store._transact(
            lambda c: c.execute(
                "SELECT seen, points FROM grid_windows WHERE sweep_id = ?", (sweep_id,)
            ).fetchone(),
            write=False,
        )
        return seen, len(json.loads(points))

    store.claim_run(sweep_id)
    assert kept() == (0, 2)  # the first claim worked its window out past no runs
    store.prepare_claim(sweep_id)  # 1 left of its own and of the kept one: a new one
    assert kept() == (1, 4)
    stale = scheduling.GridAhead(0, ("{}",) * 4, last=False)  # worked out before that claim
    monkeypatch.setattr(scheduling, "grid_ahead", lambda config, runs, n: stale)
    late.prepare_claim(sweep_id)  # the kept one has 4 left, below 10: late works its own out
    assert late._windows.by_sweep[sweep_id] is stale
    assert kept() == (1, 4)
    as_old = scheduling.GridAhead(1, ("{}",) * 9, last=False)  # past as many runs: first stays
    monkeypatch.setattr(scheduling, "grid_ahead", lambda config, runs, n: as_old)
    late._windows.by_sweep.clear()
    late.prepare_claim(sweep_id)
    assert late._windows.by_sweep[sweep_id] is as_old
    assert kept() == (1, 4)


def test_each_agent_prepares_below_a_threshold_of_its_own(tmp_path):
    # Agents that started together would otherwise all work their windows out at once: each
    # draws its threshold between GRID_PREPARE_BELOW and half a prepared window.
    from sweepkit.backends.store.sql import SQLStore
    from sweepkit.core import scheduling

    store = open_store(tmp_path / "s.db")
    random.seed(12)
    thresholds = set()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a float bound is deprecated, refused from Python 3.12
        for _ in range(200):
            SQLStore.__init__(store, store.location)  # what each agent's store draws
            thresholds.add(store._windows.prepare_below)
    assert (scheduling.GRID_PREPARE_BELOW, scheduling.GRID_PREPARED // 2) == (128, 1024)
    assert 128 <= min(thresholds) < 150 and 1000 < max(thresholds) <= 1024
    assert len(thresholds) > 150


def test_a_grid_claim_takes_out_of_its_window_the_points_claimed_while_it_waited(
    store_location, monkeypatch
):
    # Holding the sweep, a claim reads only the runs claimed since its window was worked out
    # (not every run) and hands out the first point none of them took, asking the engine
    # nothing; it keeps the window, less those points, for its next claim.
    from sweepkit import engine
    from sweepkit.core import scheduling

    in_order = [run.config for run in engine.next_runs(GRID_12, [], 12)]
    store, other = open_store(store_location), open_store(store_location)
    sweep_id = store.create_sweep(GRID_12)
    assert store.claim_run(sweep_id).config == in_order[0]  # its window: the 12 points
    worked_out, taken = store._grid_window, []

    def then_the_other_claims(*args):  # between this claim's window and its transaction
        window = worked_out(*args)
        taken.append(other.claim_run(sweep_id).config)
        return window

    monkeypatch.setattr(store, "_grid_window", then_the_other_claims)
    calls, every_read, choose = _engine_calls(monkeypatch), [], scheduling.choose

    def choosing(sweep, runs, **options):
        every_read.append(runs.every)
        return choose(sweep, runs, **options)

    monkeypatch.setattr(scheduling, "choose", choosing)
    mine = store.claim_run(sweep_id)
    assert taken == [in_order[1]] and mine.config == in_order[2]
    assert calls == [] and every_read == [None, None]  # other's claim, then this one
    window = store._windows.by_sweep[sweep_id]
    assert window.seen == 2 and [json.loads(p) for p in window.points] == in_order[2:]


def test_a_grid_claim_does_not_trust_its_window_past_a_run_without_a_number(store_location):
    # A run claimed by an older sweepkit that kept running while the store was migrated has no
    # number: the runs read by number miss it, so the claim must see that the count is off and
    # ask the engine with every run rather than hand that run's point out again.
    store = open_store(store_location)
    sweep_id = store.create_sweep({"method": "grid", "parameters": {"x": {"values": [1, 2, 3]}}})
    assert store.claim_run(sweep_id).config == {"x": {"value": 1}}
    assert store.claim_run(sweep_id).config == {"x": {"value": 2}}  # the window holds 3 next
    store._transact(
        lambda cursor: cursor.execute(
            "INSERT INTO runs (sweep_id, id, name, state, config, created_at, heartbeat_at)"
            " VALUES (?, 'oldagent', 'old', 'running', ?, ?, ?)",
            (sweep_id, json.dumps({"x": {"value": 3}}), time.time(), time.time()),
        )
    )
    assert store.claim_run(sweep_id) is None
    assert sorted(run.config["x"]["value"] for run in store.runs(sweep_id)) == [1, 2, 3]
    assert sweep_id not in store._windows.by_sweep  # a window that could not tell is let go


_FIRST_CLAIM = """
import sys
from sweepkit.core import scheduling
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
