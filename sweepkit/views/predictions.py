"""A run's prediction table (the seed's `test_predictions`) read as typed rows.

Rows of two tables are matched by their image's sha256 (wandb records it in
every image cell): the same test image in two epochs of a run, or in two runs
whose ids differ (the seed's ids follow the test batch, so they depend on
`batch_size`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

SCORE_COLUMNS = [f"score_{d}" for d in range(10)]
NEEDED = ["id", "image", "guess", "truth", *SCORE_COLUMNS]


@dataclasses.dataclass(frozen=True)
class Prediction:
    """One row: which image, the model's guess, the truth and the ten softmax scores."""

    id: str
    key: str  # the image's sha256 (its id as a fallback): the same image in another table
    guess: int
    truth: int
    scores: tuple[float, ...]
    image: Path | None  # the image's PNG, if its file is on this machine

    @property
    def wrong(self) -> bool:
        return self.guess != self.truth


def rows(table: Any) -> list[Prediction] | None:
    """The table's rows, or None when it is not the seed's prediction table (other columns).

    Args:
        table: a `sweepkit.runlog.LoggedTable`, or None.
    """
    if table is None or not set(NEEDED) <= set(table.columns):
        return None
    col = {name: i for i, name in enumerate(table.columns)}
    result = []
    for row in table.data:
        cell = row[col["image"]]
        key = cell.get("sha256") if isinstance(cell, dict) else None
        result.append(
            Prediction(
                id=str(row[col["id"]]),
                key=key or str(row[col["id"]]),
                guess=int(row[col["guess"]]),
                truth=int(row[col["truth"]]),
                scores=tuple(float(row[col[c]]) for c in SCORE_COLUMNS),
                image=table.image(cell),
            )
        )
    return result


def epochs(details: Any) -> list[list[Prediction]]:
    """Every epoch's rows of a run's prediction table, in the order logged (empty if none)."""
    if details is None:
        return []
    parsed = [rows(t) for t in details.prediction_epochs]
    return [p for p in parsed if p is not None]


def by_key(predictions: list[Prediction]) -> dict[str, Prediction]:
    return {p.key: p for p in predictions}
