"""Scheduling on lists of runs, as a store hands them over inside its claim: which point is
offered again, when a sweep is done or finished, what the engine is given, and that what
comes back is plain Python. No store here: `sweepkit.core.scheduling` decides for every kind.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from sweepkit.core import scheduling
from sweepkit.core.records import ScheduledRun, StoredSweep
from sweepkit.core.scheduling import SweepRuns, choose, sweep_is_done, unfinished_points

GRID_3 = {"method": "grid", "parameters": {"x": {"values": [1, 2, 3]}}}


def run(
    run_id: str,
    state: str = "finished",
    *,
    x: object = 1,
    attempt: int = 1,
    retry_of: str | None = None,
    ended_at: float | None = 100.0,
    metric: float | None = None,
) -> ScheduledRun:
    ended_at = None if state == "running" else ended_at
    count = 0 if metric is None else 1
    return ScheduledRun(
        run_id, state, json.dumps({"x": {"value": x}}), attempt, retry_of, ended_at,
        count, metric, metric, metric, metric,
    )  # fmt: skip


def sweep(config: dict) -> StoredSweep:
    return StoredSweep("local-test", None, None, None, config, "running", 0.0)


def offered(
    runs: list[ScheduledRun], *, retries: int = 2, retry_ended_before: float | None = None
) -> str | None:
    """The id of the run whose point `choose` offers again, or None for a new point."""
    choice = choose(
        sweep(GRID_3), SweepRuns.of(runs), max_retries=retries,
        retry_ended_before=retry_ended_before,
    )  # fmt: skip
    assert choice.config is not None
    return choice.retry_of.id if choice.retry_of else None


def test_retry_failed_offers_again_what_ended_before_the_agent_started_oldest_first():
    runs = [run("f", "failed", x=1, ended_at=100.0), run("c", "crashed", x=2, attempt=3)]
    assert offered(runs) is None  # failed, and crashed past --retries: not on their own
    assert offered(runs, retry_ended_before=100.5) == "f"
    assert offered(runs, retry_ended_before=100.0) is None  # ended as the agent started: not before
    assert offered([*runs, run("f2", x=1, retry_of="f")], retry_ended_before=101.0) == "c"
    choice = choose(sweep(GRID_3), SweepRuns.of(runs), max_retries=2, retry_ended_before=101.0)
    assert choice.attempt == 2 and choice.config == {"x": {"value": 1}}


def test_a_crash_is_offered_again_up_to_the_retries_and_a_preemption_always():
    assert offered([run("c", "crashed", attempt=2)]) == "c"  # attempt 2 of 1 + 2 retries
    assert offered([run("c", "crashed", attempt=3)]) is None
    assert offered([run("p", "preempted", attempt=9)]) == "p"
    assert offered([run("c", "crashed", attempt=1)], retries=0) is None
    assert offered([run("r", "running"), run("f", "failed")], retry_ended_before=math.inf) == "f"


def test_unfinished_points_are_the_failed_and_the_crashed_past_their_retries():
    runs = [
        run("done"), run("going", "running"), run("p", "preempted"),
        run("f", "failed"), run("f-again", "failed", retry_of="old-f"), run("old-f", "failed"),
        run("c1", "crashed", attempt=1), run("c2", "crashed", attempt=2),
        run("c3", "crashed", attempt=3), run("c3b", "crashed", attempt=3, retry_of="c2"),
    ]  # fmt: skip
    # c1 and c2 will be offered again (retries 2); c2 already was. old-f was retried by f-again.
    assert unfinished_points(runs, max_retries=2) == {"failed": 2, "crashed": 2}
    assert unfinished_points(runs, max_retries=3) == {"failed": 2}


def test_a_grid_with_nothing_left_is_finished_only_once_nothing_runs_and_nothing_is_lost():
    def finished(last: list[ScheduledRun]) -> bool:
        runs = [run("a", x=1), run("b", x=2), *last]
        choice = choose(sweep(GRID_3), SweepRuns.of(runs), max_retries=2)
        assert choice.config is None  # every point handed out
        return choice.finished

    assert not finished([run("c", "running", x=3)])
    assert finished([run("c", "failed", x=3)])  # a failure is a result: said, not waited for
    assert not finished([run("c", "crashed", x=3, attempt=3)])  # lost: not finished
    assert finished([run("c", "crashed", x=3, attempt=3), run("d", x=3, retry_of="c", attempt=4)])


@pytest.mark.parametrize(
    ("goal", "low", "high", "done"),
    [
        ("maximize", 0.5, 0.7, False),  # the low end is under the target: not what counts
        ("maximize", 0.5, 0.8, True),  # reaching the target is enough
        ("minimize", 0.2, 0.9, True),
        ("minimize", 0.3, 0.9, False),
        (None, 0.2, 0.9, True),  # the goal defaults to minimize
        (None, 0.3, 0.1, False),
    ],
)
def test_metric_target_is_reached_by_the_goals_end_of_the_metric(goal, low, high, done):
    metric = {"name": "acc", "target": 0.8 if goal == "maximize" else 0.2}
    if goal:
        metric["goal"] = goal
    runs = SweepRuns(
        tries=2, points=2, metric_min=low, metric_max=high, unsettled=[], retried=frozenset()
    )
    assert sweep_is_done({**GRID_3, "metric": metric}, runs) is done


def test_random_search_reads_no_past_runs_and_grid_and_bayes_do(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("random search converted the past runs for the engine")

    monkeypatch.setattr(scheduling, "engine_runs", refuse)
    random_sweep = {"method": "random", "parameters": {"x": {"min": 0.0, "max": 1.0}}}
    runs = SweepRuns.of([run(str(i), x=0.5) for i in range(5)])  # `every` given all the same
    assert choose(sweep(random_sweep), runs, max_retries=2).config is not None
    assert [scheduling.reads_past_runs({"method": m}) for m in ("random", "grid", "bayes")] == [
        False, True, True,
    ]  # fmt: skip


def test_a_draw_made_ahead_is_random_searchs_suggestion_and_grid_asks_the_engine(monkeypatch):
    from sweepkit import engine

    random_sweep = {"method": "random", "parameters": {"x": {"min": 0.0, "max": 1.0}}}
    drawn = scheduling.draw_ahead(random_sweep)
    assert scheduling.draw_ahead(GRID_3) is None  # a grid point depends on the past runs
    asked = []
    monkeypatch.setattr(engine, "next_run", lambda config, runs: asked.append(config))
    choice = choose(sweep(random_sweep), SweepRuns.of([]), max_retries=2, drawn=drawn)
    assert choice.config == scheduling._plain(drawn.config) and asked == []
    crashed = SweepRuns.of([run("c", "crashed", x=0.25)])  # a point offered again comes first
    assert choose(sweep(random_sweep), crashed, max_retries=2, drawn=drawn).config == {
        "x": {"value": 0.25}
    }
    capped = {**random_sweep, "run_cap": 1}  # and run_cap still holds with a draw in hand
    done = choose(sweep(capped), SweepRuns.of([run("a")]), max_retries=2, drawn=drawn)
    assert done.config is None and done.finished


def test_what_the_engine_suggests_comes_back_plain_with_its_search_info():
    bayes = {
        "method": "bayes",
        "metric": {"name": "loss", "goal": "minimize"},
        "parameters": {"x": {"min": 0.0, "max": 1.0}, "n": {"min": 1, "max": 9}},
    }
    runs = SweepRuns.of([run(str(i), x=i / 4, metric=float(i)) for i in range(4)])
    choice = choose(sweep(bayes), runs, max_retries=2)
    assert choice.config is not None and set(choice.config) == {"x", "n"}
    assert type(choice.config["x"]["value"]) is float  # not numpy.float64
    assert "success_probability" in (choice.search_info or {})
    yaml.safe_dump(choice.config)  # the run's param file takes it


def test_plain_turns_numpy_into_python_and_anything_else_into_its_string():
    value = {"i": np.int64(3), "f": np.float32(0.5), "a": np.arange(2), "b": np.bool_(True)}
    plain = scheduling._plain({**value, "p": Path("/x"), "n": [1, "s", None]})
    assert plain == {"i": 3, "f": 0.5, "a": [0, 1], "b": True, "p": "/x", "n": [1, "s", None]}
    assert [type(plain[k]) for k in ("i", "f", "b")] == [int, float, bool]


def test_engine_runs_hand_over_the_metric_only_where_there_is_one():
    with_metric = {**GRID_3, "metric": {"name": "loss", "goal": "minimize"}}
    (seen,) = scheduling.engine_runs(with_metric, [run("a", metric=0.5)])
    assert seen.summary_metrics == {"loss": 0.5} and seen.history == [{"loss": 0.5}] * 3
    (unseen,) = scheduling.engine_runs(with_metric, [run("a", "running")])
    assert unseen.summary_metrics == {} and unseen.history == []
    (plain,) = scheduling.engine_runs(GRID_3, [run("a", metric=0.5)])  # no sweep metric
    assert plain.summary_metrics == {} and plain.history == []


def test_a_claim_builds_a_runs_engine_record_once_and_hyperband_gets_fresh_ones():
    config = {**GRID_3, "metric": {"name": "loss"}}
    first = scheduling.engine_runs(config, [run("a", metric=0.5), run("b", "running")])
    # The next claim reads the rows anew: a equal to before, b ended since.
    again = scheduling.engine_runs(config, [run("a", metric=0.5), run("b", metric=0.4)])
    assert again[0] is first[0]
    assert again[1] is not first[1] and again[1].summary_metrics == {"loss": 0.4}
    # Another sweep metric reads the same row otherwise.
    (other, _) = scheduling.engine_runs(
        {**GRID_3, "metric": {"name": "acc"}}, [run("a", metric=0.5)] * 2
    )
    assert other.summary_metrics == {"acc": 0.5}

    # Hyperband marks the records it stops: never one a claim or another check reads.
    def stops() -> list:
        return scheduling.engine_runs(config, [run("a", metric=0.5)], points={"a": [0.9, 0.5]})

    assert stops()[0].history == [{"loss": 0.9}, {"loss": 0.5}]
    assert stops()[0] is not stops()[0]
    assert scheduling.engine_runs(config, [run("a", metric=0.5)], points={})[0] is not first[0]


def test_engine_runs_name_nested_parameters_as_either_engine_release_looks_for_them():
    nested = {"method": "grid", "parameters": {"opt": {"parameters": {"lr": {"values": [0.1]}}}}}
    config = {"opt": {"value": {"lr": 0.1}}}
    record = ScheduledRun(
        "a", "finished", json.dumps(config), 1, None, 1.0, 0, None, None, None, None
    )
    (seen,) = scheduling.engine_runs(nested, [record])
    flat = [key for key in seen.config if key != "opt"]
    assert len(flat) == 1 and flat[0].startswith("opt") and seen.config[flat[0]] == {"value": 0.1}


def test_early_termination_needs_a_metric():
    rule = {"early_terminate": {"type": "hyperband", "min_iter": 1}}
    assert scheduling.stops_runs({**GRID_3, **rule, "metric": {"name": "loss"}})
    assert not scheduling.stops_runs({**GRID_3, **rule})
    assert not scheduling.stops_runs({**GRID_3, "metric": {"name": "loss"}})


def test_sweep_runs_of_a_list_counts_points_tries_and_the_metric_extremes():
    runs = [
        run("a", metric=0.5), run("b", "crashed", attempt=1), run("b2", retry_of="b", metric=0.2),
        run("c", "running"), run("d", "failed", metric=0.9),
    ]  # fmt: skip
    facts = SweepRuns.of(runs, with_every=False)
    assert (facts.tries, facts.points, facts.metric_min, facts.metric_max) == (5, 4, 0.2, 0.9)
    assert [r.id for r in facts.unsettled] == ["b", "c", "d"]
    assert facts.retried == frozenset({"b"}) and facts.every is None
    assert SweepRuns.of(runs).every == runs
    empty = SweepRuns.of([])
    assert (empty.tries, empty.points, empty.metric_min, empty.metric_max) == (0, 0, None, None)


# Twelve points whose values the engine matches by their YAML hash: a float written as an
# int (3e6), a dict, None.
ODD_GRID_12 = {
    "method": "grid",
    "parameters": {"a": {"values": [1e-3, 0.5, 3e6, 4]}, "b": {"values": ["x", {"k": 1}, None]}},
}


def grid_run(run_id: str, config: dict, retry_of: str | None = None) -> ScheduledRun:
    return ScheduledRun(run_id, "finished", json.dumps(config), 1, retry_of, 1.0, 0, *[None] * 4)


@pytest.mark.parametrize(("ahead", "refill"), [(3, 1), (256, 64)])
def test_a_grid_window_less_the_runs_claimed_since_is_the_engines_next_point(ahead, refill):
    # Agents that worked their windows out at different times, claiming in turn (retries
    # among them), are handed exactly what the engine would hand out with every run.
    import random

    from sweepkit import engine

    rng = random.Random(7)
    runs: list[ScheduledRun] = []
    windows = [None] * 4
    while True:
        agent = rng.randrange(4)
        window = windows[agent]
        if window is not None:
            window = window.past(runs[window.seen :])
        if window is None or window.needs_refill(refill) or rng.random() < 0.2:
            window = scheduling.grid_ahead(ODD_GRID_12, runs, ahead)
        windows[agent] = window
        expected = engine.next_run(ODD_GRID_12, scheduling.engine_runs(ODD_GRID_12, runs))
        choice = choose(sweep(ODD_GRID_12), SweepRuns.of(runs), max_retries=0, ahead=window)
        if expected is None:
            assert choice.config is None and choice.finished
            break
        assert choice.config == scheduling._plain(expected.config)
        assert list(choice.config) == ["a", "b"]  # the engine's order, not sorted
        assert scheduling.point_json(choice.config) == json.dumps(choice.config)
        runs.append(grid_run(f"r{len(runs)}", choice.config))
        if rng.random() < 0.3:  # a point run again: it takes no new point
            runs.append(grid_run(f"r{len(runs)}", runs[rng.randrange(len(runs))].config, "x"))
    assert len({r.config_json for r in runs}) == 12


def test_a_grid_window_cannot_tell_past_a_point_it_does_not_hold():
    window = scheduling.grid_ahead(ODD_GRID_12, [], 20)
    assert (window.seen, len(window.points), window.last) == (0, 12, True)
    first, second = (json.loads(point) for point in window.points[:2])
    after = window.past([grid_run("r1", first)])
    assert json.loads(after.points[0]) == second and after.seen == 1
    # The same point written another way (keys in another order): the engine decides.
    assert window.past([grid_run("r1", {"b": first["b"], "a": first["a"]})]) is None
    # A run again repeats a point already taken: nothing new, and nothing it cannot tell.
    assert window.past([grid_run("r1", first), grid_run("r2", first, "r1")]).seen == 2
    # A point from elsewhere (another engine's, a value not in the grid): the engine decides.
    assert window.past([grid_run("r1", {"a": {"value": 9}, "b": {"value": 5}})]) is None
    assert window.past([grid_run("r1", {**first, "c": {"value": 1}})]) is None
    # All its points taken before the grid's end: it cannot say what comes next.
    short = scheduling.GridAhead(0, window.points[:2], last=False)
    assert short.past([grid_run("r1", first), grid_run("r2", second)]) is None
    assert short.needs_refill(3) and not short.needs_refill(2)
    done = scheduling.GridAhead(0, window.points[:1], last=True).past([grid_run("r1", first)])
    assert done.points == () and not done.needs_refill(3)
    assert choose(sweep(ODD_GRID_12), SweepRuns.of([]), max_retries=0, ahead=done).finished


def test_a_grid_window_of_a_large_grid_holds_n_points_and_more_past_them():
    config = {"method": "grid", "parameters": {"a": {"values": list(range(300))}}}
    window = scheduling.grid_ahead(config, [], 256)
    assert len(window.points) == 256 and not window.last
    assert window.needs_refill(257) and not window.needs_refill(256)
    runs = [grid_run(f"r{i}", json.loads(p)) for i, p in enumerate(window.points)]
    rest = scheduling.grid_ahead(config, runs, 256)
    assert (rest.seen, len(rest.points), rest.last) == (256, 44, True)
    assert json.loads(rest.points[0]) == {"a": {"value": 256}}


def test_a_point_is_written_as_json_with_numpy_values_plain_and_the_rest_as_text():
    # The engine may hand out numpy scalars; what JSON cannot hold otherwise is its text.
    import pathlib

    import numpy as np

    config = {"a": {"value": np.float64(0.5)}, "b": {"value": np.arange(2)}}
    assert scheduling.point_json(config) == '{"a": {"value": 0.5}, "b": {"value": [0, 1]}}'
    assert scheduling.point_json({"p": {"value": pathlib.PurePosixPath("/x")}}) == (
        '{"p": {"value": "/x"}}'
    )
