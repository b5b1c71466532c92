"""The agent's decisions, in this process: `run_agent` over a real SQLite store, its runs real
processes (a program sweep of a small script; function runs forked from this process, or run
in a thread of it), its signals real signals sent to this process.

The command-line tests (test_faults.py, test_lifecycle.py) run the same behaviour through
`sweepkit agent` in other processes; these run the agent's loop here, where a mutation
run (scripts/mutation.py) sees it. Heartbeats are made frequent (HEARTBEAT_S) so that the
runs that wait on one take a fraction of a second; every wait here is on a store state or
a process's end, with a deadline only against hangs.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing.forkserver
import os
import signal
import sys
import threading
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import pytest
import yaml

from sweepkit import launch
from sweepkit.backends.base import AgentOptions
from sweepkit.backends.store import Store, open_store
from sweepkit.core.records import MetricProgress
from sweepkit.follow import RunFollower
from sweepkit.runner import loop, process, target, workspace

DEADLINE_S = 60.0  # only against a hang

# The run: its flags say what to do. `--env=FILE` writes its WANDB_* variables there.
PROGRAM = """\
import json, os, signal, sys, time
args = dict(a.lstrip("-").split("=", 1) for a in sys.argv[1:])
if "pid" in args:
    with open(args["pid"], "w") as f:
        f.write(str(os.getpid()))
if "env" in args:
    wanted = ("WANDB_", "PYTHONUNBUFFERED", "SWEEPKIT_")
    with open(args["env"], "w") as f:
        json.dump({k: v for k, v in os.environ.items() if k.startswith(wanted)}, f)
if "session" in args:  # its session, its pid, and the signal it gets when its agent dies
    import ctypes
    death = ctypes.c_int()
    ctypes.CDLL(None).prctl(2, ctypes.byref(death))  # PR_GET_PDEATHSIG
    with open(args["session"], "w") as f:
        json.dump([os.getsid(0), os.getpid(), death.value], f)
if args.get("ignore_term") == "True":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if "on_term" in args:  # a run that takes a moment to finish its wandb run when stopped
    def finish(signum, frame):
        time.sleep(0.5)
        open(args["on_term"], "w").write("finished")
        sys.exit(0)
    signal.signal(signal.SIGTERM, finish)
if "stderr" in args:
    print(args["stderr"], file=sys.stderr, flush=True)
if "orphans" in args:  # leave two processes behind that ignore SIGTERM
    import subprocess
    stays = ("import os, signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
             "open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(60)")
    files = [os.path.join(args["orphans"], name) for name in ("in_group", "own_session")]
    subprocess.Popen([sys.executable, "-c", stays, files[0]], env={})  # no token: its group
    subprocess.Popen([sys.executable, "-c", stays, files[1]], start_new_session=True)  # token
    while not all(os.path.exists(f) and open(f).read() for f in files):
        time.sleep(0.02)
print("run says", " ".join(sys.argv[1:]), flush=True)
time.sleep(float(args.get("sleep", 0)))
if "tail" in args:  # a last line without its newline
    print(args["tail"], end="", flush=True)
code = args.get("code", "0")
sys.exit(int(code) if code.isdigit() else 0)  # "ok", "ok-2": distinct points, exit 0
"""


@pytest.fixture
def sweep(tmp_path, monkeypatch):
    """Make a program sweep in a fresh store; returns (store, make) where make(parameters,
    **config) registers a sweep of PROGRAM and returns its id."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(loop, "HEARTBEAT_S", 0.1)
    # These runs never call wandb.init: the agent's wait for their last records is short.
    monkeypatch.setattr(RunFollower, "QUIET_S", 0.1)
    (tmp_path / "prog.py").write_text(PROGRAM)
    store = open_store(tmp_path / "sweeps.db")

    def make(parameters: dict, **config) -> str:
        return store.create_sweep(
            {"program": "prog.py", "method": "grid", "parameters": parameters} | config
        )

    yield store, make
    store.close()


def values(**params) -> dict:
    return {k: {"values": v} for k, v in params.items()}


def states(store: Store, sweep_id: str) -> list[tuple[str, str]]:
    """(state, error's last line) of every run, in the order claimed."""
    runs = sorted(store.runs(sweep_id), key=lambda r: r.created_at)
    return [
        (r.state, (r.error or "").strip().splitlines()[-1:][0] if r.error else "") for r in runs
    ]


def when_running(
    store_path: Path, sweep_id: str, then: Callable[[Store], None]
) -> threading.Thread:
    """In a thread with its own store connection: once a run of the sweep is running, do `then`."""

    def watch() -> None:
        other = open_store(store_path)
        deadline = time.monotonic() + DEADLINE_S
        while not any(r.state == "running" for r in other.runs(sweep_id)):
            assert time.monotonic() < deadline, "no run started"
            time.sleep(0.02)
        then(other)
        other.close()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def run_pid(pid_file: Path) -> int:
    """The pid a run of PROGRAM (`--pid=FILE`) wrote, once it has."""
    deadline = time.monotonic() + DEADLINE_S
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline, "the run never wrote its pid"
        time.sleep(0.02)
    return int(pid_file.read_text())


def signal_self(signum: int) -> Callable[[Store], None]:
    return lambda _store: os.kill(os.getpid(), signum)


def test_the_agent_holds_sigint_sigterm_and_sighup_only_while_it_runs():
    """Before any test here signals this process: without the agent's handlers, SIGTERM would
    end the test run itself rather than fail one test."""
    names = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    before = [signal.getsignal(signum) for signum in names]
    with loop._Interrupts("") as interrupts:
        assert [signal.getsignal(signum) for signum in names] == [
            interrupts._on_sigint, interrupts._on_sigterm, interrupts._on_sigterm
        ]  # fmt: skip
    assert [signal.getsignal(signum) for signum in names] == before  # a library caller's own


# --- runs and their ends -----------------------------------------------------------------------


def test_count_bounds_the_runs_and_a_non_zero_exit_is_a_failed_run_naming_its_code(
    sweep, monkeypatch, capsys
):
    store, make = sweep
    sweep_id = make(values(code=["ok", "3", "ok-2", "4"]))
    setups = counting_wandb_setups(monkeypatch)
    result = loop.run_agent(store, sweep_id, count=3)
    assert setups == []  # a program starts its own wandb service
    assert (result.performed, result.failed, result.gave_up) == (3, 1, None)
    assert states(store, sweep_id) == [
        ("finished", ""), ("failed", "exited with code 3"), ("finished", ""),
    ]  # fmt: skip
    first, failed, _ = sorted(store.runs(sweep_id), key=lambda r: r.created_at)
    err = capsys.readouterr().err
    assert f"sweepkit: run {first.id} finished\n" in err  # no metric: nothing after the state
    assert f"sweepkit: run {first.id} never called wandb.init" in err
    assert f"sweepkit: run {failed.id} failed\n" in err  # its failure says enough
    assert f"sweepkit: run {failed.id} never called" not in err
    assert result.exit_code == 1 and not result.interrupted and not result.preempted
    assert store.sweep_state(sweep_id) == "running"  # one point is left


