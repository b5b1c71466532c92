"""A run's contents as the report's views take them (`RunDetails`): charts by kind with their
tables' columns named one way, whichever of W&B's functions logged them and under which key.

`wandb.plot.confusion_matrix` writes columns Actual, Predicted, nPredictions;
`wandb.sklearn.plot_confusion_matrix` writes Predicted, Actual, Count (swapped, see
`_FIELDS`); `wandb.plot.roc_curve`
names its columns in the chart's fields (x: fpr, y: tpr). Here each becomes the columns
`CHART_COLUMNS` names, so a view draws any of them the same way.
"""

from __future__ import annotations

from pathlib import Path

from sweepkit.backends.base import CHART_COLUMNS, RunDetails
from sweepkit.runlog import LoggedTable
from sweepkit.views.logged import Chart, RunContents, RunReader, TableVersion
from sweepkit.views.predictions import NEEDED

# For each kind: the chart field that names each of our columns, and the column to take when
# the chart has no fields (wandb.sklearn's charts name none). wandb.sklearn's confusion table
# (wandb 0.31, integration/sklearn/calculate/confusion_matrix.py) writes each of sklearn's
# rows, the true class, under "Predicted" and the columns, the predicted class, under
# "Actual": taken here as what they hold, as the user's y_true and y_pred meant them.
_FIELDS = {
    "confusion": [("Actual", "Predicted"), ("Predicted", "Actual"), ("nPredictions", "Count")],
    "roc": [("class", "class"), ("x", "fpr"), ("y", "tpr")],
    "pr": [("class", "class"), ("y", "precision"), ("x", "recall")],
}


def read_details(run_file: str | Path) -> RunDetails:
    """Everything a run's log holds, read to its end, as the report's views take it."""
    reader = RunReader(run_file)
    while reader.update():
        pass
    return details_of(reader.contents)


def details_of(contents: RunContents) -> RunDetails:
    """The report's view of a run's contents."""
    prediction_key = _prediction_table(contents)
    tables = contents.plain_tables()
    prediction_epochs = [
        loaded for v in tables.pop(prediction_key, []) if (loaded := _loaded(v)) is not None
    ]
    return RunDetails(
        contents.history(), prediction_epochs, _charts(contents), _last(tables), _images(contents)
    )


def latest_of(contents: RunContents) -> RunDetails:
    """What a live page shows of a run: its charts, the last version of each of its tables
    (a prediction table's too, under its key), its last images; neither its history rows nor
    earlier versions, so that what it costs does not grow with what the run logged before."""
    return RunDetails([], [], _charts(contents), _last(contents.plain_tables()), _images(contents))


def table_version(contents: RunContents, key: str, index: int) -> LoggedTable | None:
    """Version `index` of the table a run logged under `key` (0 the first, -1 the last), or
    None when it logged no such version or wandb's staging folder no longer holds it."""
    versions = contents.plain_tables().get(key, [])
    return _loaded(versions[index]) if -len(versions) <= index < len(versions) else None


def _charts(contents: RunContents) -> dict[str, list[tuple[str, LoggedTable]]]:
    charts: dict[str, list[tuple[str, LoggedTable]]] = {}
    for chart in contents.charts.values():
        if chart.kind in _FIELDS and (table := _chart_table(contents, chart)) is not None:
            charts.setdefault(chart.kind, []).append((chart.key, table))
    return charts


def _last(tables: dict[str, list[TableVersion]]) -> dict[str, LoggedTable]:
    return {key: loaded for key, versions in tables.items() if (loaded := _loaded(versions[-1]))}


def _images(contents: RunContents) -> dict[str, list[tuple[Path, str]]]:
    return {key: logged[-1][1] for key, logged in contents.images.items() if logged}


def _prediction_table(contents: RunContents) -> str | None:
    """The key of the run's prediction table (the seed's columns), sweepkit's own key first."""
    keys = sorted(contents.plain_tables(), key=lambda k: k != "test_predictions")
    for key in keys:
        loaded = _loaded(contents.tables[key][-1])
        if loaded is not None and set(NEEDED) <= set(loaded.columns):
            return key
    return None


def _loaded(version: TableVersion) -> LoggedTable | None:
    table = version.load()
    return None if table is None else LoggedTable(table[0], table[1], version.files)


def _chart_table(contents: RunContents, chart: Chart) -> LoggedTable | None:
    """The chart's table with its columns named as `CHART_COLUMNS[chart.kind]`, or None when
    its table is not on this machine or lacks a column."""
    versions = contents.tables.get(chart.table_key)
    loaded = _loaded(versions[-1]) if versions else None
    if loaded is None:
        return None
    index = {name: i for i, name in enumerate(loaded.columns)}
    picked = []
    for field, fallback in _FIELDS[chart.kind]:
        column = chart.fields.get(field, fallback)
        if column not in index:
            return None
        picked.append(index[column])
    rows = [[row[i] for i in picked] for row in loaded.data]
    return LoggedTable(list(CHART_COLUMNS[chart.kind]), rows, loaded.files)
