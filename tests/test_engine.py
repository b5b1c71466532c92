"""The `sweeps` engine behaves the same through sweepkit on 0.2 (numpy 2) and 0.3 (numpy 1).

CI runs this file under both releases; each test names what broke on one of them.
"""

from __future__ import annotations

import itertools

import pytest

from sweepkit import engine
from sweepkit.backends.store import open_store
from sweepkit.config import violations
from sweepkit.core import scheduling
from tests.helpers.logged import logged

HYPERBAND = {
    "method": "grid",
    "metric": {"name": "loss", "goal": "minimize"},
    "early_terminate": {"type": "hyperband", "min_iter": 2, "eta": 2},
    "parameters": {"a": {"values": [1, 2, 3, 4, 5]}},
}


def test_runs_reach_the_engine_with_their_history_and_summary():
    # 0.2 with pydantic 2 silently dropped history= and summary_metrics=.
    run = engine.sweep_run(
        "r1",
        state="finished",
        config={},
        history=[{"loss": 3.0}, {"loss": 1.5}],
        summary={"loss": 1.5},
    )
    assert run.metric_history("loss") == [3.0, 1.5]
    assert run.summary_metrics == {"loss": 1.5}


def test_the_store_hands_the_engine_each_runs_metric(tmp_path, monkeypatch):
    store = open_store(tmp_path / "s.db")
    sweep_id = store.create_sweep(
        {
            "method": "bayes",
            "metric": {"name": "loss", "goal": "minimize"},
            "parameters": {"x": {"distribution": "uniform", "min": 0, "max": 1}},
        }
    )
    seen: list[list] = []
    real_next_run = engine.next_run

    def spy(config, runs):
        seen.append([(r.name, r.metric_history("loss"), r.summary_metrics) for r in runs])
        return real_next_run(config, runs)

    monkeypatch.setattr(engine, "next_run", spy)
    names = []
    for loss in (0.75, 0.25):
        run = store.claim_run(sweep_id)
        names.append(run.id)
        store.finish_run(
            sweep_id, run.id, state="finished", progress=logged([1.0, 0.5, loss]),
            summary={"loss": loss}, run_dir=None,
        )  # fmt: skip
    store.claim_run(sweep_id)
    # What the engine reads of a run: the extremes of history and summary, the last point.
    assert [
        (name, min(history), max(history), history[-1], summary)
        for name, history, summary in seen[-1]
    ] == [
        (names[0], 0.5, 1.0, 0.75, {"loss": 0.75}),
        (names[1], 0.25, 1.0, 0.25, {"loss": 0.25}),
    ]


def test_hyperband_stops_a_lagging_run_on_either_release(tmp_path):
    store = open_store(tmp_path / "s.db")
    sweep_id = store.create_sweep(HYPERBAND)
    done, lagging, leading = (
        [store.claim_run(sweep_id).id for _ in range(3)],
        store.claim_run(sweep_id).id,
        store.claim_run(sweep_id).id,
    )
    improving = [10, 5, 4, 3, 2, 1]
    for name in done:
        store.finish_run(
            sweep_id, name, state="finished", progress=logged(improving), summary={"loss": 1},
            run_dir=None,
        )  # fmt: skip
    # Three logged values: past the first band (2) on 0.3, and on 0.2, which checks one value late.
    store.heartbeat(sweep_id, lagging, logged([10, 10, 10]))
    store.heartbeat(sweep_id, leading, logged(improving[:3]))
    stop = scheduling.runs_to_stop(store.sweep(sweep_id).config, store.runs(sweep_id),
                                   store.metric_points(sweep_id))  # fmt: skip
    assert stop == {lagging}


def test_a_nested_grid_ends_with_every_point_once(tmp_path):
    # 0.2 matched past runs by flattened names only: one point was handed out forever.
    store = open_store(tmp_path / "s.db")
    nested = {"lr": {"values": [1, 2, 3, 4]}, "momentum": {"values": ["a", "b", "c"]}}
    sweep_id = store.create_sweep({"method": "grid", "parameters": {"opt": {"parameters": nested}}})
    points = []
    while (run := store.claim_run(sweep_id)) is not None and len(points) <= 12:
        points.append(tuple(sorted(run.config["opt"]["value"].items())))
        store.finish_run(
            sweep_id, run.id, state="finished", progress=None, summary={}, run_dir=None
        )
    expected = {(("lr", lr), ("momentum", m)) for lr, m in itertools.product([1, 2, 3, 4], "abc")}
    assert sorted(points) == sorted(expected)
    assert store.sweep_state(sweep_id) == "finished"


