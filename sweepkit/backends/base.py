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
- An unknown id raises `UnknownSweepError`; nothing is changed by a failed call.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from collections import Counter
from pathlib import Path
from typing import Any

from sweepkit.errors import SweepkitError

DEFAULT_FUNCTION = "sweepkit.train:train"


class UnknownSweepError(SweepkitError):
    """No sweep with that id in the backend the id names."""


@dataclasses.dataclass(frozen=True)
class RunRecord:
    """One run of a sweep, as `sweepkit status` shows it."""

    id: str
    state: str  # running, finished, failed, crashed, killed, stopped
    config: dict[str, Any]  # plain values: {"lr": 0.01}
    metric: float | None  # the sweep metric's final value, None if not logged
    runtime: float | None  # seconds
    location: str | None = None  # the run folder (local) or the run's URL (W&B)


@dataclasses.dataclass(frozen=True)
class SweepInfo:
    """A sweep's config, state and runs, from either backend."""

    id: str
    backend: str  # "local" or "wandb"
    config: dict[str, Any]
    state: str
    runs: list[RunRecord]

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


@dataclasses.dataclass
class AgentResult:
    """What an agent did: runs performed, runs that failed, and whether it was interrupted."""

    performed: int = 0
    failed: int = 0
    interrupted: bool = False

    @property
    def exit_code(self) -> int:
        """130 after Ctrl-C, 1 if any run failed, else 0."""
        return 130 if self.interrupted else (1 if self.failed else 0)


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
        label: str = "",
        log_dir: Path | None = None,
    ) -> AgentResult:
        """Perform runs of the sweep; say how many, and how many failed.

        `label` prefixes the agent's lines (a worker's name and GPU); with
        `log_dir`, run output goes to files there instead of the terminal.
        """

    @abc.abstractmethod
    def sweep(self, sweep_id: str) -> SweepInfo:
        """The sweep's config, state and runs."""
