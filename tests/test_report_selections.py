"""What the report picks to show, on its own: the ranking, the pair compared, and which test
images each view takes from the runs' prediction tables (sweepkit.report.selections and
sweepkit.report.predictions, no drawing)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from sweepkit.backends.base import RunDetails
from sweepkit.core.records import RunRecord, SweepInfo
from sweepkit.report import selections
from sweepkit.runlog import LoggedTable
from sweepkit.views import predictions
from sweepkit.views import sweep as views
from sweepkit.views.predictions import NEEDED, Prediction


def sweep_of(runs: list[RunRecord], goal: str | None = "maximize") -> SweepInfo:
    metric = {"name": "acc"} | ({"goal": goal} if goal else {})
    return SweepInfo(
        "local-test", "local", {"method": "random", "metric": metric}, "finished", runs
    )


def run(
    i: int, metric: float | None, state: str = "finished", name: str | None = None
) -> RunRecord:
    return RunRecord(f"r{i}", state, {}, metric, 1.0, name=name or f"sweep-{i}")


def pred(key: str, guess: int, truth: int) -> Prediction:
    return Prediction(id=key, key=key, guess=guess, truth=truth, scores=(0.1,) * 10, image=None)


def ids(records: list[RunRecord]) -> list[str]:
    return [r.id for r in records]


def keys(pairs: list[tuple[Prediction, Prediction]]) -> list[tuple[str, int, int]]:
    return [(a.key, a.guess, b.guess) for a, b in pairs]


# --- runs ---------------------------------------------------------------------------------


def test_ranked_puts_the_best_first_by_the_goal_and_leaves_out_runs_without_a_finite_metric():
    runs = [run(0, 0.5), run(1, 0.9), run(2, None), run(3, math.nan), run(4, 0.7, "failed")]
    runs += [run(5, math.inf), run(6, -math.inf), run(7, 0.1)]
    assert ids(views.ranked(sweep_of(runs, "maximize"))) == ["r1", "r4", "r0", "r7"]
    assert ids(views.ranked(sweep_of(runs, "minimize"))) == ["r7", "r0", "r4", "r1"]
    assert ids(views.ranked(sweep_of(runs, None))) == ["r7", "r0", "r4", "r1"]  # W&B's default


def test_ranked_keeps_the_sweeps_order_between_equal_metrics():
    runs = [run(0, 1.0), run(1, 2.0), run(2, 1.0), run(3, 2.0)]
    assert ids(views.ranked(sweep_of(runs, "maximize"))) == ["r1", "r3", "r0", "r2"]
    assert ids(views.ranked(sweep_of(runs, "minimize"))) == ["r0", "r2", "r1", "r3"]


def test_the_pair_compared_defaults_to_the_best_and_the_worst_finished_run():
    runs = [run(0, 80.0), run(1, 95.0), run(2, 99.0, "failed"), run(3, 60.0), run(4, None)]
    info = sweep_of(runs)
    a, b = selections.pick_pair(info, views.ranked(info), None)
    assert (a.id, b.id) == ("r1", "r3")  # the failed run (99) is not finished
    two = sweep_of([run(0, 1.0), run(1, 2.0, "crashed"), run(2, 3.0)])
    assert ids(selections.pick_pair(two, views.ranked(two), None)) == ["r2", "r0"]
    one = sweep_of([run(0, 1.0), run(1, 2.0, "crashed")])
    assert selections.pick_pair(one, views.ranked(one), None) is None


def test_the_pair_compared_can_be_named_by_id_or_name_even_unranked():
    runs = [run(0, 80.0), run(1, 95.0), run(2, None, "failed")]
    info = sweep_of(runs)
    ranked = views.ranked(info)
    assert ids(selections.pick_pair(info, ranked, ("sweep-2", "r0"))) == ["r2", "r0"]
    assert ids(selections.pick_pair(info, ranked, ("r1", "sweep-1"))) == ["r1", "r1"]


def test_a_run_id_wins_over_another_runs_name_that_spells_it():
    runs = [run(0, 1.0), run(1, 2.0, name="r0")]
    info = sweep_of(runs)
    assert ids(selections.pick_pair(info, [], ("r0", "r1"))) == ["r0", "r1"]


def test_unknown_runs_named_for_the_pair_are_all_listed_with_the_sweeps_runs():
    info = sweep_of([run(0, 1.0), run(1, 2.0)])
    with pytest.raises(selections.UnknownRunError) as caught:
        selections.pick_pair(info, [], ("r8", "r9"))
    assert str(caught.value) == "--compare: no run r8, r9 in sweep local-test (its runs: r0, r1)"
    with pytest.raises(selections.UnknownRunError, match=r"^--compare: no run r9 in"):
        selections.pick_pair(info, [], ("r0", "r9"))
    with pytest.raises(selections.UnknownRunError, match=r"\(its runs: none\)$"):
        selections.pick_pair(sweep_of([]), [], ("a", "b"))


def test_the_run_with_epochs_is_the_best_one_whose_table_was_logged_twice():
    runs = [run(0, 0.9), run(1, 0.8), run(2, 0.7)]
    twice = RunDetails([], prediction_epochs=[table([("a", 1, 1)]), table([("a", 2, 1)])])
    once = RunDetails([], prediction_epochs=[table([("a", 1, 1)])])
    other = RunDetails([], prediction_epochs=[table([("b", 1, 1)])] * 3)
    found = selections.run_with_epochs(runs, {"r0": once, "r1": twice, "r2": other})
    assert found is not None and found[0].id == "r1"
    assert [[p.guess for p in t] for t in found[1]] == [[1], [2]]
    assert selections.run_with_epochs(runs, {"r0": once}) is None
    assert selections.run_with_epochs([], {"r1": twice}) is None


# --- images ---------------------------------------------------------------------------------


def test_wrong_and_by_guess_take_only_misclassified_images_grouped_by_guess_ascending():
    rows = [pred("a", 7, 1), pred("b", 2, 2), pred("c", 3, 8), pred("d", 7, 9), pred("e", 0, 6)]
    assert [p.key for p in selections.wrong(rows)] == ["a", "c", "d", "e"]
    groups = selections.by_guess(rows)
    assert list(groups) == [0, 3, 7]
    assert {g: [p.key for p in ps] for g, ps in groups.items()} == {
        0: ["e"],
        3: ["c"],
        7: ["a", "d"],
    }
    assert selections.by_guess([pred("a", 1, 1)]) == {} and selections.wrong([]) == []


def test_changed_pairs_the_shared_images_whose_guess_differs_in_the_first_tables_order():
    before = [
        pred("a", 1, 1),
        pred("b", 2, 3),
        pred("c", 4, 4),
        pred("gone", 5, 5),
        pred("d", 6, 6),
    ]
    after = [pred("d", 0, 6), pred("c", 4, 4), pred("b", 3, 3), pred("a", 9, 1), pred("new", 1, 1)]
    pairs, shared = selections.changed(before, after)
    assert keys(pairs) == [("a", 1, 9), ("b", 2, 3), ("d", 6, 0)]
    assert shared == 4  # "gone" and "new" are in one table only
    assert selections.changed(before, []) == ([], 0)


def test_still_wrong_takes_images_wrong_at_both_ends_in_the_last_tables_order():
    first = [pred("a", 1, 2), pred("b", 3, 4), pred("c", 5, 5), pred("d", 6, 7), pred("e", 1, 2)]
    last = [pred("d", 0, 7), pred("c", 4, 5), pred("b", 4, 4), pred("a", 1, 2), pred("f", 1, 2)]
    stuck = selections.still_wrong(first, last)
    # d and a: wrong twice (d's guess moved); c: right then wrong; b: wrong then right; e, f: one end
    assert keys(stuck) == [("d", 6, 0), ("a", 1, 1)]
    assert [(a.truth, b.truth) for a, b in stuck] == [(7, 7), (2, 2)]


def test_errors_per_epoch_prefer_the_whole_test_set_to_the_table():
    tables = [table([("a", 1, 2), ("b", 3, 3)]), table([("a", 2, 2), ("b", 0, 3)]), table([])]
    history = [{"loss": 1.0}, {"test_errors": 40.0}, {"loss": 0.5}, {"test_errors": 12}]
    assert selections.errors_per_epoch(RunDetails(history, prediction_epochs=tables)) == (
        [40, 12],
        "whole test set",
    )
    assert selections.errors_per_epoch(RunDetails([{"loss": 1.0}], prediction_epochs=tables)) == (
        [1, 1, 0],
        "in the prediction table",
    )
    assert selections.errors_per_epoch(RunDetails([{"loss": 1.0}])) == ([], "")
    assert selections.errors_per_epoch(None) == ([], "")


# --- the prediction table read as rows ----------------------------------------------------


def table(rows: list[tuple[str, int, int]], files: dict[str, Path] | None = None) -> LoggedTable:
    """A prediction table as sweepkit.train logs it: the image cell names its file and sha256."""
    data = [
        [key, {"_type": "image-file", "path": f"media/{key}.png", "sha256": f"sha-{key}"}, g, t]
        + [d / 10 for d in range(10)]
        for key, g, t in rows
    ]
    return LoggedTable(list(NEEDED), data, files or {})


def test_rows_read_the_seeds_columns_and_key_images_by_their_sha256():
    png = Path("/elsewhere/a.png")
    rows = predictions.rows(table([("7", 3, 5), ("8", 1, 1)], {"media/7.png": png}))
    assert rows is not None and len(rows) == 2
    first = rows[0]
    assert (first.id, first.key, first.guess, first.truth) == ("7", "sha-7", 3, 5)
    assert first.scores == tuple(d / 10 for d in range(10)) and first.wrong
    assert first.image == png and rows[1].image is None and not rows[1].wrong
    assert isinstance(first.guess, int) and isinstance(first.scores[0], float)


def test_rows_key_an_image_by_its_id_when_its_cell_has_no_sha256():
    logged = table([("7", 3, 5)])
    logged.data[0][1] = {"_type": "image-file", "path": "media/7.png"}
    logged.data.append(["9", "not an image cell", "2", "2"] + ["0.5"] * 10)
    rows = predictions.rows(logged)
    assert rows is not None
    assert [(p.id, p.key, p.guess, p.image) for p in rows] == [
        ("7", "7", 3, None),
        ("9", "9", 2, None),
    ]
    assert rows[1].scores == (0.5,) * 10


def test_a_table_without_the_seeds_columns_is_not_a_prediction_table():
    assert predictions.rows(None) is None
    assert predictions.rows(LoggedTable(NEEDED[:-1], [], {})) is None  # no score_9
    extra = predictions.rows(LoggedTable(["note", *NEEDED], [], {}))
    assert extra == []  # more columns are fine
    details = RunDetails(
        [], prediction_epochs=[LoggedTable(["x"], [[1]], {}), table([("a", 1, 1)])]
    )
    assert [[p.key for p in t] for t in predictions.epochs(details)] == [["sha-a"]]
    assert predictions.epochs(None) == []


def test_rows_match_columns_by_name_not_by_position():
    columns = ["truth", "guess", "image", "id", *reversed(NEEDED[4:])]
    data = [[5, 3, {"sha256": "s"}, "7", *reversed([d / 10 for d in range(10)])]]
    rows = predictions.rows(LoggedTable(columns, data, {}))
    assert rows is not None
    assert (rows[0].id, rows[0].key, rows[0].guess, rows[0].truth) == ("7", "s", 3, 5)
    assert rows[0].scores == tuple(d / 10 for d in range(10))
