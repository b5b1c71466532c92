"""The sweep views, as numbers: parallel coordinates, the metric run by run, and parameter
importance (W&B's sweep page). The report draws them with matplotlib, the dashboard as SVG
in the browser: both from what these functions compute, so both show the same thing.

Parameters are features as W&B's importance panel makes them: numbers as they are, booleans
as 0/1, any other value (an optimizer's name) one-hot encoded, one feature per value
(``optimizer=adam``). A parameter with one value in these runs tells nothing and is named
as such.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from sweepkit.core.records import RunRecord, SweepInfo

MIN_RUNS = 3  # with two runs every correlation is +-1
FEW_RUNS = 10  # below this the importance figures are said to be rough
LOG_SPAN = 100  # a positive axis spanning this factor or more is drawn on a log scale
BEST_CURVES = 5  # finished runs whose metric curves a sweep page draws, the best ones
RUNNING_CURVES = 10  # and running runs, drawn as they grow


@dataclasses.dataclass(frozen=True)
class Axis:
    """One vertical axis: where each run crosses it (0 bottom, 1 top) and its labelled ticks."""

    name: str
    positions: list[float]
    ticks: list[tuple[float, str]]
    log: bool = False


@dataclasses.dataclass(frozen=True)
class ParallelCoordinates:
    """One axis per parameter that varies, then the metric's; a line per run, in `runs`' order."""

    runs: list[RunRecord]
    axes: list[Axis]


@dataclasses.dataclass(frozen=True)
class Importance:
    """The features of the finished runs and what they say about the metric."""

    runs: int
    features: list[str]
    correlation: list[float | None]  # Pearson; None where the feature does not vary
    forest: list[float]  # random-forest importances (they sum to 1)
    constant: list[str]  # parameters with one value in these runs

    def ranked(self) -> list[int]:
        """The features' indexes, the most important first."""
        return sorted(range(len(self.features)), key=lambda j: -self.forest[j])


def with_metric(info: SweepInfo) -> list[RunRecord]:
    """The runs that logged a finite value of the sweep's metric, in the order they started."""
    return [r for r in info.runs if r.metric is not None and math.isfinite(r.metric)]


def ranked(info: SweepInfo) -> list[RunRecord]:
    """Runs with a finite metric, best first by the sweep's goal (ties keep the sweep's order)."""
    return sorted(with_metric(info), key=lambda r: r.metric, reverse=info.maximize)  # type: ignore[arg-type, return-value]


def curve_runs(
    info: SweepInfo, best: int = BEST_CURVES, running: int = RUNNING_CURVES
) -> list[RunRecord]:
    """The runs whose metric curves a sweep page draws: the `best` best finished ones, then
    the first `running` still running, so that what a page reads stays bounded in a sweep of
    any size.

    >>> runs = [RunRecord("a", "finished", {}, 0.2, None), RunRecord("b", "running", {}, None, None),
    ...         RunRecord("c", "finished", {}, 0.1, None), RunRecord("d", "failed", {}, 0.0, None)]
    >>> [r.id for r in curve_runs(SweepInfo("s", "local", {"metric": {"name": "loss"}}, "running", runs), 1)]
    ['c', 'b']
    """
    finished = [r for r in ranked(info) if r.state == "finished"][:best]
    return finished + [r for r in info.runs if r.state == "running"][:running]


def parallel_coordinates(info: SweepInfo) -> ParallelCoordinates | str:
    """The parallel-coordinates plot, or a sentence saying why there is none.

    >>> runs = [RunRecord("a", "finished", {"lr": 0.001, "opt": "sgd"}, 0.5, None),
    ...         RunRecord("b", "finished", {"lr": 0.1, "opt": "adam"}, 0.9, None)]
    >>> sweep = SweepInfo("s", "local", {"metric": {"name": "acc"}}, "running", runs)
    >>> plot = parallel_coordinates(sweep)
    >>> [(a.name, a.positions, a.log) for a in plot.axes]
    [('lr', [0.0, 1.0], True), ('opt', [1.0, 0.0], False), ('acc', [0.0, 1.0], False)]
    """
    runs = with_metric(info)
    params = [
        p
        for p in sorted({k for r in runs for k in r.config})
        if len({repr(r.config.get(p)) for r in runs}) > 1
    ]
    if len(runs) < 2 or not params:
        return "Needs at least two runs with a metric and a parameter that varies."
    axes = [_axis(p, [r.config.get(p) for r in runs]) for p in params]
    axes.append(_axis(info.metric_name or "metric", [r.metric for r in runs]))
    return ParallelCoordinates(runs, axes)


