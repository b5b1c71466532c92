"""What a sweep and a run are, as every part of sweepkit reads them: one glossary.

- `StoredSweep`, `StoredRun`: a sweep and a run as the store keeps them (what `status`, the
  report, `sync` and the reaper read); `ScheduledRun`: the part of a run a claim reads
  (`sweepkit.core.scheduling`); `ClaimedRun`: a run handed to an agent.
- `MetricProgress`: the sweep metric as a run logged it so far, in what the scheduler
  needs (count, extremes, last, the run's value and the points not yet handed on);
  `MetricTally` keeps it from values, `metric_value` reads a run's value from its summary
  as W&B does.
- `SweepInfo`, `RunRecord`: a sweep and its runs as either backend hands them to `status`,
  the report and the live lines.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections import Counter
from typing import Any

from sweepkit.core.lifecycle import UNFINISHED


@dataclasses.dataclass(frozen=True)
class StoredSweep:
    """A sweep as the store keeps it."""

    id: str
    name: str | None
    project: str | None
    entity: str | None
    config: dict[str, Any]  # the sweep YAML
    state: str  # running, paused, stopped, canceled, finished
    created_at: float
    wandb_sweep: str | None = None  # the W&B sweep `sweepkit sync` last created from it

    @property
    def keeps_points(self) -> bool:
        """Whether its runs' first KEEP_POINTS metric points are kept (hyperband reads them)."""
        return "early_terminate" in self.config


@dataclasses.dataclass(frozen=True, slots=True)
class ScheduledRun:
    """What scheduling reads of a run: a claim loads this much of every run of the sweep, and
    no more (no metric history, no error text).

    `config` is parsed when read: only grid and bayes need the past runs' configs.
    """

    id: str  # the wandb run id
    state: str  # a sweepkit.core.lifecycle.RunState value
    config_json: str  # {"name": {"value": v}}, as the engine suggested it
    attempt: int  # 2+: the same config again, after a crash or a preemption
    retry_of: str | None  # the run whose point this one runs again
    ended_at: float | None
    metric_count: int  # points of the sweep metric logged
    metric_min: float | None
    metric_max: float | None
    metric_last: float | None
    metric_value: float | None  # the run's metric as W&B uses it (its summary)

    @property
    def config(self) -> dict[str, Any]:
        return json.loads(self.config_json)


@dataclasses.dataclass(frozen=True, slots=True)
class StoredRun(ScheduledRun):
    """A run as the store keeps it: what `status`, the report, `sync` and the reaper read."""

    name: str | None  # its readable name (wandb's run.name), e.g. quick-grid-3
    created_at: float
    heartbeat_at: float
    log_file: str | None  # where its agent sent its output
    wandb_dir: str | None  # its agent's WANDB_DIR: where the reaper looks for its folder
    agent: str | None  # the label of the agent that ran it
    host: str | None  # the machine it ran on
    run_dir: str | None  # its wandb run folder (on `host`)
    error: str | None
    summary_json: str  # its summary entry for the sweep metric
    synced_at: float | None  # when `sweepkit sync` uploaded its folder

    @property
    def summary(self) -> dict[str, Any]:
        return json.loads(self.summary_json)


@dataclasses.dataclass(frozen=True)
class ClaimedRun:
    """A run handed to an agent."""

    id: str  # the wandb run id
    display_name: str  # its readable name, as W&B's agent gives one: <sweep name>-<n>
    config: dict[str, Any]  # {"name": {"value": v}}, as the engine suggested it
    log_file: str | None  # where its output goes, if the agent asked for a file


@dataclasses.dataclass(frozen=True)
class MetricProgress:
    """The sweep metric as a run has logged it so far: what the scheduler needs, not every point."""

    count: int  # points logged
    minimum: float | None
    maximum: float | None
    last: float | None
    value: float | None  # the run's metric as W&B uses it: its summary (see `metric_value`)
    new_points: list[float]  # the points logged since the previous report, in order


