"""ROC and precision-recall curves of the best runs, one chart each, from the tables that
`wandb.plot.roc_curve` and `wandb.plot.pr_curve` logged (one curve per class per run)."""

from __future__ import annotations

import html

import matplotlib.pyplot as plt
import numpy as np

from sweepkit.backends.base import RunDetails
from sweepkit.core.records import RunRecord
from sweepkit.report.page import chart_data, missing, png

GRID = np.linspace(0.0, 1.0, 101)  # where the per-class curves are averaged


def curves_by_class(table: object, x: str, y: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each class's curve from a logged table with columns class, x, y; sorted by x.

    >>> from sweepkit.runlog import LoggedTable
    >>> t = LoggedTable(["class", "fpr", "tpr"], [["0", 1.0, 1.0], ["0", 0.0, 0.0]], {})
    >>> curves_by_class(t, "fpr", "tpr")["0"][0].tolist()
    [0.0, 1.0]
    """
    col = {name: i for i, name in enumerate(table.columns)}  # type: ignore[attr-defined]
    points: dict[str, list[tuple[float, float]]] = {}
    for row in table.data:  # type: ignore[attr-defined]
        points.setdefault(str(row[col["class"]]), []).append((row[col[x]], row[col[y]]))
    result = {}
    for name, pts in points.items():
        pts.sort()
        result[name] = (np.array([p[0] for p in pts]), np.array([p[1] for p in pts]))
    return result


def macro_average(curves: dict[str, tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """The classes' curves averaged on a common x grid (sklearn's macro-average ROC)."""
    return np.mean([np.interp(GRID, xs, ys) for xs, ys in curves.values()], axis=0)


def chart(ranked: list[RunRecord], details: dict[str, RunDetails], kind: str, top: int) -> str:
    """ROC (`kind` "roc") or PR ("pr") curves of the best `top` runs that logged them.

    Each run in its own colour: thin lines per class, its macro average bold, with the area
    under it in the legend.
    """
    x, y, title = ("fpr", "tpr", "ROC") if kind == "roc" else ("recall", "precision", "PR")
    drawn = [
        (run, key, table)
        for run in ranked
        if details.get(run.id) is not None
        for key, table in details[run.id].charts.get(kind, [])[:1]
    ][:top]
    if not drawn:
        return missing(f"No run logged a {title} curve.")
    fig, ax = plt.subplots(figsize=(6.5, 5))
    data = {}
    for i, (run, key, table) in enumerate(drawn):
        curves = curves_by_class(table, x, y)
        data[run.name or run.id] = {
            "key": key,
            "classes": {c: [xs.tolist(), ys.tolist()] for c, (xs, ys) in curves.items()},
        }
        for xs, ys in curves.values():
            ax.plot(xs, ys, color=f"C{i}", alpha=0.25, lw=0.8)
        mean = macro_average(curves)
        area = float(np.sum((mean[1:] + mean[:-1]) / 2 * np.diff(GRID)))  # the trapezoid rule
        ax.plot(
            GRID, mean, color=f"C{i}", lw=2.2,
            label=f"{run.name or run.id} ({key}): macro-average, area {area:.3f}",
        )  # fmt: skip
    if kind == "roc":
        ax.plot([0, 1], [0, 1], color="#999", ls="--", lw=0.8)
    ax.set_xlabel("false positive rate" if kind == "roc" else "recall")
    ax.set_ylabel("true positive rate" if kind == "roc" else "precision")
    ax.set_title(f"{title} curves, one per class (thin) and their average (bold)")
    ax.legend(fontsize=8, loc="lower right" if kind == "roc" else "lower left")
    keys = sorted({key for _, key, _ in drawn})
    return (
        png(fig)
        + f"<p class='keys'>logged as {html.escape(', '.join(keys))}</p>"
        + chart_data(kind, data)
    )
