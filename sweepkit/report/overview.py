"""The sweep at a glance: its best runs, parameters against the metric, the metric run by
run, the best runs' curves, and the best run's confusion matrix and misclassified images."""

from __future__ import annotations

import html
import math
from typing import Any

import matplotlib
import matplotlib.pyplot as plt

from sweepkit.backends.base import RunDetails
from sweepkit.core.records import RunRecord, SweepInfo
from sweepkit.report import predictions, selections
from sweepkit.report.page import data_uri, digit, fmt, grid, missing, paragraph, png

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
    header = "".join(f"<th>{html.escape(h)}</th>" for h in ["run", "state", *params, metric])
    rows = []
    for run in selections.ranked(info)[:10]:
        cells = [run.id, run.state, *(fmt(run.config.get(p)) for p in params), fmt(run.metric)]
        css = " class='best'" if run.id == best.id else ""
        rows.append(f"<tr{css}>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    parts.append(f"<h2>Best runs</h2><table><tr>{header}</tr>{''.join(rows)}</table>")
    return "".join(parts)


def parallel_coordinates(info: SweepInfo) -> str:
    """One vertical axis per varying parameter and one for the metric; a line per run, coloured by metric."""
    runs = [r for r in info.runs if r.metric is not None and math.isfinite(r.metric)]
    params = [
        p
        for p in sorted({k for r in runs for k in r.config})
        if len({repr(r.config.get(p)) for r in runs}) > 1
    ]
    if len(runs) < 2 or not params:
        return missing("Needs at least two runs with a metric and a parameter that varies.")
    axes_values = [[r.config.get(p) for r in runs] for p in params] + [[r.metric for r in runs]]
    names = [*params, info.metric_name or "metric"]
    positions, tick_labels = [], []
    for values in axes_values:
        scaled, labels = _scale_axis(values)
        positions.append(scaled)
        tick_labels.append(labels)
    fig, ax = plt.subplots(figsize=(9, 4))
    metrics = [r.metric for r in runs]
    norm = matplotlib.colors.Normalize(min(metrics), max(metrics))  # type: ignore[type-var]
    cmap = matplotlib.colormaps["viridis"]
    for i, run in enumerate(runs):
        ax.plot(
            range(len(names)),
            [axis[i] for axis in positions],
            color=cmap(norm(run.metric)),
            alpha=0.8,
            lw=1.5,
        )
    for x, labels in enumerate(tick_labels):
        ax.axvline(x, color="#888", lw=0.8)
        for y, text in labels:
            ax.text(x + 0.03, y, text, fontsize=7, va="center")
    ax.set_xticks(range(len(names)), names)
    ax.set_yticks([])
    ax.set_xlim(-0.1, len(names) - 0.6)
    fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=names[-1])
    return png(fig)


def _scale_axis(values: list[Any]) -> tuple[list[float], list[tuple[float, str]]]:
    """Map an axis to [0, 1]: numbers linearly (log10 if they span decades), others by category."""
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        lo, hi = min(values), max(values)
        use_log = lo > 0 and hi / lo >= 100
        f = math.log10 if use_log else float
        a, b = f(lo), f(hi)
        span = (b - a) or 1.0
        return [(f(v) - a) / span for v in values], [(0.0, fmt(float(lo))), (1.0, fmt(float(hi)))]
    categories = sorted({repr(v) for v in values})
    step = 1.0 / max(1, len(categories) - 1)
    index = {c: i * step for i, c in enumerate(categories)}
    return [index[repr(v)] for v in values], [(y, c.strip("'")) for c, y in index.items()]


def metric_over_runs(info: SweepInfo) -> str:
    runs = [r for r in info.runs if r.metric is not None and math.isfinite(r.metric)]
    if not runs:
        return missing("No run has logged the sweep's metric.")
    values = [r.metric for r in runs]
    best_so_far, best = [], None
    for v in values:
        best = v if best is None else (max(best, v) if info.maximize else min(best, v))
        best_so_far.append(best)
    fig, ax = plt.subplots(figsize=(9, 3))
    ax.scatter(range(1, len(values) + 1), values, s=18, label="run")
    ax.step(range(1, len(values) + 1), best_so_far, where="post", color="C1", label="best so far")
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


def curves(info: SweepInfo, ranked: list[RunRecord], details: dict[str, RunDetails]) -> str:
    keys = [k for k in ("loss", info.metric_name) if k]
    top = [r for r in ranked[:TOP_RUNS] if details.get(r.id) and details[r.id].history]
    if not top:
        return missing("The best runs' histories could not be read.")
    fig, axes = plt.subplots(1, len(keys), figsize=(9, 3), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        x_key = "epoch"
        for run in top:
            rows = [row for row in details[run.id].history if key in row]
            # Training loss has a point per log interval: by step; per-epoch metrics by epoch.
            x_key = "step" if rows and all("step" in row for row in rows) else "epoch"
            xs = [row.get(x_key, i) for i, row in enumerate(rows)]
            ax.plot(
                xs, [row[key] for row in rows], marker="." if len(rows) < 20 else None, label=run.id
            )
        ax.set_title(key)
        ax.set_xlabel(x_key)
    axes[0][0].legend(fontsize=8)
    return png(fig)


def confusion(details: RunDetails | None) -> str:
    table = details.confusion if details else None
    if table is None:
        return missing("The best run logged no confusion matrix.")
    classes = sorted(
        {row[0] for row in table.data} | {row[1] for row in table.data}, key=_class_key
    )
    index = {c: i for i, c in enumerate(classes)}
    counts = [[0.0] * len(classes) for _ in classes]
    for actual, predicted, n in table.data:
        counts[index[actual]][index[predicted]] += n
    fig, ax = plt.subplots(figsize=(5, 4.5))
    image = ax.imshow(counts, cmap="Blues")
    for i, row in enumerate(counts):
        for j, n in enumerate(row):
            if n:
                ax.text(j, i, f"{n:g}", ha="center", va="center", fontsize=7,
                        color="white" if n > max(map(max, counts)) / 2 else "black")  # fmt: skip
    ax.set_xticks(range(len(classes)), classes)
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    fig.colorbar(image, ax=ax)
    return png(fig)


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
