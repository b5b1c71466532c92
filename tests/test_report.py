"""The report's views on their own: parameter importance, ROC averaging, and a sweep whose
runs logged no table (a user's own function) in Chromium. What the views pick to show is
tested in test_report_selections.py."""

from __future__ import annotations

import random

import numpy as np
import pytest

from sweepkit.backends import backend_for_new_sweep
from sweepkit.core.records import RunRecord, SweepInfo
from sweepkit.report import importance, roc_pr, write_report
from sweepkit.views import sweep
from tests.helpers.browser import broken_images


def sweep_of(runs: list[RunRecord]) -> SweepInfo:
    config = {"method": "random", "metric": {"name": "acc", "goal": "maximize"}}
    return SweepInfo("local-test", "local", config, "finished", runs)


def run(i: int, metric: float | None, state: str = "finished", **config) -> RunRecord:
    return RunRecord(f"r{i}", state, config, metric, 1.0, name=f"sweep-{i}")


def test_importance_ranks_the_parameter_that_drives_the_metric_first():
    rng = random.Random(0)
    runs = []
    for i in range(30):
        lr, noise = rng.uniform(0, 1), rng.uniform(0, 1)
        opt = rng.choice(["adam", "sgd"])
        runs.append(run(i, 90 + 5 * lr + rng.gauss(0, 0.1), lr=lr, noise=noise, opt=opt, seed=1))
    result = sweep.importance(sweep_of(runs))
    assert isinstance(result, sweep.Importance)
    assert result.features == ["lr", "noise", "opt=adam", "opt=sgd"]  # strings one-hot encoded
    assert result.constant == ["seed"]
    by_name = dict(zip(result.features, result.forest, strict=True))
    assert by_name["lr"] == max(by_name.values()) and by_name["lr"] > 0.8
    corr = dict(zip(result.features, result.correlation, strict=True))
    assert corr["lr"] > 0.95 and abs(corr["noise"]) < 0.5
    assert sum(result.forest) == pytest.approx(1.0)
    page = importance.view(sweep_of(runs))
    assert page.index("<td>lr</td>") < page.index("<td>noise</td>")  # most important first
    assert "one-hot encoded" in page and "Left out, one value in every run: seed" in page


def test_importance_needs_three_finished_runs_and_says_so():
    runs = [run(0, 1.0, lr=0.1), run(1, 2.0, lr=0.2), run(2, 3.0, "failed", lr=0.3)]
    result = sweep.importance(sweep_of(runs))
    assert (
        result
        == "Parameter importance needs at least 3 finished runs with the metric; this sweep has 2."
    )
    same = [run(i, float(i), lr=0.1) for i in range(4)]
    assert "No parameter took more than one value" in sweep.importance(sweep_of(same))
    few = importance.view(sweep_of([run(i, float(i), lr=i / 10) for i in range(4)]))
    assert "Fewer than 10 runs: a rough guide" in few


def test_macro_average_of_roc_curves_is_their_mean_on_a_common_grid():
    curves = {"0": (np.array([0.0, 1.0]), np.array([0.0, 1.0])),
              "1": (np.array([0.0, 0.0, 1.0]), np.array([0.0, 1.0, 1.0]))}  # fmt: skip
    mean = roc_pr.macro_average(curves)
    assert mean[0] == 0.5 and mean[50] == pytest.approx(0.75) and mean[-1] == 1.0


def test_report_of_runs_without_tables_renders_with_those_views_left_out(workdir, tmp_path):
    backend = backend_for_new_sweep("local")
    sweep_id = backend.create(
        {
            "method": "grid",
            "metric": {"name": "loss", "goal": "minimize"},
            "parameters": {"x": {"values": [0.0, 1.0, 2.0, 4.0]}},
        }
    )
    backend.agent(sweep_id, function="tests.sweep_functions:quadratic")
    page = write_report(backend, sweep_id, tmp_path / "out")
    text = page.read_text()
    assert "Left out: no run read here logged a prediction table" in text
    assert "Left out: the best runs logged no ROC or PR curve" in text
    assert "id='table'" not in text and "prediction-data" not in text
    assert "<td>x</td>" in text  # parameter importance needs only the runs' metrics
    images, broken = broken_images(page, tmp_path / "probe.html")
    assert images >= 3 and broken == 0
