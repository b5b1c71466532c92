"""The sweep at a glance: its best runs, parameters against the metric, the metric run by
run, the best runs' curves, and the best run's confusion matrix and misclassified images."""

from __future__ import annotations

import html
from typing import Any

import matplotlib
import matplotlib.pyplot as plt

from sweepkit.backends.base import RunDetails
from sweepkit.core.records import RunRecord, SweepInfo
from sweepkit.report import selections
from sweepkit.report.page import chart_data, data_uri, digit, fmt, grid, missing, paragraph, png
from sweepkit.views import predictions, sweep

TOP_RUNS = 3  # runs whose curves are drawn
MAX_MISTAKES = 24  # misclassified images shown


def glance(info: SweepInfo, best: RunRecord | None) -> str:
    metric = info.metric_name or "(no metric)"
    goal = "maximize" if info.maximize else "minimize"
    counts = ", ".join(f"{n} {s}" for s, n in sorted(info.counts().items())) or "no runs"
    facts = [
        ("backend", info.backend), ("method", info.config.get("method", "?")),
        ("metric", f"{metric} ({goal})"), ("state", info.state), ("runs", counts),
    ]  # fmt: skip
    parts = ["<div class='facts'>"] + [
        f"<span><b>{html.escape(k)}</b> {html.escape(str(v))}</span>" for k, v in facts
    ]
    parts.append("</div>")
    if best is None:
        parts.append(missing("No run has logged the sweep's metric yet."))
        return "".join(parts)
    params = sorted({k for r in info.runs for k in r.config})
    header = "".join(f"<th>{html.escape(h)}</th>" for h in ["run", "id", "state", *params, metric])
    rows = []
    for run in sweep.ranked(info)[:10]:
        cells = [run.name or run.id, run.id, run.state,
                 *(fmt(run.config.get(p)) for p in params), fmt(run.metric)]  # fmt: skip
        css = " class='best'" if run.id == best.id else ""
        rows.append(f"<tr{css}>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    parts.append(f"<h2>Best runs</h2><table><tr>{header}</tr>{''.join(rows)}</table>")
    return "".join(parts)


def parallel_coordinates(info: SweepInfo) -> str:
    """One vertical axis per varying parameter and one for the metric; a line per run, coloured by metric."""
    plot = sweep.parallel_coordinates(info)
    if isinstance(plot, str):
        return missing(plot)
    names = [axis.name for axis in plot.axes]
    fig, ax = plt.subplots(figsize=(9, 4))
    metrics = [r.metric for r in plot.runs]
    norm = matplotlib.colors.Normalize(min(metrics), max(metrics))  # type: ignore[type-var]
    cmap = matplotlib.colormaps["viridis"]
    for i, run in enumerate(plot.runs):
        crossings = [axis.positions[i] for axis in plot.axes]
        ax.plot(range(len(names)), crossings, color=cmap(norm(run.metric)), alpha=0.8, lw=1.5)
    for x, axis in enumerate(plot.axes):
        ax.axvline(x, color="#888", lw=0.8)
        for y, text in axis.ticks:
            ax.text(
                x + 0.03, y, text + (" (log)" if axis.log and y else ""), fontsize=7, va="center"
            )
    ax.set_xticks(range(len(names)), names)
    ax.set_yticks([])
    ax.set_xlim(-0.1, len(names) - 0.6)
    fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=names[-1])
    return png(fig)


def metric_over_runs(info: SweepInfo) -> str:
    shown = sweep.best_so_far(info)
    if not shown:
        return missing("No run has logged the sweep's metric.")
    order = range(1, len(shown) + 1)
    fig, ax = plt.subplots(figsize=(9, 3))
    ax.scatter(order, [value for value, _ in shown], s=18, label="run")
    ax.step(order, [best for _, best in shown], where="post", color="C1", label="best so far")
    ax.set_xlabel("run, in the order runs started")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_ylabel(info.metric_name or "metric")
    ax.legend()
    return png(fig)


def elsewhere(details: dict[str, RunDetails]) -> str:
    """One line naming the runs whose folders this machine cannot see, and where they are."""
    away = [f"{run_id} ({d.elsewhere})" for run_id, d in details.items() if d.elsewhere]
    if not away:
        return ""
    return missing(
        f"Run folders on other machines: {', '.join(away)}. Their metric comes from the store "
        "(its curve too, where the store kept its points); their tables are not shown here."
    )


