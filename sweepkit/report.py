"""`sweepkit report`: a sweep as one self-contained HTML page (charts inlined as PNG).

Everything comes from what the runs logged (their run folders for a local
sweep, the W&B API for a W&B sweep); nothing is re-run. Charts are drawn with
matplotlib's non-interactive Agg backend, so no display is needed.
"""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from sweepkit.backends.base import Backend, RunDetails, RunRecord, SweepInfo

TOP_RUNS = 3  # runs whose curves are drawn
MAX_MISTAKES = 24  # misclassified images shown
CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: .9rem; } td, th { padding: .25rem .6rem; text-align: right; }
th { border-bottom: 1px solid #999; } tr.best { background: #e6f4ea; font-weight: 600; }
.facts span { display: inline-block; margin-right: 1.5rem; } img.chart { max-width: 100%; }
.mistakes { display: grid; grid-template-columns: repeat(8, 1fr); gap: .5rem; }
.mistakes figure { margin: 0; text-align: center; font-size: .8rem; }
.mistakes img { width: 56px; height: 56px; image-rendering: pixelated; border: 1px solid #ccc; }
.missing { color: #777; font-style: italic; }
"""


def write_report(backend: Backend, sweep_id: str, out_dir: Path) -> Path:
    """Read the sweep and what its best runs logged; write ``out_dir/report.html``."""
    info = backend.sweep(sweep_id)
    ranked = _ranked(info)
    details = backend.run_details(sweep_id, [r.id for r in ranked[:TOP_RUNS]])
    out_dir.mkdir(parents=True, exist_ok=True)
    page = out_dir / "report.html"
    page.write_text(render(info, ranked, details))
    return page


def render(info: SweepInfo, ranked: list[RunRecord], details: dict[str, RunDetails]) -> str:
    """The whole page as HTML."""
    best = ranked[0] if ranked else None
    best_details = details.get(best.id) if best else None
    sections = [
        _glance(info, best),
        _section("Parameters against the metric", _parallel_coordinates(info)),
        _section("The metric, run by run", _metric_over_runs(info)),
        _section(
            f"Curves of the best {min(TOP_RUNS, len(ranked))} runs",
            _elsewhere(details) + _curves(info, ranked, details),
        ),
        _section("Best run: confusion matrix", _confusion(best_details)),
        _section("Best run: misclassified test images", _mistakes(best_details)),
    ]
    title = html.escape(f"sweep {info.label}")
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
        f"<style>{CSS}</style></head><body><h1>{title}</h1>{''.join(sections)}</body></html>"
    )


def _ranked(info: SweepInfo) -> list[RunRecord]:
    """Runs with a finite metric, best first."""
    scored = [r for r in info.runs if r.metric is not None and math.isfinite(r.metric)]
    return sorted(scored, key=lambda r: r.metric, reverse=info.maximize)  # type: ignore[arg-type, return-value]


def _section(title: str, body: str) -> str:
    return f"<h2>{html.escape(title)}</h2>{body}"


def _missing(what: str) -> str:
    return f"<p class='missing'>{html.escape(what)}</p>"


def _png(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode()
    return f"<img class='chart' alt='chart' src='data:image/png;base64,{data}'>"


def _glance(info: SweepInfo, best: RunRecord | None) -> str:
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
        parts.append(_missing("No run has logged the sweep's metric yet."))
        return "".join(parts)
    params = sorted({k for r in info.runs for k in r.config})
    header = "".join(f"<th>{html.escape(h)}</th>" for h in ["run", "state", *params, metric])
    rows = []
    for run in _ranked(info)[:10]:
        cells = [run.id, run.state, *(_fmt(run.config.get(p)) for p in params), _fmt(run.metric)]
        css = " class='best'" if run.id == best.id else ""
        rows.append(f"<tr{css}>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    parts.append(f"<h2>Best runs</h2><table><tr>{header}</tr>{''.join(rows)}</table>")
    return "".join(parts)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def _parallel_coordinates(info: SweepInfo) -> str:
    """One vertical axis per varying parameter and one for the metric; a line per run, coloured by metric."""
    runs = [r for r in info.runs if r.metric is not None and math.isfinite(r.metric)]
    params = [
        p
        for p in sorted({k for r in runs for k in r.config})
        if len({repr(r.config.get(p)) for r in runs}) > 1
    ]
    if len(runs) < 2 or not params:
        return _missing("Needs at least two runs with a metric and a parameter that varies.")
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
    return _png(fig)


def _scale_axis(values: list[Any]) -> tuple[list[float], list[tuple[float, str]]]:
    """Map an axis to [0, 1]: numbers linearly (log10 if they span decades), others by category."""
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        lo, hi = min(values), max(values)
        use_log = lo > 0 and hi / lo >= 100
        f = math.log10 if use_log else float
        a, b = f(lo), f(hi)
        span = (b - a) or 1.0
        return [(f(v) - a) / span for v in values], [(0.0, _fmt(float(lo))), (1.0, _fmt(float(hi)))]
    categories = sorted({repr(v) for v in values})
    step = 1.0 / max(1, len(categories) - 1)
    index = {c: i * step for i, c in enumerate(categories)}
    return [index[repr(v)] for v in values], [(y, c.strip("'")) for c, y in index.items()]


def _metric_over_runs(info: SweepInfo) -> str:
    runs = [r for r in info.runs if r.metric is not None and math.isfinite(r.metric)]
    if not runs:
        return _missing("No run has logged the sweep's metric.")
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
    return _png(fig)


def _elsewhere(details: dict[str, RunDetails]) -> str:
    """One line naming the runs whose folders this machine cannot see, and where they are."""
    away = [f"{run_id} ({d.elsewhere})" for run_id, d in details.items() if d.elsewhere]
    if not away:
        return ""
    return _missing(
        f"Run folders on other machines: {', '.join(away)}. Their metric comes from the store "
        "(its curve too, where the store kept its points); their tables are not shown here."
    )


def _curves(info: SweepInfo, ranked: list[RunRecord], details: dict[str, RunDetails]) -> str:
    keys = [k for k in ("loss", info.metric_name) if k]
    top = [r for r in ranked[:TOP_RUNS] if details.get(r.id) and details[r.id].history]
    if not top:
        return _missing("The best runs' histories could not be read.")
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
    return _png(fig)


def _confusion(details: RunDetails | None) -> str:
    table = details.confusion if details else None
    if table is None:
        return _missing("The best run logged no confusion matrix.")
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
    return _png(fig)


def _class_key(name: str) -> tuple[int, Any]:
    return (0, int(name)) if str(name).isdigit() else (1, str(name))


def _mistakes(details: RunDetails | None) -> str:
    table = details.predictions if details else None
    if table is None:
        return _missing("The best run logged no prediction table.")
    col = {name: i for i, name in enumerate(table.columns)}
    wrong = [row for row in table.data if row[col["guess"]] != row[col["truth"]]]
    if not wrong:
        return _missing("Every image in the best run's prediction table was classified right.")
    figures = []
    for row in wrong[:MAX_MISTAKES]:
        png = table.image(row[col["image"]])
        if png is None or not Path(png).exists():
            continue
        data = base64.b64encode(Path(png).read_bytes()).decode()
        caption = f"guess {row[col['guess']]} / truth {row[col['truth']]}"
        figures.append(
            f"<figure><img alt='{html.escape(caption)}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
    if not figures:
        return _missing("The prediction table's images are not on this machine.")
    shown = f"{len(figures)} of {len(wrong)} misclassified in the table ({len(table.data)} images)"
    return f"<p>{html.escape(shown)}</p><div class='mistakes'>{''.join(figures)}</div>"