def best_so_far(info: SweepInfo) -> list[tuple[float, float]]:
    """Each run's metric beside the best of it and every run before it (by the sweep's goal).

    >>> runs = [RunRecord(str(i), "finished", {}, m, None) for i, m in enumerate([3.0, 1.0, 2.0])]
    >>> best_so_far(SweepInfo("s", "local", {"metric": {"name": "loss"}}, "running", runs))
    [(3.0, 3.0), (1.0, 1.0), (2.0, 1.0)]
    """
    pick = max if info.maximize else min
    shown: list[tuple[float, float]] = []
    for run in with_metric(info):
        value = float(run.metric)  # type: ignore[arg-type]
        shown.append((value, pick(shown[-1][1], value) if shown else value))
    return shown


def importance(info: SweepInfo) -> Importance | str:
    """The importance of each parameter, or a sentence saying why there is none."""
    runs = [r for r in with_metric(info) if r.state == "finished"]
    if len(runs) < MIN_RUNS:
        return (
            f"Parameter importance needs at least {MIN_RUNS} finished runs with the metric; "
            f"this sweep has {len(runs)}."
        )
    names, matrix, constant = features(runs)
    if not names:
        return f"No parameter took more than one value in the {len(runs)} finished runs."
    metric = np.array([r.metric for r in runs], dtype=float)
    correlation = [_pearson(matrix[:, j], metric) for j in range(len(names))]
    return Importance(len(runs), names, correlation, _forest(matrix, metric), constant)


def features(runs: list[RunRecord]) -> tuple[list[str], np.ndarray, list[str]]:
    """The runs' parameters as a numeric matrix (one row per run).

    Returns:
        Feature names, the matrix, and the names of parameters that did not vary.

    >>> runs = [RunRecord("a", "finished", {"lr": 0.1, "opt": "sgd"}, 1.0, None),
    ...         RunRecord("b", "finished", {"lr": 0.2, "opt": "adam"}, 2.0, None)]
    >>> features(runs)[0]
    ['lr', 'opt=adam', 'opt=sgd']
    """
    names, columns, constant = [], [], []
    for param in sorted({k for r in runs for k in r.config}):
        values = [r.config.get(param) for r in runs]
        if len({repr(v) for v in values}) < 2:
            constant.append(param)
        elif all(_is_number(v) or isinstance(v, bool) for v in values):  # booleans as 0/1
            names.append(param)
            columns.append([float(v) for v in values])
        else:
            for value in sorted({repr(v) for v in values}):
                names.append(f"{param}={_show(value)}")
                columns.append([float(repr(v) == value) for v in values])
    matrix = np.array(columns, dtype=float).T if columns else np.empty((len(runs), 0))
    return names, matrix, constant


def _axis(name: str, values: list[Any]) -> Axis:
    """Map an axis to [0, 1]: numbers linearly (log10 if they span decades), others by
    category, in sorted order."""
    if all(_is_number(v) for v in values):
        lo, hi = min(values), max(values)
        log = lo > 0 and hi / lo >= LOG_SPAN
        f = math.log10 if log else float
        a, b = f(lo), f(hi)
        span = (b - a) or 1.0
        return Axis(
            name, [(f(v) - a) / span for v in values], [(0.0, _tick(lo)), (1.0, _tick(hi))], log
        )
    categories = sorted({repr(v) for v in values})
    step = 1.0 / max(1, len(categories) - 1)
    index = {c: i * step for i, c in enumerate(categories)}
    return Axis(name, [index[repr(v)] for v in values], [(y, _show(c)) for c, y in index.items()])


def _tick(value: float) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _forest(matrix: np.ndarray, metric: np.ndarray) -> list[float]:
    # scikit-learn comes with the `sweeps` engine (its GP for bayes); imported here, on use.
    from sklearn.ensemble import RandomForestRegressor

    forest = RandomForestRegressor(n_estimators=200, random_state=0).fit(matrix, metric)
    return [float(v) for v in forest.feature_importances_]


def _pearson(x: np.ndarray, y: np.ndarray) -> float | None:
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _show(value_repr: str) -> str:
    return value_repr.strip("'\"")
