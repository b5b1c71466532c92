"""Which runs and which test images the report shows: the choices, apart from the drawing.

The views (overview, compare, over_time, roc_pr, table) draw what these functions pick.
Keeping the picking here, as plain functions of the sweep's records and the runs'
prediction tables, lets it be tested, and mutation-scored, without matplotlib or HTML.
"""

from __future__ import annotations

from sweepkit.backends.base import RunDetails
from sweepkit.core.records import RunRecord, SweepInfo
from sweepkit.errors import SweepkitError
from sweepkit.views import predictions
from sweepkit.views.predictions import Prediction

Pairs = list[tuple[Prediction, Prediction]]


class UnknownRunError(SweepkitError):
    """A run named with --compare is not in the sweep."""


def pick_pair(
    info: SweepInfo, ranked: list[RunRecord], named: tuple[str, str] | None
) -> tuple[RunRecord, RunRecord] | None:
    """The two runs to compare: the ones named (id or name), else the best and the worst
    finished run (None when fewer than two finished runs have the metric).

    Raises:
        UnknownRunError: a named run is not in the sweep (the message lists its runs).
    """
    if named is not None:
        # An id wins over another run's name that spells it: ids are unique, names need not be.
        by_name = {r.name: r for r in info.runs if r.name} | {r.id: r for r in info.runs}
        unknown = [n for n in named if n not in by_name]
        if unknown:
            known = ", ".join(r.id for r in info.runs) or "none"
            raise UnknownRunError(
                f"--compare: no run {', '.join(unknown)} in sweep {info.label} (its runs: {known})"
            )
        return by_name[named[0]], by_name[named[1]]
    finished = [r for r in ranked if r.state == "finished"]
    return (finished[0], finished[-1]) if len(finished) >= 2 else None


def wrong(rows: list[Prediction]) -> list[Prediction]:
    """The misclassified rows, in the table's order."""
    return [p for p in rows if p.wrong]


def by_guess(rows: list[Prediction]) -> dict[int, list[Prediction]]:
    """The misclassified rows grouped by the model's guess, guesses ascending."""
    groups: dict[int, list[Prediction]] = {}
    for p in sorted(wrong(rows), key=lambda p: p.guess):
        groups.setdefault(p.guess, []).append(p)
    return groups


def changed(before: list[Prediction], after: list[Prediction]) -> tuple[Pairs, int]:
    """The images both tables hold whose guess differs, as (before, after) pairs in
    `before`'s order, and how many images both tables hold.

    Used for two epochs of one run (guesses that changed) and for two runs at their last
    epoch (where they disagree); images are matched by `Prediction.key`.
    """
    other = predictions.by_key(after)
    shared = [p for p in before if p.key in other]
    return [(p, other[p.key]) for p in shared if other[p.key].guess != p.guess], len(shared)


def still_wrong(first: list[Prediction], last: list[Prediction]) -> Pairs:
    """The images wrong in both tables, as (first, last) pairs in `last`'s order."""
    earlier = predictions.by_key(first)
    return [
        (earlier[p.key], p) for p in last if p.wrong and p.key in earlier and earlier[p.key].wrong
    ]


def run_with_epochs(
    ranked: list[RunRecord], details: dict[str, RunDetails]
) -> tuple[RunRecord, list[list[Prediction]]] | None:
    """The best run whose prediction table was logged at two epochs or more, with its tables."""
    for run in ranked:
        tables = predictions.epochs(details.get(run.id))
        if len(tables) >= 2:
            return run, tables
    return None


def errors_per_epoch(details: RunDetails | None) -> tuple[list[int], str]:
    """A run's wrong guesses per epoch and where they were counted: over the whole test set
    when the run logged `test_errors`, else in its prediction table; ([], "") for neither."""
    if details is None:
        return [], ""
    logged = [int(row["test_errors"]) for row in details.history if "test_errors" in row]
    if logged:
        return logged, "whole test set"
    tables = predictions.epochs(details)
    if not tables:
        return [], ""
    return [len(wrong(t)) for t in tables], "in the prediction table"
