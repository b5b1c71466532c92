"""The one interface both backends implement, and the records they hand back.

Contract (tested over both backends by tests/backends/test_contract.py):

- `create(config, ...)` registers a validated sweep config and returns its id.
  Ids name their backend unambiguously: local ids start with ``local-``, anything
  else is a W&B sweep id (``ID`` or ``entity/project/ID``).
- `agent(sweep_id, function=..., count=...)` performs runs of the sweep until the
  sweep has no more runs to give or `count` runs have ended, and returns an
  `AgentResult` (runs performed, runs failed). `function` is a
  ``module:attr`` reference to a callable following W&B's function-agent
  contract (it calls `wandb.init` and reads `wandb.config`); None means the
  sweep's `program`, or sweepkit's own train function when it has none.
- `sweep(sweep_id)` returns the sweep's config, state and runs.
- `control(sweep_id, stop|cancel|pause|resume)` changes what the sweep hands
  out; agents notice within seconds.
- An unknown id raises `UnknownSweepError`; nothing is changed by a failed call.
"""

from __future__ import annotations

import abc
import dataclasses
from pathlib import Path
from typing import Any

from sweepkit.core.lifecycle import CRASH_GRACE_S, MAX_RETRIES
from sweepkit.core.records import SweepInfo
from sweepkit.errors import SweepkitError

DEFAULT_FUNCTION = "sweepkit.train:train"


class UnknownSweepError(SweepkitError):
    """No sweep with that id in the backend the id names."""


@dataclasses.dataclass
class AgentResult:
    """What an agent did: runs performed, runs that failed, and whether it was interrupted."""

    performed: int = 0
    failed: int = 0
    interrupted: bool = False
    preempted: bool = False  # it got SIGTERM
    preempted_run: str | None = None  # the run going then, recorded preempted
    gave_up: str | None = None  # why the agent stopped early (too many failures in a row)
    # Points of the sweep left without a result when it ended ({"failed": n, "crashed": m}:
    # crashed past their retries, which keep the sweep from finishing).
    unfinished: dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        """143 after SIGTERM, 130 after Ctrl-C; 1 if any run failed or a point was lost; else 0."""
        if self.preempted:
            return 143
        if self.interrupted:
            return 130
        return 1 if self.failed or self.gave_up or self.unfinished.get("crashed") else 0


@dataclasses.dataclass(frozen=True)
class AgentOptions:
    """How patient an agent is: with failing runs, hanging runs, and agents that died."""

    label: str = ""  # prefixes the agent's lines: a worker's name and GPU
    log_dir: Path | None = None  # each run's output to log_dir/<run id>.log instead of the terminal
    max_failures: int = 5  # consecutive failed runs after which the agent gives up
    run_timeout_s: float | None = None  # a run still going after this long is stopped and failed
    crash_grace_s: float = CRASH_GRACE_S  # no heartbeat for this long: the run's agent died
    max_retries: int = MAX_RETRIES  # times a crashed run's config is offered again
    retry_failed: bool = False  # also offer again the points that failed or crashed for good


@dataclasses.dataclass(frozen=True)
class RunDetails:
    """What one run logged, for `sweepkit report`: its scalars per step, every W&B chart by
    kind under the key it was logged with, its prediction table's versions, its own tables
    and images (`sweepkit.views.details` reads them from a run's log)."""

    history: list[dict[str, float]]
    # Every version of its prediction table (the seed's columns, under any key), in the order
    # logged: one per epoch for sweepkit's trainer.
    prediction_epochs: list[Any] = dataclasses.field(default_factory=list)
    # W&B charts by kind ("confusion", "roc", "pr"): (the key it was logged under, its table as
    # a `sweepkit.runlog.LoggedTable`, columns named as in CHART_COLUMNS).
    charts: dict[str, list[tuple[str, Any]]] = dataclasses.field(default_factory=dict)
    tables: dict[str, Any] = dataclasses.field(default_factory=dict)  # its own: key -> last version
    # key -> the images last logged under it: (file, caption)
    images: dict[str, list[tuple[Path, str]]] = dataclasses.field(default_factory=dict)
    # The machine holding the run's folder, when this one cannot see it: then `history` is
    # only what the store kept of the metric (sweeps with early_terminate), and no tables.
    elsewhere: str | None = None

    @property
    def predictions(self) -> Any:
        """The prediction table's last version, or None."""
        return self.prediction_epochs[-1] if self.prediction_epochs else None

    @property
    def confusion(self) -> Any:
        return self._first("confusion")

    @property
    def roc(self) -> Any:
        return self._first("roc")

    @property
    def pr(self) -> Any:
        return self._first("pr")

    def _first(self, kind: str) -> Any:
        logged = self.charts.get(kind)
        return logged[0][1] if logged else None

    @classmethod
    def from_tables(
        cls, history: list[dict[str, float]], tables: dict[str, list[Any]]
    ) -> RunDetails:
        """Build from every version of each table logged under sweepkit's trainer's keys
        (`TABLE_KEYS`: what the W&B backend downloads)."""
        charts = {
            kind: [(key, versions[-1])]
            for kind, key in CHART_KEYS.items()
            if (versions := tables.get(key))
        }
        return cls(history, list(tables.get("test_predictions") or []), charts)


# The tables of sweepkit's trainer, by the keys it logs them under; on the local backend any
# run's tables and charts are read by what they are, whatever their keys.
TABLE_KEYS = ["test_predictions", "confusion_matrix_table", "roc_curve_table", "pr_curve_table"]
CHART_KEYS = {
    "confusion": "confusion_matrix_table",
    "roc": "roc_curve_table",
    "pr": "pr_curve_table",
}
# The columns of each chart kind's table, as `RunDetails.charts` holds them.
CHART_COLUMNS = {
    "confusion": ["Actual", "Predicted", "nPredictions"],
    "roc": ["class", "fpr", "tpr"],
    "pr": ["class", "precision", "recall"],
}


class Backend(abc.ABC):
    """Where sweep state lives and who picks the next run."""

    name: str

    @abc.abstractmethod
    def create(
        self,
        config: dict[str, Any],
        *,
        project: str | None = None,
        entity: str | None = None,
        name: str | None = None,
    ) -> str:
        """Register a validated sweep config; return the new sweep's id."""

    @abc.abstractmethod
    def agent(
        self,
        sweep_id: str,
        *,
        function: str | None = None,
        count: int | None = None,
        options: AgentOptions | None = None,
    ) -> AgentResult:
        """Perform runs of the sweep; say how many, and how many failed."""

    @abc.abstractmethod
    def sweep(self, sweep_id: str) -> SweepInfo:
        """The sweep's config, state and runs."""

    @abc.abstractmethod
    def run_details(self, sweep_id: str, run_ids: list[str]) -> dict[str, RunDetails]:
        """History and tables of some runs of the sweep, read from what they logged."""

    @abc.abstractmethod
    def control(self, sweep_id: str, command: str, *, crash_grace_s: float = CRASH_GRACE_S) -> str:
        """stop (no new runs, running ones finish), cancel (running ones are killed too),
        pause / resume (hand out runs or not). Returns the sweep's new state. The local
        backend also reaps the runs whose agents died (no heartbeat for `crash_grace_s`)."""
