"""A run's life: the states it can be in, the moves between them, and the reaper.

One home for what a run can be and become, as the `sweeps` engine has
`RunState` and Optuna `TrialState` with one guard every storage calls. A run
is `running` from its claim until exactly one end is recorded, by its agent or
by the reaper, whichever comes first; an end is final. The store writes a
run's state only through `check_move`.

The reaper is a named step, run before every claim, while an agent waits, and
when a sweep is stopped or canceled (Optuna's `fail_stale_trials`): a run whose
heartbeat is older than the crash grace has lost its agent. Before calling it
crashed, the reaper reads the run's own log: a run that finished (its agent
died between the run's exit and recording it) is recorded finished with its
metric, not run again.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

from sweepkit.follow import MetricProgress, RunFollower


class RunState(str, enum.Enum):
    """What became of a run. The values are what the store and `status` show."""

    RUNNING = "running"
    FINISHED = "finished"  # the function returned / the program exited 0
    FAILED = "failed"  # it raised, exited non-zero or timed out
    CRASHED = "crashed"  # its agent died (no heartbeat): its config is offered again
    PREEMPTED = "preempted"  # its agent got SIGTERM (SLURM, docker stop, timeout): offered again
    KILLED = "killed"  # ended on purpose: Ctrl-C twice, the sweep canceled
    STOPPED = "stopped"  # ended early by the sweep's rule (hyperband)

    def __str__(self) -> str:
        return self.value


TERMINAL = frozenset(RunState) - {RunState.RUNNING}
# Ends whose exact config is offered again before anything new: a crash up to --retries
# times; a preemption always (it is not the run's fault, as W&B requeues a preempted run).
OFFERED_AGAIN = frozenset({RunState.CRASHED, RunState.PREEMPTED})
# What the `sweeps` engine calls each state (it knows no "stopped": a run ended early).
ENGINE_STATE = {
    **{state: state.value for state in RunState},
    RunState.STOPPED: "killed",
}


class InvalidMove(ValueError):
    """A state write that a run's life does not allow (e.g. ending a run twice)."""


def check_move(old: str, new: str) -> None:
    """Raise InvalidMove unless a run in state `old` may move to `new`: only a running run
    ends, and only into a terminal state.

    >>> check_move("running", "finished")
    >>> check_move("crashed", "finished")
    Traceback (most recent call last):
    ...
    sweepkit.lifecycle.InvalidMove: a crashed run cannot become finished: its end is recorded
    """
    if RunState(new) not in TERMINAL:
        raise InvalidMove(f"{new} is not an end of a run")
    if RunState(old) is not RunState.RUNNING:
        raise InvalidMove(f"a {old} run cannot become {new}: its end is recorded")


@dataclass(frozen=True)
class Verdict:
    """How the reaper records a run whose agent died."""

    state: RunState
    error: str | None
    progress: MetricProgress | None  # what its log holds of the metric, if it could be read
    run_dir: str | None


def judge_lost_run(
    wandb_dir: str | None, run_id: str, metric: str | None, goal: str, grace_s: float
) -> Verdict:
    """Read a run whose heartbeat stopped: finished if its log has a clean exit, else crashed.

    The run's folder is looked for under `wandb_dir` (its agent's; on another
    machine it may not be there: then the run is crashed). A non-zero exit
    counts as a crash too: a run dies (SIGTERM from its dying agent) when its
    agent does, and its config deserves another try.
    """
    crashed = f"no heartbeat for {grace_s:g} s: its agent died"
    if not wandb_dir or not Path(wandb_dir).is_dir():
        return Verdict(RunState.CRASHED, crashed, None, None)
    follower = RunFollower(wandb_dir, run_id, metric, goal)
    while follower.poll():
        pass
    run_dir = str(follower.run_file.parent) if follower.run_file else None
    progress = follower.metrics.progress() if metric else None
    if follower.metrics.exit_code == 0:
        return Verdict(RunState.FINISHED, None, progress, run_dir)
    return Verdict(RunState.CRASHED, crashed, progress, run_dir)
