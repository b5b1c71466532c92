"""Predictions across a run's epochs (the first seed's "1 vs 5 epochs" views): the images
whose guess changed, and the wrong guesses per epoch with the images still wrong at the end."""

from __future__ import annotations

import html

import matplotlib.pyplot as plt

from sweepkit.backends.base import RunDetails, RunRecord
from sweepkit.report import predictions
from sweepkit.report.page import (
    class_axis,
    data_uri,
    digit,
    grid,
    missing,
    paragraph,
    png,
    score_bars,
)
from sweepkit.report.predictions import Prediction

MAX_SHOWN = 24  # images per view


def run_with_epochs(
    ranked: list[RunRecord], details: dict[str, RunDetails]
) -> tuple[RunRecord, list[list[Prediction]]] | None:
    """The best run whose prediction table was logged at two epochs or more."""
    for run in ranked:
        tables = predictions.epochs(details.get(run.id))
        if len(tables) >= 2:
            return run, tables
    return None


def changed_guesses(ranked: list[RunRecord], details: dict[str, RunDetails]) -> str:
    """The test images whose guess changed between the first and the last epoch of one run,
    each with its ten scores at both epochs (green: first epoch, purple: last)."""
    found = run_with_epochs(ranked, details)
    if found is None:
        return missing(
            "No run logged its prediction table at two epochs or more (train with epochs >= 2)."
        )
    run, tables = found
    first, last = tables[0], predictions.by_key(tables[-1])
    pairs = [(p, last[p.key]) for p in first if p.key in last and last[p.key].guess != p.guess]
    n = len(tables)
    intro = (
        f"Run {run.id} (the best run with several epochs): {len(pairs)} of {len(first)} images "
        f"in its prediction table changed their guess between epoch 1 and epoch {n}."
    )
    figures = []
    for before, after in pairs[:MAX_SHOWN]:
        uri = data_uri(after.image)
        if uri is None:
            continue
        bars = (
            score_bars(before.scores, f"epoch 1: {before.guess}", "first")
            + score_bars(after.scores, f"epoch {n}: {after.guess}", "second")
            + class_axis()
        )
        figures.append(digit(uri, f"truth {after.truth}", bars))
    if pairs and not figures:
        return paragraph(intro) + missing("The prediction table's images are not on this machine.")
    return paragraph(intro) + grid(figures)


def errors_over_time(ranked: list[RunRecord], details: dict[str, RunDetails]) -> str:
    """Wrong guesses per epoch of the best runs (over the whole test set when the run logged
    `test_errors`, else in its prediction table), and the best run's images still wrong at its
    last epoch that were wrong at its first."""
    lines = []
    for run in ranked:
        counts, where = _errors_per_epoch(details.get(run.id))
        if counts:
            lines.append((run.id, counts, where))
    if not lines:
        return missing("The best runs logged neither test_errors nor a prediction table.")
    fig, ax = plt.subplots(figsize=(9, 3))
    for run_id, counts, where in lines:
        ax.plot(range(1, len(counts) + 1), counts, marker="o", label=f"{run_id} ({where})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("wrong guesses")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=8)
    summary = "; ".join(
        f"{run_id}: {' → '.join(str(c) for c in counts)} ({where})"
        for run_id, counts, where in lines
    )
    return paragraph(summary) + png(fig) + _still_wrong(ranked, details)


def _errors_per_epoch(details: RunDetails | None) -> tuple[list[int], str]:
    if details is None:
        return [], ""
    logged = [int(row["test_errors"]) for row in details.history if "test_errors" in row]
    if logged:
        return logged, "whole test set"
    tables = predictions.epochs(details)
    return [sum(p.wrong for p in t) for t in tables], "in the prediction table"


def _still_wrong(ranked: list[RunRecord], details: dict[str, RunDetails]) -> str:
    found = run_with_epochs(ranked, details)
    if found is None:
        return missing("Images still wrong at the end need a run with two epochs or more.")
    run, tables = found
    first = predictions.by_key(tables[0])
    stuck = [p for p in tables[-1] if p.wrong and p.key in first and first[p.key].wrong]
    title = (
        f"<h3>Still wrong at the end: {len(stuck)} images of run {html.escape(run.id)} wrong "
        f"at epoch 1 and at epoch {len(tables)}</h3>"
    )
    figures = [
        digit(uri, f"guess {first[p.key].guess}→{p.guess} / truth {p.truth}")
        for p in stuck[:MAX_SHOWN]
        if (uri := data_uri(p.image)) is not None
    ]
    if not stuck:
        return title
    return title + (grid(figures) if figures else missing("Their images are not on this machine."))
