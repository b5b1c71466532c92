"""A run's life: the states, the one guard on moving between them, and a sweep's moves."""

from __future__ import annotations

import pytest

from sweepkit.core.lifecycle import (
    SWEEP_COMMANDS,
    Ending,
    InvalidMove,
    RunState,
    SweepState,
    check_move,
    sweep_move,
)


def test_only_a_running_run_ends_and_only_once():
    check_move("running", "preempted")
    for old, new in [("finished", "crashed"), ("crashed", "finished"), ("running", "running")]:
        with pytest.raises(InvalidMove):
            check_move(old, new)


def test_a_move_that_is_refused_says_why():
    with pytest.raises(InvalidMove, match=r"^running is not an end of a run$"):
        check_move("running", "running")
    with pytest.raises(InvalidMove, match=r"^a finished run cannot become crashed: its end is"):
        check_move("finished", "crashed")
    with pytest.raises(ValueError):  # not a state at all
        check_move("running", "done")


def test_every_end_but_running_is_terminal_and_the_engine_knows_each_state():
    for state in RunState:
        if state is RunState.RUNNING:
            with pytest.raises(InvalidMove):
                check_move("running", str(state))
        else:
            check_move("running", str(state))
            with pytest.raises(InvalidMove):
                check_move(str(state), "finished")


def test_a_sweep_command_moves_it_from_the_states_it_allows():
    assert sweep_move("stop", "paused") is SweepState.STOPPED
    assert sweep_move("resume", "stopped") is SweepState.RUNNING
    with pytest.raises(InvalidMove, match=r"^cannot pause a sweep that is canceled$"):
        sweep_move("pause", "canceled")
    # `finished` is the scheduler's to reach: no command moves a sweep there, or out of it.
    assert all(move.to is not SweepState.FINISHED for move in SWEEP_COMMANDS.values())
    assert all(SweepState.FINISHED not in move.allowed_from for move in SWEEP_COMMANDS.values())


def test_an_ending_is_an_end_and_says_why():
    assert str(Ending(RunState.KILLED, "stopped by Ctrl-C")) == "killed: stopped by Ctrl-C"
    assert str(Ending(RunState.FINISHED)) == "finished"
    with pytest.raises(InvalidMove):
        Ending(RunState.RUNNING)