def test_an_agent_runs_the_sweep_to_its_end_without_a_count(sweep):
    store, make = sweep
    sweep_id = make(values(i=[1, 2, 3]))
    result = loop.run_agent(store, sweep_id)
    assert (result.performed, result.failed, result.exit_code) == (3, 0, 0)
    assert [s for s, _ in states(store, sweep_id)] == ["finished"] * 3
    assert store.sweep_state(sweep_id) == "finished" and result.unfinished == {}


def test_the_agent_prepares_its_next_claim_while_each_run_goes(sweep, monkeypatch):
    # The grid's next points are worked out while a run trains, not in the claim that holds
    # the sweep (Store.prepare_claim): once a run, after it started and before its end.
    store, make = sweep
    sweep_id = make(values(i=[1, 2]))
    seen: list[tuple[str, list[str]]] = []

    def prepare_claim(prepared_id: str) -> None:
        seen.append((prepared_id, [r.state for r in store.runs(sweep_id)]))

    monkeypatch.setattr(store, "prepare_claim", prepare_claim)
    loop.run_agent(store, sweep_id)
    assert seen == [(sweep_id, ["running"]), (sweep_id, ["finished", "running"])]


def test_max_failures_in_a_row_makes_the_agent_give_up_naming_the_last_error(sweep):
    store, make = sweep
    sweep_id = make(values(code=["1", "2", "5", "6"]))
    result = loop.run_agent(store, sweep_id, options=AgentOptions(max_failures=3))
    assert (result.performed, result.failed) == (3, 3)
    assert result.gave_up == "3 runs failed in a row; the last: exited with code 5"
    assert result.exit_code == 1


def test_max_failures_counts_failures_in_a_row_not_in_total(sweep):
    store, make = sweep
    sweep_id = make(values(code=["1", "ok", "2", "ok-2", "3", "4"]))
    result = loop.run_agent(store, sweep_id, options=AgentOptions(max_failures=2))
    assert (result.performed, result.failed) == (6, 4)  # gave up after 3 and 4, in a row
    assert result.gave_up == "2 runs failed in a row; the last: exited with code 4"


def test_max_failures_defaults_to_five(sweep):
    store, make = sweep
    sweep_id = make(values(code=[str(c) for c in range(1, 8)]))
    result = loop.run_agent(store, sweep_id)
    assert (result.performed, result.failed) == (5, 5)
    assert result.gave_up == "5 runs failed in a row; the last: exited with code 5"


def test_a_command_that_cannot_start_is_a_failed_run_and_the_agent_goes_on(sweep, capsys):
    store, make = sweep
    sweep_id = make(values(i=[1, 2]), command=["./no-such-command", "${args}"])
    result = loop.run_agent(store, sweep_id, options=AgentOptions(max_failures=5))
    assert (result.performed, result.failed) == (2, 2)
    runs = states(store, sweep_id)
    assert [s for s, _ in runs] == ["failed", "failed"]
    assert all(e.startswith("its command could not start: ") for _, e in runs)
    assert "no-such-command" in runs[0][1]
    assert "failed: its command could not start" in capsys.readouterr().err
    assert [r.summary for r in store.runs(sweep_id)] == [{}, {}]  # an empty entry, as any run's


def test_a_run_past_its_timeout_is_ended_and_failed(sweep):
    store, make = sweep
    sweep_id = make(values(sleep=[60]))
    result = loop.run_agent(store, sweep_id, options=AgentOptions(run_timeout_s=0.3))
    assert (result.performed, result.failed) == (1, 1)
    assert states(store, sweep_id) == [("failed", "timed out after 0.3 s (--run-timeout)")]


def test_a_run_within_its_timeout_is_left_alone(sweep):
    store, make = sweep
    sweep_id = make(values(sleep=[0.3]))
    result = loop.run_agent(store, sweep_id, options=AgentOptions(run_timeout_s=30))
    assert states(store, sweep_id) == [("finished", "")] and result.exit_code == 0


# --- what the sweep says while a run goes -------------------------------------------------------


def test_a_running_run_beats_and_its_agent_stops_it_when_the_sweep_is_canceled(sweep, tmp_path):
    store, make = sweep
    sweep_id = make(values(sleep=[60, 61]))
    beats: set[float] = set()

    def cancel(other: Store) -> None:
        deadline = time.monotonic() + DEADLINE_S
        while len(beats) < 3:  # it beats while it runs
            assert time.monotonic() < deadline, "no heartbeat"
            (run,) = other.runs(sweep_id)
            beats.add(run.heartbeat_at)
            time.sleep(0.02)
        other.change_sweep_state(sweep_id, "cancel")

    thread = when_running(tmp_path / "sweeps.db", sweep_id, cancel)
    result = loop.run_agent(store, sweep_id)
    thread.join()
    assert states(store, sweep_id) == [("killed", "the sweep was canceled")]  # no second run
    assert (result.performed, result.failed) == (1, 0)


def test_a_run_that_ignores_sigterm_is_killed_after_the_stop_grace(sweep, tmp_path, monkeypatch):
    store, make = sweep
    monkeypatch.setattr(loop, "STOP_GRACE_S", 0.5)
    sweep_id = make(values(sleep=[60], ignore_term=[True]))
    cancel = when_running(
        tmp_path / "sweeps.db", sweep_id, lambda s: s.change_sweep_state(sweep_id, "cancel")
    )
    loop.run_agent(store, sweep_id)
    cancel.join()
    assert states(store, sweep_id) == [("killed", "the sweep was canceled")]


def test_early_termination_stops_the_runs_the_sweep_names(sweep, monkeypatch):
    store, make = sweep
    sweep_id = make(values(sleep=[60]))
    stop_asked = []

    def runs_to_stop(asked_store: Store, asked_sweep: str) -> set[str]:
        stop_asked.append(asked_sweep)
        return {r.id for r in asked_store.runs(sweep_id) if r.state == "running"}

    # The rule is the engine's, on the store's records (tested in test_engine.py).
    monkeypatch.setattr(loop, "_runs_to_stop", runs_to_stop)
    result = loop.run_agent(store, sweep_id)
    assert states(store, sweep_id) == [("stopped", "stopped by early termination")]
    assert set(stop_asked) == {sweep_id} and result.exit_code == 0


