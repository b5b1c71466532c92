"""A run's life and a sweep's: the states each can be in, and the moves between them.

One home for what a run or a sweep can be and become, as the `sweeps` engine
has `RunState` and Optuna `TrialState`, with one guard every store calls:
`check_move`, with the state it has just read under its lock and the one it
would write (Optuna's `check_trial_is_updatable` on the row just locked). A run
is `running` from its claim until exactly one end is recorded, by its agent or
by the reaper, whichever comes first; an end is final. How a run ended is an
`Ending`: its state and, when something ended it, why, in one line.

The reaper, which decides how a run whose agent died ended by reading the run's
own log, lives with the runner (`sweepkit.runner.reaper`): this module does no I/O.
"""

from __future__ import annotations

import dataclasses
import enum

CRASH_GRACE_S = 60.0  # a running run with no heartbeat for this long has lost its agent
MAX_RETRIES = 2  # times a crashed run's config is offered again


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
# Ends that leave a point without a result, until a later run repeats it.
UNFINISHED = frozenset({RunState.FAILED, RunState.CRASHED})
# What the `sweeps` engine calls each state (it knows no "stopped": a run ended early).
ENGINE_STATE = {
    **{state: state.value for state in RunState},
    RunState.STOPPED: "killed",
}


class SweepState(str, enum.Enum):
    """What a sweep hands out. The values are what the store and `status` show (W&B's)."""

    RUNNING = "running"  # runs are handed out
    PAUSED = "paused"  # none until `resume`; agents wait, running runs go on
    STOPPED = "stopped"  # none; running runs finish
    CANCELED = "canceled"  # none; running runs are ended (killed)
    FINISHED = "finished"  # nothing left to hand out, nothing running, nothing lost

    def __str__(self) -> str:
        return self.value


@dataclasses.dataclass(frozen=True)
class SweepCommand:
    """What `sweepkit stop|cancel|pause|resume` does to a sweep: the state it moves it to,
    from which states."""

    to: SweepState
    allowed_from: frozenset[SweepState]
    help: str


# The moves a user may make (W&B's own); `finished` is reached by the scheduler alone.
SWEEP_COMMANDS = {
    "stop": SweepCommand(
        SweepState.STOPPED, frozenset({SweepState.RUNNING, SweepState.PAUSED}),
        "Start no new runs; running runs finish. Agents stop within seconds.",
    ),
    "cancel": SweepCommand(
        SweepState.CANCELED, frozenset({SweepState.RUNNING, SweepState.PAUSED}),
        "Start no new runs and end the running ones now (marked killed).",
    ),
    "pause": SweepCommand(
        SweepState.PAUSED, frozenset({SweepState.RUNNING, SweepState.PAUSED}),
        "Hand out no runs until `resume`; agents wait, running runs go on.",
    ),
    "resume": SweepCommand(
        SweepState.RUNNING,
        frozenset({SweepState.PAUSED, SweepState.STOPPED, SweepState.RUNNING}),
        "Hand out runs again after `pause` or `stop`.",
    ),
}  # fmt: skip


class InvalidMove(ValueError):
    """A state write that a run's or a sweep's life does not allow (ending a run twice)."""


def check_move(old: str, new: str) -> None:
    """Raise InvalidMove unless a run in state `old` (as just read under the store's lock)
    may move to `new`: only a running run ends, and only into a terminal state.

    >>> check_move("running", "finished")
    >>> check_move("crashed", "finished")
    Traceback (most recent call last):
    ...
    sweepkit.core.lifecycle.InvalidMove: a crashed run cannot become finished: its end is recorded
    """
    if RunState(new) not in TERMINAL:
        raise InvalidMove(f"{new} is not an end of a run")
    if RunState(old) is not RunState.RUNNING:
        raise InvalidMove(f"a {old} run cannot become {new}: its end is recorded")


def sweep_move(command: str, old: str) -> SweepState:
    """The state `command` moves a sweep in state `old` (as just read under the lock) to.

    >>> sweep_move("pause", "running")
    <SweepState.PAUSED: 'paused'>
    >>> sweep_move("resume", "finished")
    Traceback (most recent call last):
    ...
    sweepkit.core.lifecycle.InvalidMove: cannot resume a sweep that is finished
    """
    move = SWEEP_COMMANDS[command]
    if SweepState(old) not in move.allowed_from:
        raise InvalidMove(f"cannot {command} a sweep that is {old}")
    return move.to


@dataclasses.dataclass(frozen=True)
class Ending:
    """How a run ended: its terminal state and why: what ended it (one line), or a failed
    run's error (its traceback, its exit code).

    >>> str(Ending(RunState.STOPPED, "stopped by early termination"))
    'stopped: stopped by early termination'
    """

    state: RunState
    reason: str | None = None  # None: it finished on its own

    def __post_init__(self) -> None:
        if self.state not in TERMINAL:
            raise InvalidMove(f"{self.state} is not an end of a run")

    def __str__(self) -> str:
        return f"{self.state}: {self.reason}" if self.reason else str(self.state)


FINISHED = Ending(RunState.FINISHED)
PREEMPTED = Ending(RunState.PREEMPTED, "preempted: its agent got SIGTERM; offered again")
