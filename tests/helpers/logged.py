"""A run's metric as the agent reports it to the store, made from a list of logged values."""

from __future__ import annotations

from typing import Any

from sweepkit.core.records import MetricProgress, MetricTally


def logged(
    values: list[float], metric: str = "loss", summary: dict[str, Any] | None = None
) -> MetricProgress:
    """What a run that logged `values` reports (its summary: the last value, unless given)."""
    if summary is None:
        summary = {metric: values[-1]} if values else {}
    return MetricTally(metric).replay(values, summary)
