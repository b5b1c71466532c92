"""Two runs side by side (the first seed's "false positives grouped by guess"): each run's
misclassified images grouped by guess with the true labels of each group, and the images
where the two runs disagree, with both runs' scores."""

from __future__ import annotations

import html
from collections import Counter

from sweepkit.backends.base import RunDetails
from sweepkit.core.records import RunRecord
from sweepkit.report import selections
from sweepkit.report.page import (
    class_axis,
    data_uri,
    digit,
    grid,
    missing,
    paragraph,
    score_bars,
)
from sweepkit.views import predictions
from sweepkit.views.predictions import Prediction

PER_GROUP = 8  # images shown per guess
MAX_DISAGREEMENTS = 24


def side_by_side(
    pair: tuple[RunRecord, RunRecord] | None, details: dict[str, RunDetails], named: bool
) -> str:
    """The whole view for `pair` (from `selections.pick_pair`)."""
    if pair is None:
        return missing(
            "Needs two finished runs with the sweep's metric (or --compare RUN_A RUN_B)."
        )
    a, b = pair
    rows_a = predictions.rows(_last(details.get(a.id)))
    rows_b = predictions.rows(_last(details.get(b.id)))
    how = "as asked with --compare" if named else "the best and the worst finished run"
    intro = paragraph(f"{_label(a)} against {_label(b)} ({how}), at each run's last epoch.")
    if rows_a is None or rows_b is None:
        lacking = ", ".join(r.id for r, rows in ((a, rows_a), (b, rows_b)) if rows is None)
        return intro + missing(f"No prediction table logged by {lacking}: nothing to compare.")
    columns = "".join(
        f"<div><h3>{html.escape(_label(run))}</h3>{_grouped_by_guess(rows)}</div>"
        for run, rows in ((a, rows_a), (b, rows_b))
    )
    return (
        intro + f"<div class='side-by-side'>{columns}</div>" + _disagreements(a, rows_a, b, rows_b)
    )


def _last(details: RunDetails | None) -> object:
    return details.predictions if details else None


def _label(run: RunRecord) -> str:
    metric = f"{run.metric:.4g}" if run.metric is not None else "no metric"
    return f"{run.id} ({metric})"


def _grouped_by_guess(rows: list[Prediction]) -> str:
    groups = selections.by_guess(rows)
    if not groups:
        return missing(f"No misclassified image among its {len(rows)}.")
    wrong = sum(len(group) for group in groups.values())
    parts = [paragraph(f"{wrong} misclassified of {len(rows)}, by guess:")]
    for guess, group in groups.items():
        truths = Counter(p.truth for p in group)
        most = max(truths.values())
        bars = "".join(
            f"<span title='truth {t}: {n}' style='height:{100 * n / most:.0f}%'>{t}</span>"
            for t, n in sorted(truths.items())
        )
        figures = [
            digit(uri, f"truth {p.truth}")
            for p in group[:PER_GROUP]
            if (uri := data_uri(p.image)) is not None
        ]
        spread = ", ".join(f"{t}: {n}" for t, n in sorted(truths.items()))
        parts.append(
            f"<div class='group' data-guess='{guess}'><b>guess {guess}</b>: {len(group)} "
            f"(truth {html.escape(spread)})<div class='truths'>{bars}</div>{grid(figures)}</div>"
        )
    return "".join(parts)


def _disagreements(
    a: RunRecord, rows_a: list[Prediction], b: RunRecord, rows_b: list[Prediction]
) -> str:
    pairs, shared = selections.changed(rows_a, rows_b)
    title = (
        f"<h3>Where they disagree: {len(pairs)} of the {shared} "
        f"images both tables hold (green: {html.escape(a.id)}, purple: {html.escape(b.id)})</h3>"
    )
    figures = []
    for pa, pb in pairs[:MAX_DISAGREEMENTS]:
        uri = data_uri(pa.image)
        if uri is None:
            continue
        bars = (
            score_bars(pa.scores, f"{a.id}: {pa.guess}", "first")
            + score_bars(pb.scores, f"{b.id}: {pb.guess}", "second")
            + class_axis()
        )
        figures.append(digit(uri, f"truth {pa.truth}", bars))
    return title + grid(figures)
