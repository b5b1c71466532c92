"""The reaper: a run whose agent died (no heartbeat for the crash grace) is ended here.

A free function over a store, run before every claim, while an agent waits and when a
sweep is stopped or canceled (Optuna's `fail_stale_trials`). Before calling a run crashed
it reads the run's own log: a run that finished (its agent died between the run's exit
and recording it) is recorded finished with its metric, not run again. It tolerates losing
the race: an agent that beats again meanwhile, or another reaper, wins (the store writes
the end only while the run is running with a stale heartbeat).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from sweepkit.backends.store.base import Store
from sweepkit.core.lifecycle import CRASH_GRACE_S, Ending, RunState
from sweepkit.core.records import MetricProgress
from sweepkit.follow import RunFollower


@dataclasses.dataclass(frozen=True)
class LostRun:
    """How the reaper records a run whose agent died, and what its log held."""

    ending: Ending
    progress: MetricProgress | None  # what its log holds of the metric, if it could be read
    run_dir: str | None


def judge_lost_run(
    wandb_dir: str | None, run_id: str, metric: str | None, goal: str, grace_s: float
) -> LostRun:
    """Read a run whose heartbeat stopped: finished if its log has a clean exit, else crashed.

    The run's folder is looked for under `wandb_dir` (its agent's; on another
    machine it may not be there: then the run is crashed). A non-zero exit
    counts as a crash too: a run dies (SIGTERM from its dying agent) when its
    agent does, and its config deserves another try.
    """
    crashed = Ending(RunState.CRASHED, f"no heartbeat for {grace_s:g} s: its agent died")
    if not wandb_dir or not Path(wandb_dir).is_dir():
        return LostRun(crashed, None, None)
    follower = RunFollower(wandb_dir, run_id, metric, goal)
    while follower.poll():
        pass
    run_dir = str(follower.run_file.parent) if follower.run_file else None
    progress = follower.metrics.progress() if metric else None
    if follower.metrics.exit_code == 0:
        return LostRun(Ending(RunState.FINISHED), progress, run_dir)
    return LostRun(crashed, progress, run_dir)


def reap(
    store: Store, sweep_id: str, crash_grace_s: float = CRASH_GRACE_S
) -> list[tuple[str, str]]:
    """Record the end of every run of the sweep whose agent died (no heartbeat for
    `crash_grace_s`).

    Each such run's own log decides (`judge_lost_run`). The log is read
    outside any transaction; the end is written only if the run is still
    running with a stale heartbeat.

    Returns:
        (run id, state recorded) of the runs reaped here.
    """
    cutoff = time.time() - crash_grace_s
    stale = store.stale_runs(sweep_id, cutoff)
    sweep = store.sweep(sweep_id) if stale else None
    if sweep is None:
        return []
    metric = sweep.config.get("metric") or {}
    reaped = []
    for run in stale:
        lost = judge_lost_run(
            run.wandb_dir, run.id, metric.get("name"), metric.get("goal", "minimize"),
            crash_grace_s,
        )  # fmt: skip
        if store.finish_run(
            sweep_id, run.id, state=lost.ending.state.value, progress=lost.progress, summary={},
            run_dir=lost.run_dir, error=lost.ending.reason, stale_before=cutoff,
        ):  # fmt: skip
            reaped.append((run.id, lost.ending.state.value))
    return reaped
