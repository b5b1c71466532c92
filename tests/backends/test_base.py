"""What `status`, `report` and the agent's exit code read of a sweep: best run, counts, lost points."""

from __future__ import annotations

import math

import pytest

from sweepkit.backends.base import AgentResult, RunDetails
from sweepkit.core.records import RunRecord, SweepInfo


def run(id: str, state: str = "finished", metric: float | None = None, **fields) -> RunRecord:
    return RunRecord(id=id, state=state, config={}, metric=metric, runtime=None, **fields)


def sweep(*runs: RunRecord, goal: str | None = None, name: str | None = None) -> SweepInfo:
    config = {"method": "grid", "parameters": {}}
    if goal is not None:
        config["metric"] = {"name": "acc", "goal": goal}
    return SweepInfo("local-1", "local", config, "running", list(runs), name=name)


RUNS = (run("a", metric=0.5), run("b", metric=0.9), run("c", metric=0.1), run("d", "failed"))


@pytest.mark.parametrize(("goal", "best"), [("maximize", "b"), ("minimize", "c")])
def test_the_best_run_follows_the_goal(goal, best):
    assert sweep(*RUNS, goal=goal).best().id == best


def test_without_a_goal_the_best_run_is_the_lowest_as_on_wandb():
    info = sweep(*RUNS, goal="minimize")
    no_goal = SweepInfo(info.id, info.backend, {"metric": {"name": "acc"}}, info.state, info.runs)
    assert (no_goal.maximize, no_goal.best().id) == (False, "c")
    assert sweep(*RUNS).maximize is False  # no metric at all


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_metric_that_is_not_finite_is_never_the_best(bad):
    # NaN compares false with everything and inf beats any number: either would win a max/min.
    for goal in ("maximize", "minimize"):
        assert sweep(run("bad", metric=bad), *RUNS, goal=goal).best().id != "bad"


def test_a_metric_of_zero_counts_and_no_metric_means_no_best_run():
    assert sweep(run("zero", metric=0.0), run("one", metric=1.0), goal="minimize").best().id == (
        "zero"
    )
    assert sweep(run("a"), run("b", "failed"), goal="maximize").best() is None
    assert sweep(goal="maximize").best() is None


def test_metric_name_and_label():
    assert sweep(goal="maximize").metric_name == "acc"
    assert sweep().metric_name is None
    assert sweep(name="quick").label == "quick (local-1)"
    assert sweep().label == "local-1"


def test_counts_are_runs_by_state():
    runs = [run("a"), run("b"), run("c", "failed"), run("d", "crashed"), run("e", "running")]
    assert sweep(*runs).counts() == {"finished": 2, "failed": 1, "crashed": 1, "running": 1}
    assert sweep().counts() == {}


def test_a_point_is_unfinished_until_a_later_run_repeats_it():
    runs = [
        run("a", "failed"),
        run("b", "crashed"),
        run("c", "crashed"),
        run("d", "finished", retry_of="b"),  # b's point ran again: not lost
        run("e", "crashed", retry_of="c"),  # c's point crashed again: e is the lost one
        run("f", "killed"),
        run("g", "stopped"),
        run("h", "preempted"),
    ]
    assert sweep(*runs).unfinished() == {"failed": 1, "crashed": 1}
    assert sweep(run("a"), run("b", "killed")).unfinished() == {}


def test_error_line_is_the_last_line_of_the_error():
    traceback = "Traceback (most recent call last):\n  File 'x'\nValueError: bad lr\n\n"
    assert run("a", error=traceback).error_line == "ValueError: bad lr"
    assert run("a", error="exit code 3").error_line == "exit code 3"
    assert run("a").error_line == ""
    assert run("a", error="  \n").error_line == ""


@pytest.mark.parametrize(
    ("result", "code"),
    [
        (AgentResult(performed=3), 0),
        (AgentResult(performed=3, failed=1), 1),
        (AgentResult(performed=3, gave_up="5 failures in a row"), 1),
        (AgentResult(performed=3, unfinished={"crashed": 1}), 1),
        (AgentResult(performed=3, unfinished={"crashed": 0, "failed": 0}), 0),
        (AgentResult(performed=3, failed=1, interrupted=True), 130),
        (AgentResult(failed=1, interrupted=True, preempted=True), 143),
        (AgentResult(preempted=True), 143),
    ],
)
def test_the_exit_code_says_what_happened_first_signals_then_losses(result, code):
    assert result.exit_code == code


def test_run_details_keep_each_tables_last_version_and_every_epoch_of_the_predictions():
    history = [{"loss": 1.0}]
    tables = {
        "test_predictions": ["epoch 1", "epoch 2", "epoch 3"],
        "confusion_matrix_table": ["cm 1", "cm 2"],
        "roc_curve_table": ["roc"],
        "pr_curve_table": ["pr 1", "pr 2", "pr 3"],
    }
    details = RunDetails.from_tables(history, tables)
    assert details.history is history
    assert (details.predictions, details.confusion, details.roc, details.pr) == (
        "epoch 3", "cm 2", "roc", "pr 3",
    )  # fmt: skip
    assert details.prediction_epochs == ["epoch 1", "epoch 2", "epoch 3"]
    assert details.elsewhere is None
    # A run that logged no tables (or a key logged never): nothing to show, no error.
    bare = RunDetails.from_tables([], {"test_predictions": [], "roc_curve_table": []})
    assert (bare.predictions, bare.confusion, bare.roc, bare.pr) == (None, None, None, None)
    assert bare.prediction_epochs == []
