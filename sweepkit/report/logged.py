"""What the best run logged, by the key it logged it under: its confusion matrices, its own
tables and its images, whatever wrote them (`wandb.plot`, `wandb.sklearn`, `wandb.Table`,
`wandb.Image`): the views W&B's app gives every key."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sweepkit.backends.base import RunDetails
from sweepkit.report.page import data_uri, digit, fmt, grid, missing

MAX_ROWS = 50  # rows of a run's own table shown (W&B's app pages them too)
MAX_IMAGES = 16  # images of one key shown


def confusions(details: RunDetails | None, run: str) -> str:
    """Every confusion matrix the run logged, each titled by its key: a heat map of counts,
    actual classes down, predicted across."""
    logged = details.charts.get("confusion", []) if details else []
    if not logged:
        return missing(f"{run} logged no confusion matrix.")
    return "".join(
        f"<h3>{html.escape(key)}</h3>{confusion_table(table.data)}" for key, table in logged
    )


def confusion_table(rows: Sequence[Sequence[Any]]) -> str:
    """A confusion matrix from ``(actual, predicted, count)`` rows, as an HTML table.

    >>> print(confusion_table([["b", "a", 1], ["a", "a", 3], ["b", "b", 2]]))  # doctest: +ELLIPSIS
    <table class='confusion'><tr><th>actual \\ predicted</th><th>a</th><th>b</th></tr><tr><th>a</th><td...>3</td><td...>0</td></tr><tr><th>b</th><td...>1</td><td...>2</td></tr></table>
    """
    classes = sorted({str(r[0]) for r in rows} | {str(r[1]) for r in rows}, key=_class_key)
    counts = {(a, p): 0.0 for a in classes for p in classes}
    for actual, predicted, n in rows:
        counts[str(actual), str(predicted)] += float(n or 0)
    top = max(counts.values(), default=0.0) or 1.0
    head = "".join(f"<th>{html.escape(c)}</th>" for c in classes)
    body = []
    for actual in classes:
        cells = []
        for predicted in classes:
            n = counts[actual, predicted]
            shade = n / top
            color = "#fff" if shade > 0.5 else "#000"
            cells.append(
                f"<td style='background:rgba(31,119,180,{shade:.2f});color:{color}'>{n:g}</td>"
            )
        body.append(f"<tr><th>{html.escape(actual)}</th>{''.join(cells)}</tr>")
    return (
        f"<table class='confusion'><tr><th>actual \\ predicted</th>{head}</tr>"
        f"{''.join(body)}</table>"
    )


def _class_key(name: str) -> tuple[int, Any]:
    return (0, int(name)) if name.isdigit() else (1, name)


def own_tables(details: RunDetails | None, run: str) -> str:
    """Every table the run logged of its own (`wandb.Table`), by key: its columns and its
    first rows, images inline."""
    tables = details.tables if details else {}
    if not tables:
        return missing(f"{run} logged no table of its own.")
    parts = []
    for key, table in sorted(tables.items()):
        rows = table.data[:MAX_ROWS]
        shown = f"{len(rows)} of {len(table.data)} rows" if len(table.data) > MAX_ROWS else ""
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{_cell(table, cell)}</td>" for cell in row) + "</tr>"
            for row in rows
        )
        parts.append(
            f"<h3>{html.escape(key)}</h3>"
            + (f"<p>{html.escape(shown)}</p>" if shown else "")
            + f"<table class='logged' data-key='{html.escape(key)}'><tr>{head}</tr>{body}</table>"
        )
    return "".join(parts)


def _cell(table: Any, cell: Any) -> str:
    image = table.image(cell)
    if image is not None:
        uri = data_uri(image)
        return f"<img alt='image' src='{uri}'>" if uri else "(image not on this machine)"
    return html.escape(fmt(cell))


def images(details: RunDetails | None, run: str) -> str:
    """The images the run logged last under each key (`wandb.Image`, a list of them)."""
    logged = details.images if details else {}
    if not logged:
        return missing(f"{run} logged no images.")
    parts = []
    for key, shown in sorted(logged.items()):
        figures = [
            digit(uri, caption or Path(path).name)
            for path, caption in shown[:MAX_IMAGES]
            if (uri := data_uri(Path(path))) is not None
        ]
        body = grid(figures) if figures else missing("Its image files are not on this machine.")
        parts.append(f"<h3>{html.escape(key)}</h3>{body}")
    return "".join(parts)
