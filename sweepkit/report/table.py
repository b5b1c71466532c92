"""The prediction table itself, interactive in the page: sort by any column, filter (wrong
guesses only, one truth, one guess), group by guess or truth, the image in each row
(W&B Tables' sort/filter/group, offline).

Python writes the rows as JSON into the page; `sweepkit/views/table.js` (a package file,
inlined: no network, no CDN; the dashboard draws its tables with it too) draws and redraws
the table from them.
"""

from __future__ import annotations

import json

from sweepkit.backends.base import RunDetails
from sweepkit.core.records import RunRecord
from sweepkit.report.page import data_uri, missing, paragraph
from sweepkit.views import predictions, table_script
from sweepkit.views.predictions import SCORE_COLUMNS


def view(ranked: list[RunRecord], details: dict[str, RunDetails]) -> str:
    """The best run's prediction table at its last epoch, or a line saying why there is none."""
    for run in ranked:
        rows = predictions.rows(details[run.id].predictions) if run.id in details else None
        if rows:
            break
    else:
        return missing("No run logged a prediction table.")
    epochs = len(predictions.epochs(details[run.id]))
    images: list[str] = []  # each image once; rows point at it by index
    index: dict[str, int] = {}
    data = []
    for p in rows:
        uri = data_uri(p.image)
        if uri is not None and p.key not in index:
            index[p.key] = len(images)
            images.append(uri)
        image = {"image": index[p.key]} if p.key in index else None
        data.append([p.id, image, p.guess, p.truth, *p.scores])
    payload = {"columns": ["id", "image", "guess", "truth", *SCORE_COLUMNS], "rows": data}
    payload["images"] = images
    # "</" inside a <script> would end it early; JSON allows the escaped form.
    text = json.dumps(payload, separators=(",", ":")).replace("</", "<\\/")
    intro = paragraph(
        f"Run {run.id} (the best run with a table), epoch {epochs}: {len(rows)} test images. "
        "Click a column to sort; filter and group with the controls."
    )
    return (
        f"{intro}<div class='ptable' id='prediction-table'></div>"
        f"<script type='application/json' id='prediction-data'>{text}</script>"
        f"<script>{table_script()}</script>"
        "<script>sweepkitTable(document.getElementById('prediction-table'),"
        " JSON.parse(document.getElementById('prediction-data').textContent))</script>"
    )