def test_run_cap_is_a_known_key_on_either_release():
    config = {"method": "random", "run_cap": 3, "parameters": {"a": {"values": [1, 2]}}}
    assert violations(config) == []
    assert violations({**config, "run_cap": 0}) == [
        "run_cap: 0 is less than or equal to the minimum of 0"
    ]
    assert violations({**config, "run_cap": "3"}) == ["run_cap: '3' is not of type 'integer'"]


@pytest.mark.parametrize(
    ("release", "method", "said"),
    [("0.2.0", "bayes", True), ("0.2.0", "grid", False), ("0.3.0", "bayes", False)],
)
def test_the_known_0_2_bugs_are_said_where_they_apply(monkeypatch, release, method, said):
    monkeypatch.setattr(engine, "version", lambda: release)
    line = engine.caveat({"method": method})
    assert (line is not None) == said
    if said:
        assert "bayes" in line and engine.GET_0_3 in line and "\n" not in line


@pytest.mark.slow
def test_the_agent_says_once_what_engine_0_2_gets_wrong_and_only_there(workdir):
    from tests.helpers.cli import create, sweepkit

    sweep_id = create(
        workdir,
        "method: bayes\nmetric: {name: loss, goal: minimize}\n"
        "parameters:\n  x: {distribution: uniform, min: 0, max: 6}\n",
    )
    result = sweepkit(
        "agent", sweep_id, "-f", "tests.sweep_functions:quadratic", "--workers", "2", "--count", "2",
        cwd=workdir,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr.count(engine.GET_0_3) == (1 if engine.is_0_2() else 0), result.stderr


def test_the_caveat_line_names_each_known_bug_and_how_to_get_0_3(monkeypatch):
    monkeypatch.setattr(engine, "version", lambda: "0.2.0")
    config = {"method": "bayes", "early_terminate": {"type": "hyperband", "min_iter": 2}}
    assert engine.caveat(config) == (
        "sweeps engine 0.2.0 (the one numpy 2 allows): bayes breaks on metrics that overflow "
        "and on inf/NaN values; hyperband checks each band one logged value late; 0.3 fixes "
        "this: pip install 'sweeps>=0.3' 'numpy<2'"
    )
    assert engine.caveat({"method": "grid", "early_terminate": {}}) == (
        "sweeps engine 0.2.0 (the one numpy 2 allows): hyperband checks each band one logged "
        "value late; 0.3 fixes this: pip install 'sweeps>=0.3' 'numpy<2'"
    )


@pytest.mark.parametrize(
    ("release", "old"), [("0.2.9", True), ("0.3.0", False), ("0.10.1", False), ("1.0", False)]
)
def test_releases_before_0_3_are_told_apart_by_number(monkeypatch, release, old):
    monkeypatch.setattr(engine, "version", lambda: release)
    assert engine.is_0_2() is old


def test_the_installed_release_is_the_sweeps_distributions():
    import importlib.metadata

    assert engine.version() == importlib.metadata.version("sweeps")


def test_a_nested_runs_values_are_also_handed_over_by_their_flattened_names():
    config = {"a": {"value": 1}, "opt": {"value": {"lr": 0.1, "inner": {"m": None}}}}
    d = engine.NESTING_DELIMITER
    flat = [f"opt{d}lr", f"opt{d}inner{d}m"]
    names = ["a", *flat, f"opt{d}missing", f"opt{d}lr{d}deeper", f"gone{d}x"]
    run = engine.sweep_run("r1", state="running", config=config, parameter_names=names)
    assert run.config == {**config, flat[0]: {"value": 0.1}, flat[1]: {"value": None}}
    assert engine.sweep_run("r2", state="running", config=config).config == config
    assert engine.parameter_names(
        {"parameters": {"a": {"values": [1]}, "opt": {"parameters": {"lr": {"value": 1}}}}}
    ) == ["a", flat[0]]