# Logged counters that are an x axis, not a curve of their own.
X_KEYS = frozenset({"epoch", "step", "global_step", "trainer/global_step", "iteration"})
MAX_CURVES = 4  # panels of curves: the sweep's metric first, then what the runs logged most


def curve_keys(info: SweepInfo, histories: list[list[dict[str, float]]]) -> list[str]:
    """The scalars worth a panel: the sweep's metric first, then the others the runs logged,
    those most runs logged first (W&B's app draws every one; a page draws a few).

    >>> info = SweepInfo("s", "local", {"metric": {"name": "acc"}}, "running", [])
    >>> curve_keys(info, [[{"_step": 0, "loss": 1.0, "acc": 0.5, "epoch": 0}], [{"loss": 2.0}]])
    ['acc', 'loss']
    """
    logged: dict[str, int] = {}
    for history in histories:
        for key in {k for row in history for k in row}:
            logged[key] = logged.get(key, 0) + 1
    metric = info.metric_name
    others = sorted(
        (k for k in logged if k != metric and k not in X_KEYS and not k.startswith("_")),
        key=lambda k: (-logged[k], k),
    )
    return ([metric] if metric in logged else []) + others[: MAX_CURVES - (metric in logged)]


def curves(info: SweepInfo, ranked: list[RunRecord], details: dict[str, RunDetails]) -> str:
    """The best runs' curves of the sweep's metric and of the other scalars they logged, by
    W&B's step (or by epoch where every point of a key has one)."""
    top = [r for r in ranked[:TOP_RUNS] if details.get(r.id) and details[r.id].history]
    if not top:
        return missing("The best runs' histories could not be read.")
    keys = curve_keys(info, [details[r.id].history for r in top])
    if not keys:
        return missing("The best runs logged no numbers over their steps.")
    columns = min(2, len(keys))
    rows = -(-len(keys) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(9, 3 * rows), squeeze=False)
    drawn: dict[str, dict[str, list[list[float]]]] = {}
    for ax, key in zip(axes.flat, keys, strict=False):
        points = {run.id: [row for row in details[run.id].history if key in row] for run in top}
        x_key = "epoch" if all("epoch" in r for rs in points.values() for r in rs) else "_step"
        single = all(len(rs) <= 1 for rs in points.values())
        for run in top:
            rs = points[run.id]
            xs = [row.get(x_key, i) for i, row in enumerate(rs)]
            ax.plot(xs, [row[key] for row in rs], marker="o" if len(rs) < 20 else None,
                    label=run.name or run.id)  # fmt: skip
            drawn.setdefault(key, {})[run.name or run.id] = [
                [x, row[key]] for x, row in zip(xs, rs, strict=True)
            ]
        if single:  # one point a run: say so on the axis, not with ticks of 0.96 ... 1.04
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_title(key + (" (one value a run)" if single else ""))
        ax.set_xlabel("epoch" if x_key == "epoch" else "step")
    for ax in list(axes.flat)[len(keys) :]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=8)
    return png(fig) + chart_data("curves", drawn)


def _class_key(name: str) -> tuple[int, Any]:
    return (0, int(name)) if str(name).isdigit() else (1, str(name))


def mistakes(details: RunDetails | None) -> str:
    """The best run's misclassified images at its last epoch, captioned guess / truth."""
    rows = predictions.rows(details.predictions if details else None)
    if rows is None:
        return missing("The best run logged no prediction table.")
    wrong = selections.wrong(rows)
    if not wrong:
        return missing("Every image in the best run's prediction table was classified right.")
    figures = []
    for p in wrong[:MAX_MISTAKES]:
        uri = data_uri(p.image)
        if uri is not None:
            figures.append(digit(uri, f"guess {p.guess} / truth {p.truth}"))
    if not figures:
        return missing("The prediction table's images are not on this machine.")
    shown = f"{len(figures)} of {len(wrong)} misclassified in the table ({len(rows)} images)"
    return paragraph(shown) + grid(figures)