class MetricTally:
    """The sweep metric of one run, kept from its values as they come: count, extremes, last,
    and the points not yet handed on (memory that does not grow with the run)."""

    def __init__(self, metric: str | None, goal: str = "minimize") -> None:
        self.metric = metric
        self.goal = goal
        self.dropped = 0  # values of the metric that were not finite numbers (NaN, inf, text)
        self._count = 0
        self._min: float | None = None
        self._max: float | None = None
        self._last: float | None = None
        self._new: list[float] = []

    def add_value(self, value: float | None) -> None:
        """One logged value of the metric (None: it was no finite number)."""
        if value is None:
            self.dropped += 1
            return
        self._count += 1
        self._last = value
        self._min = value if self._min is None else min(self._min, value)
        self._max = value if self._max is None else max(self._max, value)
        self._new.append(value)

    def replay(self, values: list[Any], summary: dict[str, Any]) -> MetricProgress:
        """The progress of a run known only by its metric's values and its summary.

        >>> MetricTally("loss").replay([3, 1, "x", 2], {"loss": 2})
        MetricProgress(count=3, minimum=1.0, maximum=3.0, last=2.0, value=2.0, new_points=[3.0, 1.0, 2.0])
        """
        for value in values:
            self.add_value(finite(value))
        return self.progress_with(summary)

    def progress_with(self, summary: dict[str, Any]) -> MetricProgress:
        """The metric so far, with the run's summary; the new points are handed on once."""
        new, self._new = self._new, []
        value = None
        if self.metric is not None:
            # The summary decides (a NaN there is no value, as on W&B); a run stopped before
            # any summary of the metric was written still has its last point.
            value = metric_value(summary, self.metric, self.goal) if summary else self._last
        return MetricProgress(self._count, self._min, self._max, self._last, value, new)


def metric_value(summary: dict[str, Any], name: str, goal: str = "minimize") -> float | None:
    """The sweep metric of a run as W&B reads it: the run's summary.

    The summary honours ``run.summary[name] = v`` and ``define_metric(name,
    summary="max"|"min"|"last"|...)``, which stores ``{"max": v}``: the
    aggregate that matches the goal is taken, else ``last``. A name with dots
    reaches into nested values (``val.acc``, ``val_acc.max``).

    >>> metric_value({"acc": 0.9}, "acc")
    0.9
    >>> metric_value({"val_acc": {"max": 0.9, "last": 0.1}}, "val_acc", "maximize")
    0.9
    >>> metric_value({"val_acc": {"max": 0.9}}, "val_acc.max")
    0.9
    """
    value: Any = summary.get(name)
    if value is None and "." in name:
        value = summary
        for part in name.split("."):
            value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, dict):
        preferred = ("max", "last") if goal == "maximize" else ("min", "last")
        value = next((value[k] for k in preferred if k in value), None)
    return finite(value)


def finite(value: Any) -> float | None:
    """A finite number, or None for anything else (NaN, text, dicts, booleans)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


@dataclasses.dataclass(frozen=True)
class RunRecord:
    """One run of a sweep, as `sweepkit status` shows it."""

    id: str
    state: str  # running, finished, failed, crashed, killed, stopped
    config: dict[str, Any]  # plain values: {"lr": 0.01}
    metric: float | None  # the sweep metric's final value, None if not logged
    runtime: float | None  # seconds
    location: str | None = None  # the run folder (local) or the run's URL (W&B)
    name: str | None = None  # the run's readable name (wandb's run.name)
    error: str | None = None  # why it failed, crashed or was stopped (a traceback, an exit code)
    log_file: str | None = None  # where the agent sent its output
    agent: str | None = None  # the label of the agent that ran it (a worker: "w0 gpu0")
    host: str | None = None  # the machine it ran on
    retry_of: str | None = None  # the run whose point this one runs again (after a crash)

    @property
    def error_line(self) -> str:
        """The last line of the error: for a traceback, the exception itself."""
        lines = (self.error or "").strip().splitlines()
        return lines[-1] if lines else ""


@dataclasses.dataclass(frozen=True)
class SweepInfo:
    """A sweep's config, state and runs, from either backend."""

    id: str
    backend: str  # "local" or "wandb"
    config: dict[str, Any]
    state: str
    runs: list[RunRecord]
    name: str | None = None  # the sweep's name (--name, or the YAML's `name:`)

    @property
    def label(self) -> str:
        """``name (id)``, or the id of a sweep with no name."""
        return f"{self.name} ({self.id})" if self.name else self.id

    @property
    def metric_name(self) -> str | None:
        return (self.config.get("metric") or {}).get("name")

    @property
    def maximize(self) -> bool:
        return (self.config.get("metric") or {}).get("goal", "minimize") == "maximize"

    def best(self) -> RunRecord | None:
        """The run with the best finite metric by the sweep's goal (None without a metric)."""
        scored = [r for r in self.runs if r.metric is not None and math.isfinite(r.metric)]
        if not scored:
            return None
        pick = max if self.maximize else min
        return pick(scored, key=lambda r: r.metric)  # type: ignore[arg-type, return-value]

    def counts(self) -> dict[str, int]:
        return dict(Counter(r.state for r in self.runs))

    def unfinished(self) -> dict[str, int]:
        """Points left without a result that no later run repeats: {"failed": n, "crashed": m}."""
        retried = {r.retry_of for r in self.runs if r.retry_of}
        return dict(
            Counter(r.state for r in self.runs if r.state in UNFINISHED and r.id not in retried)
        )