def test_a_paused_sweep_holds_the_agent_until_it_is_resumed(sweep, tmp_path, monkeypatch, capsys):
    store, make = sweep
    sweep_id = make(values(i=[1, 2]))
    store.change_sweep_state(sweep_id, "pause")
    paused_seen = threading.Event()
    sweep_state = store.sweep_state

    def watched(asked: str) -> str:
        state = sweep_state(asked)
        if state == "paused":
            paused_seen.set()
        return state

    monkeypatch.setattr(store, "sweep_state", watched)

    def resume() -> None:
        assert paused_seen.wait(DEADLINE_S)
        time.sleep(0.3)  # several polls: the agent says it waits once, not at each poll
        other = open_store(tmp_path / "sweeps.db")
        assert states(other, sweep_id) == []  # nothing was handed out while paused
        other.change_sweep_state(sweep_id, "resume")
        other.close()

    thread = threading.Thread(target=resume, daemon=True)
    thread.start()
    result = loop.run_agent(store, sweep_id)
    thread.join()
    assert result.performed == 2 and store.sweep_state(sweep_id) == "finished"
    err = capsys.readouterr().err
    assert err.count(f"sweep {sweep_id} is paused: waiting for `sweepkit resume`") == 1


def test_a_stopped_sweep_ends_the_agent_at_once(sweep):
    store, make = sweep
    sweep_id = make(values(i=[1, 2]))
    store.change_sweep_state(sweep_id, "stop")
    result = loop.run_agent(store, sweep_id)
    assert result.performed == 0 and states(store, sweep_id) == []


def test_an_agent_with_only_points_lost_for_good_left_returns_and_says_so(sweep):
    store, make = sweep
    sweep_id = make(values(i=[1]))
    run = store.claim_run(sweep_id, max_retries=0)
    store.finish_run(sweep_id, run.id, state="crashed", progress=None, summary={}, run_dir=None)
    assert store.sweep_state(sweep_id) == "running"  # its one point is lost, not finished
    result = loop.run_agent(store, sweep_id, options=AgentOptions(max_retries=0))
    assert result.performed == 0 and result.unfinished == {"crashed": 1}
    assert result.exit_code == 1


def test_an_agent_waits_while_another_agents_run_is_going_and_says_so_once(
    sweep, tmp_path, monkeypatch, capsys
):
    store, make = sweep
    sweep_id = make(values(i=[1]))
    claimed, waiting = threading.Event(), threading.Event()
    said = loop.note

    def note(line: str) -> None:
        said(line)
        if "has runs still going elsewhere" in line:
            waiting.set()

    monkeypatch.setattr(loop, "note", note)

    def another_agent() -> None:  # its own connection, in its own thread
        other = open_store(tmp_path / "sweeps.db")
        run = other.claim_run(sweep_id)
        claimed.set()
        assert waiting.wait(DEADLINE_S)
        time.sleep(0.3)  # several polls: the agent says it waits once, not at each poll
        other.finish_run(
            sweep_id, run.id, state="finished", progress=None, summary={}, run_dir=None
        )
        other.close()

    thread = threading.Thread(target=another_agent, daemon=True)
    thread.start()
    assert claimed.wait(DEADLINE_S)
    result = loop.run_agent(store, sweep_id)
    thread.join()
    assert result.performed == 0 and store.sweep_state(sweep_id) == "finished"
    assert capsys.readouterr().err.count("has runs still going elsewhere: waiting") == 1


# --- signals ----------------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])  # SIGHUP: terminal gone
def test_sigterm_preempts_the_run_its_point_is_offered_again_and_the_exit_code_says_so(
    sweep, tmp_path, signum
):
    store, make = sweep
    sweep_id = make(values(sleep=[60]))
    thread = when_running(tmp_path / "sweeps.db", sweep_id, signal_self(signum))
    result = loop.run_agent(store, sweep_id)
    thread.join()
    assert states(store, sweep_id) == [
        ("preempted", "preempted: its agent got SIGTERM; offered again")
    ]
    assert result.preempted and result.interrupted and result.exit_code == 143
    (run,) = store.runs(sweep_id)
    assert result.preempted_run == run.id  # what the agent's last lines name
    again = store.claim_run(sweep_id)
    assert again is not None and again.config["sleep"]["value"] == 60


def test_sigterm_between_runs_preempts_nothing_and_says_so(sweep, monkeypatch, capsys):
    store, make = sweep
    sweep_id = make(values(sleep=[60]))
    store.change_sweep_state(sweep_id, "pause")  # the agent waits for `resume`: no run is going
    waiting = threading.Event()

    def said(line: str) -> None:
        print(f"sweepkit: {line}", file=sys.stderr)
        if "is paused: waiting" in line:
            waiting.set()

    monkeypatch.setattr(loop, "note", said)

    def preempt_once_waiting() -> None:
        assert waiting.wait(DEADLINE_S), "the agent never waited"
        os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=preempt_once_waiting)
    thread.start()
    result = loop.run_agent(store, sweep_id)
    thread.join()
    assert result.preempted and result.preempted_run is None and result.exit_code == 143
    assert store.runs(sweep_id) == []
    launch._say_done(result, sweep_id, "w0 cpu")
    lines = capsys.readouterr().err.splitlines()
    assert "sweepkit: [w0 cpu] got SIGTERM between runs: stopping (no run was going)" in lines
    assert not any("recorded preempted" in line for line in lines)
    result.preempted_run = "abc123"
    launch._say_done(result, sweep_id, "")
    assert "sweepkit: got SIGTERM: run abc123 is recorded preempted and offered again" in (
        capsys.readouterr().err.splitlines()
    )


def test_a_run_that_died_of_sigterm_before_its_agent_got_its_own_is_preempted(sweep, tmp_path):
    # Slurm signals every process of a task, the run's before the agent's: the agent may
    # see its run dead before it hears of its own SIGTERM.
    store, make = sweep
    pid_file = tmp_path / "run.pid"
    sweep_id = make(values(sleep=[60], pid=[str(pid_file)]))

    def run_first_then_agent(_store: Store) -> None:
        deadline = time.monotonic() + DEADLINE_S
        pid = run_pid(pid_file)
        os.kill(pid, signal.SIGTERM)
        while Path(f"/proc/{pid}").exists():  # gone once the agent has reaped it: it saw the end
            assert time.monotonic() < deadline, "the run outlived SIGTERM"
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGTERM)

    thread = when_running(tmp_path / "sweeps.db", sweep_id, run_first_then_agent)
    result = loop.run_agent(store, sweep_id)
    thread.join()
    assert states(store, sweep_id) == [
        ("preempted", "preempted: its agent got SIGTERM; offered again")
    ]
    assert result.exit_code == 143


def test_a_run_killed_by_a_signal_with_its_agent_left_alone_is_failed(sweep, tmp_path, monkeypatch):
    store, make = sweep
    monkeypatch.setattr(loop, "SIGTERM_SKEW_S", 0.2)
    pid_file = tmp_path / "run.pid"
    sweep_id = make(values(sleep=[60], pid=[str(pid_file)]))

    def kill_the_run(_store: Store) -> None:
        os.kill(run_pid(pid_file), signal.SIGKILL)  # the OOM killer, say

    thread = when_running(tmp_path / "sweeps.db", sweep_id, kill_the_run)
    result = loop.run_agent(store, sweep_id)
    thread.join()
    assert states(store, sweep_id) == [("failed", "exited with code -9")]
    assert result.exit_code == 1 and not result.preempted


