"""The pieces every view of the report is made of: sections, notes, charts and digits inlined.

The page is one self-contained HTML file: charts are matplotlib PNGs (Agg backend, no
display needed) and digits the run's own PNGs, both inlined as data URIs; the CSS and the
prediction table's script are package files read here and inlined too.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure


def asset(name: str) -> str:
    """A file shipped beside this module (report.css)."""
    return (resources.files("sweepkit.report") / name).read_text()


def section(title: str, body: str, anchor: str = "") -> str:
    """A titled part of the page; `anchor` gives it an id (the tests and links find it by)."""
    ident = f" id='{anchor}'" if anchor else ""
    return f"<section{ident}><h2>{html.escape(title)}</h2>{body}</section>"


def missing(what: str) -> str:
    """A line saying why a view shows nothing."""
    return f"<p class='missing'>{html.escape(what)}</p>"


def paragraph(text: str) -> str:
    return f"<p>{html.escape(text)}</p>"


def png(fig: Figure) -> str:
    """A matplotlib figure as an inlined <img> (the figure is closed)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode()
    return f"<img class='chart' alt='chart' src='data:image/png;base64,{data}'>"


def chart_data(name: str, data: Any) -> str:
    """What a chart draws, as JSON beside it: its panels, series and points, as they were
    logged (what a reader, a test or the dashboard takes instead of the picture's pixels)."""
    text = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    return f"<script type='application/json' data-chart='{html.escape(name)}'>{text}</script>"


def data_uri(path: Path | None) -> str | None:
    """A logged PNG as a data URI, or None when its file is not on this machine."""
    if path is None or not path.exists():
        return None
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def digit(uri: str, caption: str, extra: str = "") -> str:
    """One test image with its caption (and, say, score bars below it)."""
    text = html.escape(caption)
    return (
        f"<figure class='digit'><img alt='{text}' src='{uri}'>"
        f"<figcaption>{text}</figcaption>{extra}</figure>"
    )


def grid(figures: Sequence[str]) -> str:
    return f"<div class='digits'>{''.join(figures)}</div>"


def score_bars(scores: Sequence[float], label: str, css: str = "first") -> str:
    """Ten vertical bars, one per class, as tall as the softmax score (W&B's score histogram)."""
    bars = "".join(
        f"<span title='{d}: {s:.3f}' style='height:{max(1.0, 100 * s):.0f}%'></span>"
        for d, s in enumerate(scores)
    )
    return (
        f"<div class='bars {css}'><small>{html.escape(label)}</small>"
        f"<div class='cols'>{bars}</div></div>"
    )


def class_axis() -> str:
    """The digits 0-9 under a set of score bars."""
    return "<div class='axis'>" + "".join(f"<span>{d}</span>" for d in range(10)) + "</div>"


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def table(header: Sequence[str], rows: Sequence[Sequence[str]], css: str = "") -> str:
    """A plain HTML table of already formatted cells (escaped here)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    cls = f" class='{css}'" if css else ""
    return f"<table{cls}><tr>{head}</tr>{body}</table>"
