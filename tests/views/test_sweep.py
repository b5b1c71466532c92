"""The sweep views as numbers (what the report and the dashboard both draw): where each run
crosses each axis of the parallel coordinates, the metric run by run, and when the
dashboard fits its importance forest again."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sweepkit.core.records import RunRecord, SweepInfo
from sweepkit.dashboard import data
from sweepkit.views import sweep as views


def sweep_of(runs: list[RunRecord], goal: str = "maximize") -> SweepInfo:
    return SweepInfo("local-x", "local", {"metric": {"name": "acc", "goal": goal}}, "running", runs)


def run(name: str, metric: float | None, state: str = "finished", **config) -> RunRecord:
    return RunRecord(f"id-{name}", state, config, metric, 1.0, name=name)


RUNS = [
    run("a", 0.5, lr=0.001, opt="sgd", epochs=3),
    run("b", 0.9, lr=0.1, opt="adam", epochs=3),
    run("c", None, "running", lr=0.05, opt="rmsprop", epochs=3),  # no metric yet: no line
    run("d", 0.7, lr=0.01, opt="sgd", epochs=3),
]


def test_each_run_crosses_each_axis_where_its_own_values_are():
    plot = views.parallel_coordinates(sweep_of(RUNS))
    assert [r.name for r in plot.runs] == ["a", "b", "d"]
    # `epochs` never varied: no axis. lr spans two decades: a log axis, 0.01 half way up.
    assert [(axis.name, axis.log) for axis in plot.axes] == [
        ("lr", True), ("opt", False), ("acc", False)
    ]  # fmt: skip
    lr, opt, acc = plot.axes
    assert lr.positions == pytest.approx([0.0, 1.0, 0.5])
    assert lr.ticks == [(0.0, "0.001"), (1.0, "0.1")]
    assert opt.positions == [1.0, 0.0, 1.0]  # categories in sorted order: adam, sgd
    assert opt.ticks == [(0.0, "adam"), (1.0, "sgd")]
    assert acc.positions == pytest.approx([0.0, 1.0, 0.5])
    assert acc.ticks == [(0.0, "0.5"), (1.0, "0.9")]


def test_a_linear_axis_and_too_few_runs_are_said():
    plot = views.parallel_coordinates(sweep_of([run("a", 1.0, x=2), run("b", 3.0, x=6)]))
    assert not plot.axes[0].log and plot.axes[0].ticks == [(0.0, "2"), (1.0, "6")]
    one = views.parallel_coordinates(sweep_of([run("a", 1.0, x=2), run("b", None, x=6)]))
    assert one == "Needs at least two runs with a metric and a parameter that varies."


@pytest.mark.parametrize(
    ("goal", "best"), [("maximize", [0.5, 0.9, 0.9]), ("minimize", [0.5, 0.5, 0.5])]
)
def test_the_best_so_far_follows_the_sweeps_goal(goal, best):
    shown = views.best_so_far(sweep_of(RUNS, goal))
    assert shown == [(v, b) for v, b in zip([0.5, 0.9, 0.7], best, strict=True)]


class OneSweep:
    """A store holding one sweep, whose runs a test changes between two reads."""

    store_label = "test"

    def __init__(self, runs: list[RunRecord]) -> None:
        self.runs = runs

    def sweep(self, sweep_id: str) -> SweepInfo:
        return sweep_of(list(self.runs))


def test_the_dashboard_fits_its_forest_again_only_when_finished_runs_change(monkeypatch):
    fits = []
    forest = views._forest
    monkeypatch.setattr(views, "_forest", lambda m, y: fits.append(len(y)) or forest(m, y))
    store, importances = OneSweep(RUNS), data.Importances()
    first = importances.of(store, "local-x")
    assert first["runs"] == 3 and fits == [3]
    assert first["rows"][0][0] in {"lr", "opt=adam", "opt=sgd"}
    assert first["constant"] == ["epochs"] and first["rough"] is True
    assert importances.of(store, "local-x") == first and fits == [3]  # nothing new: no fit
    store.runs = [*RUNS[:2], run("c", 0.8, lr=0.05, opt="rmsprop", epochs=3), RUNS[3]]
    again = importances.of(store, "local-x")
    assert again["runs"] == 4 and fits == [3, 4]  # the running run finished: fitted again
    correlation = {name: corr for name, corr, _ in again["rows"]}
    assert correlation["lr"] == pytest.approx(
        np.corrcoef([0.001, 0.1, 0.05, 0.01], [0.5, 0.9, 0.8, 0.7])[0, 1]
    )
    assert not any(isinstance(v, float) and math.isnan(v) for r in again["rows"] for v in r[1:])


def test_the_sweep_json_carries_the_plot_of_its_runs():
    shown = data.sweep(sweep_of(RUNS))
    assert shown["parallel"]["runs"] == [["id-a", "a", 0.5], ["id-b", "b", 0.9], ["id-d", "d", 0.7]]
    assert [a["name"] for a in shown["parallel"]["axes"]] == ["lr", "opt", "acc"]
    assert shown["over_runs"] == [(0.5, 0.5), (0.9, 0.9), (0.7, 0.9)]
