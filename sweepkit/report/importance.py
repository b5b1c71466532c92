"""Parameter importance, the third panel of W&B's sweep page: each parameter's correlation
with the metric and its importance in a random forest fitted to the finished runs (computed
in `sweepkit.views.sweep`, which the dashboard shows too)."""

from __future__ import annotations

import html

from sweepkit.core.records import SweepInfo
from sweepkit.report.page import missing, paragraph
from sweepkit.views import sweep


def view(info: SweepInfo) -> str:
    """The importance table: parameter, correlation, forest importance, most important first."""
    result = sweep.importance(info)
    if isinstance(result, str):
        return missing(result)
    rows = []
    for j in result.ranked():
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
    if result.runs < sweep.FEW_RUNS:
        notes.append(f"Fewer than {sweep.FEW_RUNS} runs: a rough guide, not a measurement.")
    if any("=" in f for f in result.features):
        notes.append("Non-numeric parameters are one-hot encoded: one row per value.")
    if result.constant:
        notes.append(f"Left out, one value in every run: {', '.join(result.constant)}.")
    return table + paragraph(" ".join(notes))
