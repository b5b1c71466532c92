"""Parameter importance, the third panel of W&B's sweep page: each parameter's correlation
with the metric and its importance in a random forest fitted to the finished runs.

Numbers are used as they are and booleans as 0/1; any other parameter (a string such as
an optimizer's name) is one-hot encoded, one feature per value (``optimizer=adam``), as
W&B does. Parameters with one value in these runs tell nothing and are named as such.
"""

from __future__ import annotations

import dataclasses
import html
import math
from typing import Any

import numpy as np

from sweepkit.core.records import RunRecord, SweepInfo
from sweepkit.report.page import missing, paragraph

MIN_RUNS = 3  # with two runs every correlation is +-1
FEW_RUNS = 10  # below this the figures are said to be rough


@dataclasses.dataclass(frozen=True)
class Importance:
    """The features of the finished runs and what they say about the metric."""

    runs: int
    features: list[str]
    correlation: list[float | None]  # Pearson; None where the feature does not vary
    forest: list[float]  # random-forest importances (they sum to 1)
    constant: list[str]  # parameters with one value in these runs


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
        elif all(_is_number(v) for v in values):
            names.append(param)
            columns.append([float(v) for v in values])
        else:
            for value in sorted({repr(v) for v in values}):
                names.append(f"{param}={_show(value)}")
                columns.append([float(repr(v) == value) for v in values])
    matrix = np.array(columns, dtype=float).T if columns else np.empty((len(runs), 0))
    return names, matrix, constant


def compute(info: SweepInfo) -> Importance | str:
    """The importance of each parameter, or a sentence saying why there is none."""
    runs = [
        r
        for r in info.runs
        if r.state == "finished" and r.metric is not None and math.isfinite(r.metric)
    ]
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


def view(info: SweepInfo) -> str:
    """The importance table: parameter, correlation, forest importance, most important first."""
    result = compute(info)
    if isinstance(result, str):
        return missing(result)
    order = sorted(range(len(result.features)), key=lambda j: -result.forest[j])
    rows = []
    for j in order:
        corr = result.correlation[j]
        corr_cell = (
            "<td class='bar-cell'>—</td>"
            if corr is None
            else f"<td class='bar-cell'><i class='{'pos' if corr >= 0 else 'neg'}' "
            f"style='width:{abs(corr) * 100:.0f}px'></i> {corr:+.2f}</td>"
        )
        imp = result.forest[j]
        imp_cell = f"<td class='bar-cell'><i class='imp' style='width:{imp * 100:.0f}px'></i> {imp:.2f}</td>"
        rows.append(f"<tr><td>{html.escape(result.features[j])}</td>{corr_cell}{imp_cell}</tr>")
    metric = html.escape(info.metric_name or "the metric")
    table = (
        f"<table class='importance'><tr><th>parameter</th><th>correlation with {metric}</th>"
        f"<th>importance (random forest)</th></tr>{''.join(rows)}</table>"
    )
    notes = [f"From {result.runs} finished runs."]
    if result.runs < FEW_RUNS:
        notes.append(f"Fewer than {FEW_RUNS} runs: a rough guide, not a measurement.")
    if any("=" in f for f in result.features):
        notes.append("Non-numeric parameters are one-hot encoded: one row per value.")
    if result.constant:
        notes.append(f"Left out, one value in every run: {', '.join(result.constant)}.")
    return table + paragraph(" ".join(notes))


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
    return isinstance(value, int | float) and math.isfinite(value)


def _show(value_repr: str) -> str:
    return value_repr.strip("'\"")
