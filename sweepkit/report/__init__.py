"""`sweepkit report`: a sweep as one self-contained HTML page.

Everything comes from what the runs logged (their run folders for a local
sweep, the W&B API for a W&B sweep); nothing is re-run. One module per view:

    overview     the sweep at a glance, parameters against the metric, the metric run by
                 run, the best runs' curves, the best run's mistakes
    logged       what the best run logged, by key: confusion matrices, its tables, images
    importance   each parameter's correlation with the metric and random-forest importance
    roc_pr       ROC and precision-recall curves of the best runs
    over_time    the same images across a run's epochs; wrong guesses per epoch
    compare      two runs side by side (--compare RUN_A RUN_B)
    table        the prediction table, interactive (sort, filter, group; views/table.js)
    page         the HTML pieces they share; report.css
"""

from __future__ import annotations

import html
from pathlib import Path

from sweepkit.backends.base import Backend, RunDetails
from sweepkit.core.records import RunRecord, SweepInfo
from sweepkit.report import (
    compare,
    importance,
    logged,
    over_time,
    overview,
    roc_pr,
    selections,
    table,
)
from sweepkit.report.overview import TOP_RUNS
from sweepkit.report.page import asset, missing, section
from sweepkit.views import predictions
from sweepkit.views import sweep as views

__all__ = ["render", "write_report"]


def write_report(
    backend: Backend, sweep_id: str, out_dir: Path, compare_runs: tuple[str, str] | None = None
) -> Path:
    """Read the sweep and what its best runs logged; write ``out_dir/report.html``.

    Args:
        backend: where the sweep lives.
        sweep_id: the sweep.
        out_dir: created if missing.
        compare_runs: two run ids or names to show side by side; default: the best and the
            worst finished run.

    Raises:
        selections.UnknownRunError: a run in `compare_runs` is not in the sweep (nothing written).
    """
    info = backend.sweep(sweep_id)
    order = views.ranked(info)
    pair = selections.pick_pair(info, order, compare_runs)
    wanted = [r.id for r in order[:TOP_RUNS]] + [r.id for r in pair or ()]
    details = backend.run_details(sweep_id, list(dict.fromkeys(wanted)))
    out_dir.mkdir(parents=True, exist_ok=True)
    page = out_dir / "report.html"
    page.write_text(render(info, order, details, pair, named=compare_runs is not None))
    return page


def render(
    info: SweepInfo,
    order: list[RunRecord],
    details: dict[str, RunDetails],
    pair: tuple[RunRecord, RunRecord] | None = None,
    named: bool = False,
) -> str:
    """The whole page as HTML."""
    best = order[0] if order else None
    best_details = details.get(best.id) if best else None
    best_name = f"The best run ({best.name or best.id})" if best else "No run"
    top = order[:TOP_RUNS]
    sections = [
        overview.glance(info, best),
        section("Parameters against the metric", overview.parallel_coordinates(info)),
        section("Parameter importance", importance.view(info), "importance"),
        section("The metric, run by run", overview.metric_over_runs(info)),
        section(
            _best(len(top), "Curves of the best run", "Curves of the best {n} runs"),
            overview.elsewhere(details) + overview.curves(info, order, details),
            "curves",
        ),
        section(
            "Best run: confusion matrix", logged.confusions(best_details, best_name), "confusion"
        ),
        _curve_sections(top, details),
        _table_sections(info, order, details, pair, named),
        section("Best run: its own tables", logged.own_tables(best_details, best_name), "tables"),
        section("Best run: its images", logged.images(best_details, best_name), "images"),
    ]
    title = html.escape(f"sweep {info.label}")
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
        f"<style>{asset('report.css')}</style></head><body><h1>{title}</h1>"
        f"{''.join(sections)}</body></html>"
    )


def _best(n: int, one: str, many: str) -> str:
    return one if n == 1 else many.format(n=n)


def _curve_sections(top: list[RunRecord], details: dict[str, RunDetails]) -> str:
    if not any(details.get(r.id) and (details[r.id].roc or details[r.id].pr) for r in top):
        return section(
            "ROC and precision-recall curves",
            missing(
                "Left out: the best runs logged no ROC or PR curve (wandb.plot.roc_curve and "
                "pr_curve, or wandb.sklearn's, under any key)."
            ),
            "roc-pr",
        )
    return section(
        _best(len(top), "ROC curves of the best run", "ROC curves of the best {n} runs"),
        roc_pr.chart(top, details, "roc", TOP_RUNS),
        "roc",
    ) + section(
        _best(len(top), "Precision-recall curves of the best run",
              "Precision-recall curves of the best {n} runs"),
        roc_pr.chart(top, details, "pr", TOP_RUNS),
        "pr",
    )  # fmt: skip


def _table_sections(
    info: SweepInfo,
    order: list[RunRecord],
    details: dict[str, RunDetails],
    pair: tuple[RunRecord, RunRecord] | None,
    named: bool,
) -> str:
    """The views built on the prediction table, or one line saying why they are left out."""
    if not any(predictions.epochs(d) for d in details.values()):
        return section(
            "Predictions",
            missing(
                "Left out: no run read here logged a prediction table (test_predictions with the "
                "columns id, image, guess, truth, score_0..score_9, as sweepkit.train logs it), "
                "so the misclassified images, the images across time, the two runs side by side "
                "and the interactive table have nothing to show."
            ),
            "predictions",
        )
    top = order[:TOP_RUNS]
    best = details.get(order[0].id) if order else None
    return "".join(
        [
            section("Best run: misclassified test images", overview.mistakes(best), "mistakes"),
            section(
                "The same images across time",
                over_time.changed_guesses(order, details),
                "across-time",
            ),
            section("Top errors over time", over_time.errors_over_time(top, details), "errors"),
            section("Two runs side by side", compare.side_by_side(pair, details, named), "compare"),
            section("The prediction table", table.view(order, details), "table"),
        ]
    )
