"""The report of a sweep of a user's own function: every chart, table and image it logged is
shown by the key it logged it under, and each view holds what was logged.

The function (`tests.sweep_functions.logs_its_own_views`) has a metric that is not `loss`,
`wandb.plot`'s confusion matrix and curves under keys of its own, `wandb.sklearn`'s confusion
matrix, a `wandb.Table` with images, and a list of captioned images. Its runs are real
offline wandb runs; what the report shows is checked against what was logged, cell by cell.
"""

from __future__ import annotations

import html
import json
import re
from collections import Counter

import pytest

from sweepkit.backends import backend_for_new_sweep
from sweepkit.report import write_report
from tests.helpers.browser import broken_images
from tests.sweep_functions import VIEW_CLASSES, VIEW_GUESS, VIEW_TRUTH

SWEEP = {
    "method": "grid",
    "metric": {"name": "val_acc", "goal": "maximize"},
    "parameters": {"x": {"values": [1.0, 2.0]}},
}


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """The report of a 2-run sweep of the function, and the sweep."""
    root = tmp_path_factory.mktemp("own-views")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("WANDB_DIR", str(root))
        mp.setenv("WANDB_DATA_DIR", str(root / "wandb-data"))
        backend = backend_for_new_sweep("local")
        sweep_id = backend.create(SWEEP)
        result = backend.agent(sweep_id, function="tests.sweep_functions:logs_its_own_views")
        assert (result.performed, result.failed) == (2, 0)
        report = write_report(backend, sweep_id, root / "report")
        return report, backend.sweep(sweep_id)


def part(text: str, anchor: str) -> str:
    start = text.index(f"<section id='{anchor}'>")
    return text[start : text.index("</section>", start)]


def chart_data(text: str, name: str) -> dict:
    found = re.search(rf"<script type='application/json' data-chart='{name}'>(.*?)</script>", text)
    assert found, f"no data of chart {name}"
    return json.loads(found.group(1))


def table_cells(fragment: str) -> list[list[str]]:
    """The rows of the first HTML table in `fragment`, each a list of its cells' text."""
    table = fragment[fragment.index("<table") : fragment.index("</table>")]
    rows = re.findall(r"<tr>(.*?)</tr>", table)
    return [[html.unescape(re.sub(r"<[^>]+>", "", c)) for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", r)]
            for r in rows]  # fmt: skip


def test_no_view_claims_that_something_was_not_logged(page):
    text = page[0].read_text()
    for claim in ("logged no confusion matrix", "logged no ROC or PR curve", "logged no table",
                  "logged no images", "could not be read"):  # fmt: skip
        assert claim not in text, claim


def test_each_confusion_matrix_is_shown_under_its_key_with_the_logged_counts(page):
    text = page[0].read_text()
    confusion = part(text, "confusion")
    expected = Counter(
        (VIEW_CLASSES[t], VIEW_CLASSES[g]) for t, g in zip(VIEW_TRUTH, VIEW_GUESS, strict=True)
    )
    order = sorted(VIEW_CLASSES)  # bird, cat, dog: the axes, actual down and predicted across
    want = [["actual \\ predicted", *order]] + [
        [actual, *(f"{expected[actual, predicted]:g}" for predicted in order)] for actual in order
    ]
    # wandb.plot.confusion_matrix under the function's key, and wandb.sklearn's under its own
    # (whose table labels its axes the other way round: read as y_true and y_pred meant).
    for key in ("eval_cm", "confusion_matrix"):
        assert f"<h3>{key}</h3>" in confusion
        assert table_cells(confusion[confusion.index(f"<h3>{key}</h3>") :]) == want


def test_the_curves_are_the_metric_and_what_the_runs_logged_not_loss(page):
    text = page[0].read_text()
    _, info = page
    curves = chart_data(text, "curves")
    assert list(curves) == ["val_acc", "train/err"]  # the metric first; no `loss` panel
    best = max(info.runs, key=lambda r: r.metric)
    # x=2.0 logged val_acc = 2.0 * (epoch + 1) / 10 at W&B's steps 0, 1, 2.
    assert curves["val_acc"][best.name] == [[0, 0.2], [1, 0.4], [2, 0.6]]
    assert curves["train/err"][best.name] == [[0, 1.0], [1, 0.75], [2, 0.5]]
    assert "Curves of the best 2 runs" in text


def test_roc_and_pr_curves_come_from_the_functions_own_keys(page):
    text = page[0].read_text()
    for kind, key in (("roc", "eval_roc"), ("pr", "eval_pr")):
        assert f"logged as {key}" in part(text, kind)
        data = chart_data(text, kind)
        assert len(data) == 2 and {d["key"] for d in data.values()} == {key}
        for run in data.values():
            assert set(run["classes"]) == set(VIEW_CLASSES)
            for xs, ys in run["classes"].values():
                assert xs == sorted(xs)  # each class's curve in x order
                if kind == "roc":  # a ROC curve runs from (0, 0) to (1, 1)
                    assert (xs[0], ys[0], xs[-1], ys[-1]) == (0.0, 0.0, 1.0, 1.0)


def test_the_functions_own_table_and_images_are_shown_with_their_columns_and_captions(page):
    text = page[0].read_text()
    tables = part(text, "tables")
    assert "<h3>worst_cases</h3>" in tables
    rows = table_cells(tables)
    wrong = [(i, VIEW_CLASSES[g], VIEW_CLASSES[t])
             for i, (g, t) in enumerate(zip(VIEW_GUESS, VIEW_TRUTH, strict=True)) if g != t]  # fmt: skip
    assert rows[0] == ["id", "guess", "truth", "image"]
    assert [tuple(r[:3]) for r in rows[1:]] == [(str(i), g, t) for i, g, t in wrong]
    assert tables.count("<img alt='image' src='data:image/png;base64,") == len(wrong)
    images = part(text, "images")
    assert "<h3>examples</h3>" in images
    assert [f"example {i}" in images for i in range(3)] == [True] * 3


def test_the_best_runs_table_names_runs_as_status_does(page):
    text = page[0].read_text()
    _, info = page
    for run in info.runs:
        assert f"<td>{run.name}</td><td>{run.id}</td>" in text


def test_every_image_of_the_page_decodes(page, tmp_path):
    images, broken = broken_images(page[0], tmp_path / "probe.html")
    assert images >= 9 and broken == 0