@pytest.mark.parametrize(("label", "prefix"), [(None, ""), ("w1", "[w1] ")])
def test_ctrl_c_once_lets_the_run_finish_then_stops(sweep, tmp_path, capsys, label, prefix):
    store, make = sweep
    sweep_id = make(values(sleep=[0.6, 0.7]))
    thread = when_running(tmp_path / "sweeps.db", sweep_id, signal_self(signal.SIGINT))
    result = loop.run_agent(store, sweep_id, options=AgentOptions(label=label))
    thread.join()
    assert states(store, sweep_id) == [("finished", "")]  # the second point was not started
    assert result.interrupted is True and result.preempted is False and result.exit_code == 130
    assert (
        f"sweepkit: {prefix}finishing the current run, then stopping (Ctrl-C again to stop it now)\n"
    ) in capsys.readouterr().err


def test_ctrl_c_twice_stops_the_run_now(sweep, tmp_path):
    store, make = sweep
    sweep_id = make(values(sleep=[60, 61]))
    thread = when_running(tmp_path / "sweeps.db", sweep_id, stop_twice)
    result = loop.run_agent(store, sweep_id)
    thread.join()
    assert states(store, sweep_id) == [("killed", "stopped by Ctrl-C")]
    assert result.interrupted and result.exit_code == 130


class RecordingLiveLines(loop.LiveLines):
    """Live lines as on a terminal, recorded instead of drawn."""

    shown: ClassVar[list[list[str]]] = []

    def __init__(self) -> None:
        super().__init__(enabled=True)

    def __enter__(self) -> RecordingLiveLines:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def update(self, lines: list[str]) -> None:
        RecordingLiveLines.shown.append(list(lines))


def test_on_a_terminal_the_live_lines_show_the_sweep_and_this_agents_share(sweep, monkeypatch):
    from sweepkit.backends.local import LocalBackend

    store, make = sweep
    monkeypatch.setattr(loop, "LiveLines", RecordingLiveLines)
    monkeypatch.setattr(RecordingLiveLines, "shown", [])
    sweep_id = make(values(code=["0", "3", "ok"]))
    backend = LocalBackend(store.location)
    loop.run_agent(store, sweep_id, count=2, sweep_info=lambda: backend.sweep(sweep_id))
    assert RecordingLiveLines.shown[-1] == [
        f"{sweep_id}: 1/3 finished, 1 failed, 0 running",
        "  this agent: 2/2 runs, 1 failed",
    ]
    monkeypatch.setattr(RecordingLiveLines, "shown", [])
    loop.run_agent(store, sweep_id)  # no count, no sweep_info: nothing to show
    assert RecordingLiveLines.shown and not any(RecordingLiveLines.shown)


def stop_twice(_store: Store) -> None:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.2)
    os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.parametrize(("stop", "code"), [(signal_self(signal.SIGTERM), 143), (stop_twice, 130)])
def test_a_store_that_fails_while_the_agent_is_told_to_stop_gives_up_with_the_signals_code(
    sweep, tmp_path, monkeypatch, stop, code
):
    """The store's patience is cut short once the agent is told to stop now (its stop_waiting
    says so), and the error's exit code is the signal's, as after a recorded stop."""
    store, make = sweep
    sweep_id = make(values(sleep=[60]))
    told_to_stop_at_failure = []

    def lost(*args, **kwargs):
        told_to_stop_at_failure.append(store.stop_waiting())
        raise loop.StoreError("the store went away")

    monkeypatch.setattr(store, "finish_run", lost)
    thread = when_running(tmp_path / "sweeps.db", sweep_id, stop)
    with pytest.raises(loop.StoreError) as raised:
        loop.run_agent(store, sweep_id)
    thread.join()
    assert raised.value.exit_code == code and told_to_stop_at_failure == [True]
    assert "stop_waiting" not in vars(store)  # a library caller's store waits as before
    assert store.stop_waiting() is False


