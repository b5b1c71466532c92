"""Predictions across a run's epochs (the first seed's "1 vs 5 epochs" views): the images
whose guess changed, and the wrong guesses per epoch with the images still wrong at the end."""

from __future__ import annotations

import html

import matplotlib.pyplot as plt

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
    png,
    score_bars,
)

MAX_SHOWN = 24  # images per view


def changed_guesses(ranked: list[RunRecord], details: dict[str, RunDetails]) -> str:
    """The test images whose guess changed between the first and the last epoch of one run,
    each with its ten scores at both epochs (green: first epoch, purple: last)."""
    found = selections.run_with_epochs(ranked, details)
    if found is None:
        return missing(
            "No run logged its prediction table at two epochs or more (train with epochs >= 2)."
        )
    run, tables = found
    first = tables[0]
    pairs, _ = selections.changed(first, tables[-1])
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
        counts, where = selections.errors_per_epoch(details.get(run.id))
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


def _still_wrong(ranked: list[RunRecord], details: dict[str, RunDetails]) -> str:
    found = selections.run_with_epochs(ranked, details)
    if found is None:
        return missing("Images still wrong at the end need a run with two epochs or more.")
    run, tables = found
    stuck = selections.still_wrong(tables[0], tables[-1])
    title = (
        f"<h3>Still wrong at the end: {len(stuck)} images of run {html.escape(run.id)} wrong "
        f"at epoch 1 and at epoch {len(tables)}</h3>"
    )
    figures = [
        digit(uri, f"guess {before.guess}→{p.guess} / truth {p.truth}")
        for before, p in stuck[:MAX_SHOWN]
        if (uri := data_uri(p.image)) is not None
    ]
    if not stuck:
        return title
    return title + (grid(figures) if figures else missing("Their images are not on this machine."))