def test_the_callers_signal_handlers_are_back_after_the_agent(sweep):
    store, make = sweep
    sweep_id = make(values(i=[1]))
    mine = lambda signum, frame: None  # noqa: E731
    before = {s: signal.signal(s, mine) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        loop.run_agent(store, sweep_id)
        assert all(signal.getsignal(s) is mine for s in before)
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


# --- what a run is given --------------------------------------------------------------------------


def test_a_run_gets_the_variables_wandb_agent_sets_offline_and_its_parameters_file(
    sweep, tmp_path, monkeypatch
):
    store, _ = sweep
    monkeypatch.setenv("WANDB_SERVICE", "not-for-programs")
    monkeypatch.setenv("WANDB_MODE", "online")  # a run of a sweep here is offline whatever
    for name in ("WANDB_SILENT", "PYTHONUNBUFFERED", "WANDB_X_TRANSACTION_LOG_FLUSH_INTERVAL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("WANDB_DIR", raising=False)
    env_file = tmp_path / "env.json"
    sweep_id = store.create_sweep(
        {
            "program": "prog.py",
            "method": "grid",
            "parameters": values(env=[str(env_file)], lr=[0.5]),
        },
        project="mnist",
        entity="team",
    )
    loop.run_agent(store, sweep_id, options=AgentOptions(label="w3"))
    (run,) = store.runs(sweep_id)
    env = json.loads(env_file.read_text())
    scratch = tmp_path / "wandb" / f"sweep-{sweep_id}" / run.id
    assert env["WANDB_SWEEP_ID"] == sweep_id and env["WANDB_RUN_ID"] == run.id
    assert env["WANDB_NAME"] == run.name
    assert (env["WANDB_PROJECT"], env["WANDB_ENTITY"]) == ("mnist", "team")
    assert (env["WANDB_MODE"], env["WANDB_DIR"]) == ("offline", str(tmp_path))
    assert env["WANDB_SILENT"] == "true" and env["WANDB_X_TRANSACTION_LOG_FLUSH_INTERVAL"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1" and env["SWEEPKIT_RUN"].startswith(f"{run.id}.")
    assert "WANDB_SERVICE" not in env  # a program may run another wandb: its own service
    assert env["WANDB_SWEEP_PARAM_PATH"] == str(scratch / "config.yaml")
    assert yaml.safe_load(Path(env["WANDB_SWEEP_PARAM_PATH"]).read_text()) == {
        "env": {"value": str(env_file)},
        "lr": {"value": 0.5},
    }
    assert run.agent == "w3"


def test_a_sweep_without_project_or_entity_runs_in_project_sweepkit(sweep, tmp_path, monkeypatch):
    store, make = sweep
    monkeypatch.setenv("WANDB_SILENT", "false")
    monkeypatch.setenv("WANDB_X_TRANSACTION_LOG_FLUSH_INTERVAL", "5")
    env_file = tmp_path / "env.json"
    sweep_id = make(values(env=[str(env_file)]))
    loop.run_agent(store, sweep_id)
    env = json.loads(env_file.read_text())
    assert env["WANDB_PROJECT"] == "sweepkit" and "WANDB_ENTITY" not in env
    assert env["WANDB_SILENT"] == "false"  # the user's choices stand
    assert env["WANDB_X_TRANSACTION_LOG_FLUSH_INTERVAL"] == "5"


def test_a_runs_output_goes_to_its_log_file_in_the_agents_log_folder(sweep, tmp_path, capsys):
    store, make = sweep
    sweep_id = make(values(i=[7]))
    loop.run_agent(store, sweep_id, options=AgentOptions(log_dir=tmp_path / "logs", label="w0"))
    (run,) = store.runs(sweep_id)
    log = tmp_path / "logs" / f"{run.id}.log"
    assert run.log_file == str(log) and log.read_text() == "run says --i=7\n"
    err = capsys.readouterr().err
    assert f"[w0] run {run.id} ({run.name}) started: i=7 (log: {log})" in err
    assert "run says" not in err  # a worker's runs are not relayed
    assert f"[w0] run {run.id} never called wandb.init: it logged nothing, so no metric" in err


def test_without_a_log_folder_the_runs_lines_are_relayed(sweep, capsys):
    store, make = sweep
    sweep_id = make(values(i=[8], stderr=["to stderr"]))
    loop.run_agent(store, sweep_id)
    (run,) = store.runs(sweep_id)
    err = capsys.readouterr().err
    assert f"run {run.id} ({run.name}) started: i=8, stderr=to stderr\n" in err  # no "(log: ...)"
    assert "run says --i=8" in err
    assert "to stderr" in Path(run.log_file).read_text().splitlines()  # its stderr: in its log


def test_args_json_file_is_written_for_the_command_that_names_it(sweep, tmp_path):
    store, _ = sweep
    reader = tmp_path / "reader.py"
    reader.write_text("import json, sys, shutil\nshutil.copy(sys.argv[1], 'seen.json')\n")
    sweep_id = store.create_sweep(
        {"program": "reader.py", "method": "grid", "parameters": values(lr=[0.1], n=[3]),
         "command": ["${interpreter}", "${program}", "${args_json_file}"]}
    )  # fmt: skip
    loop.run_agent(store, sweep_id)
    assert states(store, sweep_id) == [("finished", "")]
    assert json.loads((tmp_path / "seen.json").read_text()) == {"lr": 0.1, "n": 3}
    (run,) = store.runs(sweep_id)
    assert (Path(run.wandb_dir) / "wandb" / f"sweep-{sweep_id}" / run.id / "args.json").exists()


def test_the_interpreter_is_the_agents_own_python(sweep, tmp_path):
    store, _ = sweep
    (tmp_path / "which.py").write_text(
        "import sys\nopen('python.txt', 'w').write(sys.executable)\n"
    )
    sweep_id = store.create_sweep(
        {"program": "which.py", "method": "grid", "parameters": values(i=[1]),
         "command": ["${interpreter}", "${program}"]}
    )  # fmt: skip
    loop.run_agent(store, sweep_id)
    assert (tmp_path / "python.txt").read_text() == sys.executable


# --- the watch's pace and what a beat carries ---------------------------------------------------


def counting_beats(store: Store, monkeypatch) -> list[float]:
    """The times of the agent's heartbeats (the real store records them too)."""
    beats: list[float] = []
    real = store.heartbeat

    def heartbeat(*args, **kwargs):
        beats.append(time.monotonic())
        return real(*args, **kwargs)

    monkeypatch.setattr(store, "heartbeat", heartbeat)
    return beats


def test_the_first_heartbeat_waits_a_heartbeat_interval(sweep, monkeypatch):
    """A run that ends within HEARTBEAT_S never beats: 1,000 agents starting runs do not write
    to the store for each start."""
    store, make = sweep
    sweep_id = make(values(sleep=[0.5]))  # the watch looks at it a few times
    beats = counting_beats(store, monkeypatch)
    monkeypatch.setattr(loop, "HEARTBEAT_S", 30.0)
    loop.run_agent(store, sweep_id)
    assert states(store, sweep_id) == [("finished", "")] and beats == []


def test_heartbeats_go_out_every_interval_while_a_run_goes(sweep, monkeypatch):
    store, make = sweep
    sweep_id = make(values(sleep=[1.5]))
    beats = counting_beats(store, monkeypatch)
    monkeypatch.setattr(loop, "HEARTBEAT_S", 0.4)
    loop.run_agent(store, sweep_id)
    assert len(beats) >= 2  # the watch looks every 0.1 s, so it beats on time
    gaps = [b - a for a, b in itertools.pairwise(beats)]
    assert all(gap >= 0.2 for gap in gaps), gaps  # and not at every look


def claimed(store: Store, make) -> tuple[str, str]:
    sweep_id = make(values(i=[1]), metric={"name": "loss", "goal": "minimize"})
    run = store.claim_run(sweep_id)
    assert run is not None
    return sweep_id, run.id


def watch_of(store, sweep_id, run_id, follower, interrupts=None, stop_file=None):
    return loop._RunWatch(
        store, sweep_id, run_id, follower, interrupts, None, None, (0, "token"), stop_file,
    )  # fmt: skip


def test_a_beat_carries_the_metrics_new_points_and_the_runs_folder(sweep, tmp_path):
    store, make = sweep
    sweep_id, run_id = claimed(store, make)
    progress = MetricProgress(2, 0.5, 1.0, 0.5, 0.5, new_points=[1.0, 0.5])
    metrics = types.SimpleNamespace(metric="loss", progress=lambda: progress)
    run_file = tmp_path / "wandb" / f"offline-run-x-{run_id}" / f"run-{run_id}.wandb"
    follower = types.SimpleNamespace(metrics=metrics, run_file=run_file)
    assert watch_of(store, sweep_id, run_id, follower)._beat() is None  # go on
    (run,) = store.runs(sweep_id)
    assert (run.metric_count, run.metric_min, run.metric_last) == (2, 0.5, 0.5)
    assert run.run_dir == str(run_file.parent)


def test_a_beat_before_the_run_has_a_folder_or_a_metric_carries_neither(sweep):
    store, make = sweep
    sweep_id, run_id = claimed(store, make)
    progress = MetricProgress(1, 1.0, 1.0, 1.0, 1.0, new_points=[1.0])
    metrics = types.SimpleNamespace(metric=None, progress=lambda: progress)
    follower = types.SimpleNamespace(metrics=metrics, run_file=None)
    assert watch_of(store, sweep_id, run_id, follower)._beat() is None
    (run,) = store.runs(sweep_id)
    assert (run.metric_count, run.metric_last, run.run_dir, run.state) == (0, None, None, "running")


class FakeInterrupts:
    """The agent's SIGTERM, as `_preempted_with_its_agent` asks about it."""

    def __init__(self, preempted: bool, arrives: bool = False) -> None:
        self.preempted, self.arrives, self.asked = preempted, arrives, []

    def preempted_within(self, seconds: float) -> bool:
        self.asked.append(seconds)
        return self.arrives


@pytest.mark.parametrize(
    ("code", "preempted", "arrives", "waited", "verdict"),
    [
        (0, True, True, False, False),  # a run that ended well is finished, whatever came after
        (1, True, False, False, True),  # its agent was preempted: so was it
        (1, False, True, False, False),  # a plain failure: no waiting for a SIGTERM
        (None, False, True, False, False),
        (127, False, True, False, False),
        (-9, False, True, True, True),  # killed by a signal: was it its agent's preemption?
        (-15, False, False, True, False),  # no SIGTERM came to the agent: a failure
        (128, False, True, True, True),
        (143, False, True, True, True),  # stopped by SIGTERM
        (255, False, True, True, True),  # its fork server gone: the code is lost
    ],
)
def test_a_run_that_ended_unasked_is_preempted_only_with_its_agent(
    code, preempted, arrives, waited, verdict
):
    interrupts = FakeInterrupts(preempted, arrives)
    watch = watch_of(None, "s", "r", None, interrupts)
    assert watch._preempted_with_its_agent(code) is verdict
    assert interrupts.asked == ([loop.SIGTERM_SKEW_S] if waited else [])


def test_the_relay_shows_complete_lines_and_the_rest_once_the_run_ended(tmp_path, capsys):
    log = tmp_path / "run.log"
    log.write_text("epoch 1\nepoch 2 half")
    screen = loop._Screen(relay=True, progress=None)
    screen.follow(log)
    screen.pump()
    assert capsys.readouterr().err == "epoch 1\n"  # a half-written line waits
    screen.pump(ended=True)
    assert capsys.readouterr().err == "epoch 2 half\n"


def test_a_program_run_has_its_own_session_and_dies_with_its_agent(sweep, tmp_path):
    store, make = sweep
    sweep_id = make(values(session=[str(tmp_path / "session.json")]))
    loop.run_agent(store, sweep_id)
    sid, pid, death_signal = json.loads((tmp_path / "session.json").read_text())
    assert sid == pid  # Ctrl-C in the terminal reaches the agent, not the run
    assert death_signal == signal.SIGTERM  # proctree.die_with_parent: it can finish its run


def test_a_stopped_run_gets_time_to_finish_before_anything_is_killed(
    sweep, tmp_path, capsys, monkeypatch
):
    store, make = sweep
    monkeypatch.setattr(loop, "LEFTOVER_GRACE_S", 0.1)  # what ends leftovers must not end it
    done = tmp_path / "finished.txt"
    sweep_id = make(values(sleep=[60], on_term=[str(done)]))
    loop.run_agent(store, sweep_id, options=AgentOptions(run_timeout_s=0.3))
    assert done.read_text() == "finished"  # its SIGTERM handler ran to its end
    (run,) = store.runs(sweep_id)
    err = capsys.readouterr().err
    assert f"run {run.id}: timed out after 0.3 s (--run-timeout)\n" in err
    assert "process(es) running" not in err  # it ended by itself: nothing was left to end


def test_a_canceled_run_says_why_and_ends_by_itself(sweep, tmp_path, capsys, monkeypatch):
    store, make = sweep
    monkeypatch.setattr(loop, "LEFTOVER_GRACE_S", 0.1)  # what ends leftovers must not end it
    done = tmp_path / "finished.txt"
    sweep_id = make(values(sleep=[60], on_term=[str(done)]))
    cancel = when_running(
        tmp_path / "sweeps.db", sweep_id, lambda s: s.change_sweep_state(sweep_id, "cancel")
    )
    loop.run_agent(store, sweep_id)
    cancel.join()
    (run,) = store.runs(sweep_id)
    err = capsys.readouterr().err
    assert f"run {run.id}: the sweep was canceled\n" in err
    assert done.read_text() == "finished"  # it had its time to finish its wandb run
    assert "process(es) running" not in err and "reaped meanwhile" not in err


def test_a_timed_out_run_that_ignores_sigterm_is_killed_after_the_stop_grace(sweep, monkeypatch):
    store, make = sweep
    monkeypatch.setattr(loop, "STOP_GRACE_S", 0.5)
    sweep_id = make(values(sleep=[60], ignore_term=[True]))
    loop.run_agent(store, sweep_id, options=AgentOptions(run_timeout_s=0.2))
    assert states(store, sweep_id) == [("failed", "timed out after 0.2 s (--run-timeout)")]


# --- function runs (forked from this process, or in it) ----------------------------------------


class RecordingGuard(loop.Guard):
    """The real guard, its pipe's descriptor, and what the agent hands it."""

    fileno_at_start: ClassVar[int] = -1
    watched: ClassVar[list[tuple[int, str]]] = []
    forgotten: ClassVar[list[str]] = []

    def __enter__(self) -> RecordingGuard:
        super().__enter__()
        RecordingGuard.fileno_at_start = self.fileno()
        return self

    def watch(self, pgid: int, token: str) -> None:
        RecordingGuard.watched.append((pgid, token))
        super().watch(pgid, token)

    def forget(self, token: str) -> None:
        RecordingGuard.forgotten.append(token)
        super().forget(token)


def counting_wandb_setups(monkeypatch) -> list[int]:
    """The real wandb.setup, each call recorded."""
    calls: list[int] = []
    real = loop.wandb.setup

    def setup(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(loop.wandb, "setup", setup)
    return calls


def writes_what_it_holds(seen_file: Path) -> Callable[[], None]:
    def function() -> None:
        import stat

        try:
            holds_pipe = stat.S_ISFIFO(os.fstat(RecordingGuard.fileno_at_start).st_mode)
        except OSError:
            holds_pipe = False
        seen_file.write_text(json.dumps(
            {"run": os.environ["WANDB_RUN_ID"], "pid": os.getpid(), "guard_pipe": holds_pipe}
        ))  # fmt: skip
        print("a function run says hello")
        time.sleep(0.5)  # a few heartbeats long

    return function


def test_a_scripts_function_is_forked_and_holds_nothing_of_its_agent(sweep, tmp_path, monkeypatch):
    store, make = sweep
    monkeypatch.setattr(loop, "Guard", RecordingGuard)
    monkeypatch.setattr(RecordingGuard, "watched", [])
    monkeypatch.setattr(RecordingGuard, "forgotten", [])
    monkeypatch.setattr(RecordingGuard, "fileno_at_start", -1)
    monkeypatch.setattr(target, "_interactive_session", lambda: False)
    sweep_id = make(values(i=[1]))
    seen_file = tmp_path / "seen.json"
    beats = counting_beats(store, monkeypatch)
    setups = counting_wandb_setups(monkeypatch)
    result = loop.run_agent(store, sweep_id, function=writes_what_it_holds(seen_file))
    assert setups == [1]  # one wandb service for the agent's runs, started before them
    (run,) = store.runs(sweep_id)
    assert len(beats) >= 2  # the watch is not stuck waiting for the run's end
    assert Path(run.log_file).read_text() == "a function run says hello\n"
    seen = json.loads(seen_file.read_text())
    assert result.exit_code == 0 and run.state == "finished" and seen["run"] == run.id
    assert seen["pid"] != os.getpid()  # its own process
    assert not seen["guard_pipe"]  # the guard sees its pipe close when the agent dies
    ((pgid, token),) = RecordingGuard.watched
    assert pgid == seen["pid"] and token.startswith(f"{run.id}.")
    assert RecordingGuard.forgotten == [token]  # once the run ended


def test_a_forked_function_that_raises_is_a_failed_run_with_its_traceback(sweep):
    store, make = sweep
    sweep_id = make(values(i=[1]))

    def fails() -> None:
        raise ValueError("the learning rate is negative")

    result = loop.run_agent(store, sweep_id, function=fails)
    (run,) = store.runs(sweep_id)
    assert result.failed == 1 and run.state == "failed"
    assert run.error.rstrip().endswith("ValueError: the learning rate is negative")
    assert "Traceback" in run.error


@pytest.fixture
def fresh_fork_server(monkeypatch):
    """No fork server before the test (one started earlier has other modules loaded), and
    none left after it; the server's preload list as it was."""
    server = multiprocessing.forkserver._forkserver
    monkeypatch.setattr(server, "_preload_modules", list(server._preload_modules))
    server._stop()
    yield server
    server._stop()


def test_a_named_functions_runs_fork_from_a_server_that_imported_its_module_once(
    sweep, tmp_path, monkeypatch, fresh_fork_server
):
    """`module:attr`: each run forks from the warm fork server, which imported the module
    that defines the function (not only the package that names it), so no run pays for it."""
    store, make = sweep
    imports = tmp_path / "imports.txt"
    monkeypatch.setenv("SWEEPKIT_TEST_IMPORTS", str(imports))
    # Python 3.11 starts the server without this process's sys.path (gh-117378), from the
    # working directory: there, the project's root, `tests` is found (and so is what tools
    # that wrap the tests read there: mutmut's runs look for its pyproject.toml).
    monkeypatch.chdir(Path(__file__).parents[2])
    sweep_id = make(values(i=[1, 2]))
    result = loop.run_agent(store, sweep_id, function="tests.lazy_function:run")
    assert result.exit_code == 0  # the runs hold nothing of this process to close
    assert [r.state for r in store.runs(sweep_id)] == ["finished", "finished"]
    assert fresh_fork_server._preload_modules == [
        "__main__", "sweepkit.runner.child", "wandb", "tests.lazy_function",
        "tests.lazy_function.defined",
    ]  # fmt: skip
    records = [line.split() for line in imports.read_text().splitlines()]
    runs = [(int(pid), int(parent)) for what, pid, parent in (r for r in records if r[0] == "run")]
    imported_in = {int(r[1]) for r in records if r[0] == "import"} - {os.getpid()}
    server = fresh_fork_server._forkserver_pid
    assert [parent for _, parent in runs] == [server, server]  # each forked from the server
    assert len({pid for pid, _ in runs}) == 2
    assert imported_in == {server}  # there, once: no run imported it again


def test_a_sessions_function_that_cannot_be_imported_runs_in_this_process(
    sweep, monkeypatch, capsys
):
    store, make = sweep
    monkeypatch.setattr(target, "_interactive_session", lambda: True)
    sweep_id = make(values(i=[1, 2]))
    seen: list[tuple[str, int]] = []

    def function() -> None:
        seen.append((os.environ["WANDB_RUN_ID"], os.getpid()))
        if len(seen) == 2:
            raise ValueError("the second one fails")

    setups = counting_wandb_setups(monkeypatch)
    result = loop.run_agent(store, sweep_id, function=function)
    assert setups == []  # each in-process run tears wandb down: no shared service
    runs = sorted(store.runs(sweep_id), key=lambda r: r.created_at)
    assert [(r.id, os.getpid()) for r in runs] == seen  # here, in order, each with its own id
    assert [r.state for r in runs] == ["finished", "failed"] and result.failed == 1
    assert runs[1].error.rstrip().endswith("ValueError: the second one fails")
    assert (
        f"sweepkit: runs of {function.__qualname__} go in-process, as W&B's function agent runs "
        "them: it was defined in this interactive session, which cannot be forked from safely "
        "(define it in a module, or run a script, to give each run its own process)\n"
    ) in capsys.readouterr().err


def test_a_function_runs_metric_is_read_with_the_sweeps_goal(sweep, monkeypatch, capsys):
    store, make = sweep
    monkeypatch.setattr(loop, "HEARTBEAT_S", 30.0)  # no beat: the end records it all
    sweep_id = make(values(i=[1]), metric={"name": "acc", "goal": "maximize"})

    def function() -> None:
        import wandb

        with wandb.init() as run:
            run.define_metric("acc", summary="min,max")
            for acc in (0.1, 0.9, 0.5):
                run.log({"acc": acc})

    loop.run_agent(store, sweep_id, function=function)
    (run,) = store.runs(sweep_id)
    assert run.state == "finished"
    assert (run.metric_count, run.metric_value) == (3, 0.9)  # the max: the goal's aggregate
    assert run.summary["acc"]["max"] == 0.9  # its summary entry, as W&B's sweep reads it
    assert Path(run.run_dir).name.endswith(run.id) and Path(run.run_dir).is_dir()
    assert f"sweepkit: run {run.id} finished: acc=0.9\n" in capsys.readouterr().err


def test_a_metric_value_left_out_is_said_once_the_run_ended(sweep, monkeypatch, capsys):
    store, make = sweep
    sweep_id = make(values(i=[1]), metric={"name": "acc", "goal": "maximize"})

    def function() -> None:
        import wandb

        with wandb.init() as run:
            for acc in (0.1, float("nan"), 0.5):
                run.log({"acc": acc})

    loop.run_agent(store, sweep_id, function=function)
    (run,) = store.runs(sweep_id)
    assert (run.state, run.metric_count, run.metric_value) == ("finished", 2, 0.5)
    assert (
        f"sweepkit: run {run.id}: acc was logged 1 time(s) as NaN, inf or not a number: "
        "those values are left out\n"
    ) in capsys.readouterr().err


def test_a_function_run_is_handed_its_agents_wandb_service(tmp_path, monkeypatch):
    """The fork server started before the agent's service: the address reaches a run in its
    environment, or each run would start a service of its own."""
    sweep = types.SimpleNamespace(id="s1", project=None, entity=None)
    run = types.SimpleNamespace(id="r1", display_name="s1-1")
    monkeypatch.setenv("WANDB_SERVICE", "the-agents-service")
    env = workspace.run_environment(sweep, run, tmp_path, tmp_path / "config.yaml", "r1.token")
    assert env["WANDB_SERVICE"] == "the-agents-service"
    monkeypatch.delenv("WANDB_SERVICE")
    env = workspace.run_environment(sweep, run, tmp_path, tmp_path / "config.yaml", "r1.token")
    assert "WANDB_SERVICE" not in env


def test_what_a_run_left_running_is_ended_by_its_group_and_by_its_token(
    sweep, tmp_path, monkeypatch, capsys
):
    store, make = sweep
    monkeypatch.setattr(loop, "LEFTOVER_GRACE_S", 0.3)  # they ignore SIGTERM: then SIGKILL
    sweep_id = make(values(orphans=[str(tmp_path)]))
    loop.run_agent(store, sweep_id)
    (run,) = store.runs(sweep_id)
    assert run.state == "finished"
    assert f"run {run.id} left 2 process(es) running: ended them" in capsys.readouterr().err
    for name in ("in_group", "own_session"):
        pid = int((tmp_path / name).read_text())
        with pytest.raises(ProcessLookupError):  # ended, and reaped (by this process or init)
            deadline = time.monotonic() + DEADLINE_S
            while time.monotonic() < deadline:
                os.kill(pid, 0)
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
                if state == "Z":
                    raise ProcessLookupError
                time.sleep(0.02)


def test_a_runs_last_line_without_a_newline_is_relayed_when_it_ends(sweep, capsys):
    store, make = sweep
    sweep_id = make(values(tail=["the last words"]))
    loop.run_agent(store, sweep_id)
    assert "\nthe last words\n" in capsys.readouterr().err


def test_a_run_the_reaper_ended_first_keeps_that_end_and_the_agent_says_so(
    sweep, monkeypatch, capsys
):
    store, make = sweep
    sweep_id = make(values(i=[1]))
    monkeypatch.setattr(store, "finish_run", lambda *a, **k: False)  # the store's answer
    loop.run_agent(store, sweep_id, count=1)
    (run,) = store.runs(sweep_id)
    err = capsys.readouterr().err
    assert f"run {run.id} was reaped meanwhile (no heartbeat): its first end stands\n" in err


def test_retry_failed_runs_again_the_points_that_failed_before_the_agent_started(sweep):
    store, make = sweep
    sweep_id = make(values(code=["ok", "ok-2"]))
    failed = store.claim_run(sweep_id)
    store.finish_run(
        sweep_id, failed.id, state="failed", progress=None, summary={}, run_dir=None,
        error="exit code 3",
    )  # fmt: skip
    result = loop.run_agent(store, sweep_id, options=AgentOptions(retry_failed=True))
    assert (result.performed, result.exit_code) == (2, 0)
    runs = sorted(store.runs(sweep_id), key=lambda r: r.created_at)
    assert [(r.state, r.retry_of, r.config) for r in runs] == [
        ("failed", None, failed.config),
        ("finished", failed.id, failed.config),  # first: what failed before this agent
        ("finished", None, {"code": {"value": "ok-2"}}),
    ]
    assert result.interrupted is False and result.preempted is False  # bools, not just falsy


def test_without_retry_failed_a_failed_point_stays_failed(sweep):
    store, make = sweep
    sweep_id = make(values(code=["ok", "ok-2"]))
    failed = store.claim_run(sweep_id)
    store.finish_run(
        sweep_id, failed.id, state="failed", progress=None, summary={}, run_dir=None
    )  # fmt: skip
    assert loop.run_agent(store, sweep_id).performed == 1
    assert [r.retry_of for r in store.runs(sweep_id)] == [None, None]


def test_a_run_logs_under_the_agents_wandb_dir_not_its_working_directory(
    sweep, tmp_path, monkeypatch
):
    store, make = sweep
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.setenv("WANDB_DIR", str(elsewhere))
    env_file = tmp_path / "env.json"
    sweep_id = make(values(env=[str(env_file)]))
    loop.run_agent(store, sweep_id)
    (run,) = store.runs(sweep_id)
    assert json.loads(env_file.read_text())["WANDB_DIR"] == str(elsewhere)
    assert run.wandb_dir == str(elsewhere)  # where the reaper looks for its folder


class OffTerminal(loop.LiveLines):
    def __init__(self) -> None:
        super().__init__(enabled=False)


def test_off_a_terminal_the_agent_never_reads_the_sweep_for_a_live_line(sweep, monkeypatch):
    store, make = sweep
    monkeypatch.setattr(loop, "LiveLines", OffTerminal)
    sweep_id = make(values(code=["0", "ok"]))
    reads: list[str] = []
    loop.run_agent(store, sweep_id, count=2, sweep_info=lambda: reads.append("read"))
    assert reads == []  # each read is a store query, per run and per wait


class SessionTrainer:
    """A callable made in a notebook: an object, with no __qualname__ of its own."""

    def __call__(self) -> None:
        pass

    def __repr__(self) -> str:
        return "<the session's trainer>"


def test_an_in_process_callable_without_a_qualname_is_named_by_its_repr(monkeypatch, capsys):
    trainer = SessionTrainer()
    monkeypatch.setattr(process, "place", lambda function: (target.IN_PROCESS, function))
    process.Executor({"method": "grid", "parameters": values(i=[1])}, trainer)
    assert "sweepkit: runs of <the session's trainer> go in-process" in capsys.readouterr().err


def test_crash_grace_is_how_long_the_agent_waits_on_a_silent_run_before_offering_it_again(sweep):
    store, make = sweep
    sweep_id = make(values(code=["ok", "ok-2"]))
    abandoned = store.claim_run(sweep_id)  # its agent died: no beat will come
    options = AgentOptions(crash_grace_s=0.0)  # no grace: silent now is crashed
    assert loop.run_agent(store, sweep_id, count=1, options=options).performed == 1
    runs = {r.id: r for r in store.runs(sweep_id)}
    assert runs[abandoned.id].state == "crashed"
    (again,) = [r for r in runs.values() if r.id != abandoned.id]
    assert (again.retry_of, again.config, again.state) == (
        abandoned.id,
        abandoned.config,
        "finished",
    )


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (
            "Traceback (most recent call last):\n  File 'x'\nValueError: lr < 0\n",
            "ValueError: lr < 0",
        ),
        (None, "unknown error"),
        ("\n", "unknown error"),
    ],
)
def test_giving_up_names_the_last_line_of_the_last_runs_error(sweep, monkeypatch, error, said):
    from sweepkit.core.lifecycle import Ending, RunState

    store, make = sweep
    sweep_id = make(values(code=["1", "2"]))
    monkeypatch.setattr(loop._Agent, "perform", lambda self, run: Ending(RunState.FAILED, error))
    result = loop.run_agent(store, sweep_id, options=AgentOptions(max_failures=1))
    assert result.gave_up == f"1 runs failed in a row; the last: {said}"
