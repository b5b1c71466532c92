"""A run's life under faults: every point ends with exactly one result, and none is lost silently.

Real agents, real signals: a run's function kills its own agent at the moment
under test (between the run's end and its record, or mid-run), SIGTERM
preempts an agent, and a new agent (or `sweepkit cancel`) reaps what was left.
"""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from sweepkit.backends.store import open_store
from sweepkit.core.lifecycle import Ending, InvalidMove, RunState, check_move
from sweepkit.guard import GRACE_S
from sweepkit.runner.reaper import LostRun, judge_lost_run, reap
from tests.logged import logged
from tests.sqlite_lock import lock_held
from tests.test_cli import sweepkit
from tests.test_follow import write_run
from tests.test_launch import tagged_processes, wait_for_running
from tests.test_launch import workdir as workdir
from tests.test_sweep_cli import create, status

GRID_3 = "method: grid\nmetric: {name: loss, goal: minimize}\nparameters:\n  x: {values: [1.0, 2.0, 3.0]}\n"


def agent(workdir, sweep_id: str, *flags: str) -> subprocess.Popen:
    return subprocess.Popen(
        ["sweepkit", "agent", sweep_id, "--crash-grace", "5", *flags],
        cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def finish(process: subprocess.Popen, timeout: float = 240) -> tuple[int, str]:
    _, err = process.communicate(timeout=timeout)
    return process.returncode, err


def points(info: dict) -> list[tuple[float, str]]:
    return sorted((r["config"]["x"], r["state"]) for r in info["runs"])


def none_left(timeout: float) -> list[int]:
    """Wait until no process of this test is left (all carry its tag); return those left."""
    deadline = time.monotonic() + timeout
    while (left := tagged_processes()) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def wait_for_file(path: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.2)


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


# The reaper's verdict on a run whose agent died, read from the run's own log -----------------

LOST = "no heartbeat for 5 s: its agent died"


def log_acc(run):
    run.define_metric("acc", summary="min,max")
    for value in (0.2, 0.9, 0.5):
        run.log({"acc": value})


def lost_run(root: Path, exit_code: int) -> tuple[str, str]:
    """A real wandb run that ended with `exit_code` under `root`: (its id, its folder)."""
    path = Path(write_run(root, log_acc, exit_code))
    return path.stem.removeprefix("run-"), str(path.parent)


@pytest.mark.parametrize("where", [None, "", "nosuch"])
def test_a_run_with_no_folder_to_read_is_crashed(tmp_path, where):
    wandb_dir = str(tmp_path / where) if where else where
    assert judge_lost_run(wandb_dir, "abc", "acc", "maximize", 5.0) == LostRun(
        Ending(RunState.CRASHED, LOST), None, None
    )


@pytest.mark.parametrize(("goal", "value"), [("maximize", 0.9), ("minimize", 0.2)])
def test_a_run_whose_log_has_a_clean_exit_is_finished_with_its_metric(tmp_path, goal, value):
    run_id, run_dir = lost_run(tmp_path, exit_code=0)
    verdict = judge_lost_run(str(tmp_path), run_id, "acc", goal, 5.0)
    assert (verdict.ending, verdict.run_dir) == (Ending(RunState.FINISHED), run_dir)
    progress = verdict.progress
    assert (progress.count, progress.minimum, progress.maximum, progress.last) == (3, 0.2, 0.9, 0.5)
    assert progress.value == value  # the summary aggregate the goal asks for


def test_a_run_that_exited_non_zero_is_crashed_with_what_it_logged(tmp_path):
    run_id, run_dir = lost_run(tmp_path, exit_code=1)
    verdict = judge_lost_run(str(tmp_path), run_id, "acc", "maximize", 2.5)
    assert (verdict.ending, verdict.run_dir) == (
        Ending(RunState.CRASHED, "no heartbeat for 2.5 s: its agent died"), run_dir,
    )  # fmt: skip
    assert verdict.progress.count == 3
    # Without a sweep metric there is no progress to read; a run never started has no folder.
    assert judge_lost_run(str(tmp_path), run_id, None, "maximize", 5).progress is None
    never_started = judge_lost_run(str(tmp_path), "other", "acc", "maximize", 5)
    assert (never_started.ending, never_started.run_dir) == (Ending(RunState.CRASHED, LOST), None)
    assert never_started.progress.count == 0


@pytest.mark.parametrize(("goal", "value"), [("maximize", 0.9), ("minimize", 0.2), (None, 0.2)])
def test_the_reaper_finishes_a_lost_run_from_its_log_with_the_sweeps_metric(
    store_location, tmp_path, goal, value
):
    store = open_store(store_location)
    metric = {"name": "acc", "goal": goal} if goal else {"name": "acc"}
    sweep_id = store.create_sweep(
        {"method": "grid", "metric": metric, "parameters": {"x": {"values": [1, 2]}}}
    )
    run = store.claim_run(sweep_id, wandb_dir=tmp_path)
    run_dir = str(Path(write_run(tmp_path, log_acc, 0, run_id=run.id)).parent)
    assert reap(store, sweep_id, crash_grace_s=0.0) == [(run.id, "finished")]
    (stored,) = store.runs(sweep_id)
    assert (stored.state, stored.run_dir, stored.error) == ("finished", run_dir, None)
    assert (stored.metric_count, stored.metric_value) == (3, value)  # as the goal reads it


def test_a_run_whose_agent_beats_while_the_reaper_reads_its_log_is_left_running(
    store_location, monkeypatch
):
    import sweepkit.runner.reaper as reaper

    store = open_store(store_location)
    sweep_id = store.create_sweep({"method": "grid", "parameters": {"x": {"values": [1, 2]}}})
    run = store.claim_run(sweep_id)
    judge = reaper.judge_lost_run

    def judged_while_it_beats(*args):
        verdict = judge(*args)
        store.heartbeat(sweep_id, run.id)  # its agent was only stalled: it beats meanwhile
        return verdict

    monkeypatch.setattr(reaper, "judge_lost_run", judged_while_it_beats)
    assert reap(store, sweep_id, crash_grace_s=0.0) == []
    assert store.runs(sweep_id)[0].state == "running"


def test_a_run_is_recorded_once_even_if_the_reaper_and_its_agent_race(store_location):
    store = open_store(store_location)
    sweep_id = store.create_sweep({"method": "grid", "parameters": {"x": {"values": [1, 2]}}})
    run = store.claim_run(sweep_id)
    assert reap(store, sweep_id, crash_grace_s=0.0) == [(run.id, "crashed")]  # no folder: crashed
    assert not store.finish_run(  # its agent, back too late, records nothing over it
        sweep_id, run.id, state="finished", progress=logged([1.0]), summary={}, run_dir=None
    )
    assert reap(store, sweep_id, crash_grace_s=0.0) == []


@pytest.mark.slow
def test_a_run_that_finished_as_its_agent_died_is_recorded_finished_not_run_again(workdir):
    sweep_id = create(workdir, GRID_3)
    first = agent(workdir, sweep_id, "-f", "tests.sweep_functions:finishes_then_kills_its_agent")
    code, _ = finish(first)
    assert code == -signal.SIGKILL  # died after its first run ended, before recording it
    code, err = finish(agent(workdir, sweep_id, "-f", "tests.sweep_functions:quadratic"))
    assert code == 0, err
    info = status(workdir, sweep_id)
    # x=1.0 was recorded from its own log (finished, loss 1.0): no crash, no second run.
    assert points(info) == [(1.0, "finished"), (2.0, "finished"), (3.0, "finished")]
    assert next(r for r in info["runs"] if r["config"]["x"] == 1.0)["metric"] == 1.0
    assert info["state"] == "finished"


@pytest.mark.slow
def test_a_point_whose_retries_are_spent_is_not_lost_silently(workdir):
    sweep_id = create(workdir, GRID_3)
    first = agent(workdir, sweep_id, "-f", "tests.sweep_functions:kills_its_agent_at_x_1")
    assert finish(first)[0] == -signal.SIGKILL
    second = agent(workdir, sweep_id, "-f", "tests.sweep_functions:quadratic", "--retries", "0")
    code, err = finish(second)
    assert code == 1, err  # a point has no result: the exit code says so
    assert "1 point(s) of the sweep have no result (1 crashed past their retries)" in err
    info = status(workdir, sweep_id)
    assert info["state"] == "running" and info["unfinished"] == {"crashed": 1}

    code, err = finish(
        agent(workdir, sweep_id, "-f", "tests.sweep_functions:quadratic", "--retry-failed")
    )
    assert code == 0, err
    info = status(workdir, sweep_id)
    assert info["state"] == "finished" and info["unfinished"] == {}
    assert points(info) == [
        (1.0, "crashed"),
        (1.0, "finished"),
        (2.0, "finished"),
        (3.0, "finished"),
    ]


@pytest.mark.slow
def test_sigterm_preempts_the_run_and_its_point_is_run_again(workdir):
    sweep_id = create(workdir, GRID_3)
    first = agent(workdir, sweep_id, "-f", "tests.sweep_functions:runs_until_released")
    wait_for_running(workdir, sweep_id, 1)
    first.send_signal(signal.SIGTERM)  # SLURM preemption, docker stop, timeout: mid-run
    code, err = finish(first)
    assert code == 143, err
    assert "preempted" in err and "Ctrl-C" not in err
    (run,) = status(workdir, sweep_id)["runs"]
    assert run["state"] == "preempted"

    code, err = finish(agent(workdir, sweep_id, "-f", "tests.sweep_functions:quadratic"))
    assert code == 0, err
    assert points(status(workdir, sweep_id)) == [
        (1.0, "finished"), (1.0, "preempted"), (2.0, "finished"), (3.0, "finished"),
    ]  # fmt: skip


@pytest.mark.slow
def test_cancel_reaps_the_runs_whose_agents_died(workdir):
    sweep_id = create(workdir, GRID_3)
    first = agent(workdir, sweep_id, "-f", "tests.sweep_functions:runs_until_released")
    wait_for_running(workdir, sweep_id, 1)
    first.kill()
    first.wait()
    time.sleep(6)  # past the crash grace given below
    result = sweepkit("cancel", sweep_id, "--crash-grace", "5", cwd=workdir)
    assert result.returncode == 0, result.stderr
    (run,) = status(workdir, sweep_id)["runs"]
    assert run["state"] == "crashed"  # not `running` forever


@pytest.mark.slow
def test_sys_exit_0_in_a_function_is_a_finished_run(workdir):
    sweep_id = create(
        workdir, "method: grid\nmetric: {name: loss}\nparameters:\n  x: {values: [1.0]}\n"
    )
    result = sweepkit("agent", sweep_id, "-f", "tests.sweep_functions:exits_zero", cwd=workdir)
    assert result.returncode == 0, result.stderr
    (run,) = status(workdir, sweep_id)["runs"]
    assert run["state"] == "finished" and run["metric"] == 1.0


def test_run_cap_counts_points_not_their_retries(store_location):
    store = open_store(store_location)
    sweep_id = store.create_sweep(
        {"method": "random", "run_cap": 3, "parameters": {"x": {"min": 0.0, "max": 1.0}}}
    )
    crashed = store.claim_run(sweep_id)
    reap(store, sweep_id, crash_grace_s=0.0)
    claimed = []
    while (run := store.claim_run(sweep_id)) is not None:
        claimed.append(run.config)
        store.finish_run(
            sweep_id, run.id, state="finished", progress=None, summary={}, run_dir=None
        )
    assert claimed[0] == crashed.config  # the crashed point again, first
    assert len(claimed) == 3  # then two more points: three in all


# Nothing outlives its run, and no run its agent ----------------------------------------------


def test_processes_a_run_leaves_behind_end_with_it(workdir):
    sweep_id = create(workdir, GRID_3.replace("[1.0, 2.0, 3.0]", "[1.0]"))
    result = sweepkit("agent", sweep_id, "-f", "tests.sweep_functions:leaves_children", cwd=workdir)
    assert result.returncode == 0, result.stderr
    # The run, its `sleep` and its `setsid sleep`: the two children were still there.
    assert "left 2 process(es) running: ended them" in result.stderr
    assert not tagged_processes()


@pytest.mark.slow
def test_a_run_that_ignores_sigterm_and_its_children_die_with_a_sigkilled_agent(workdir):
    sweep_id = create(workdir, GRID_3)
    first = agent(workdir, sweep_id, "-f", "tests.sweep_functions:clings_on")
    wait_for_file(workdir / "pids-1.txt", first)
    run_pids = [int(p) for p in (workdir / "pids-1.txt").read_text().split()]
    first.kill()
    first.wait()
    # The kernel tells the run (it shrugs SIGTERM off); the agent's guard ends it all.
    assert none_left(GRACE_S + 20) == [], f"left behind of {run_pids}"


@pytest.mark.slow
def test_a_program_run_and_the_workers_it_started_end_when_the_sweep_is_canceled(workdir):
    # The shape of wandb/examples' cross-validation sweep: the program starts five workers.
    (workdir / "cross_validate.py").write_text(
        textwrap.dedent("""
        import multiprocessing, time, wandb

        def fold(i):
            time.sleep(300)

        if __name__ == "__main__":
            workers = [multiprocessing.Process(target=fold, args=(i,)) for i in range(5)]
            for worker in workers:
                worker.start()
            with wandb.init() as run:
                open("started", "w").close()
                while True:
                    run.log({"loss": 1.0})
                    time.sleep(0.5)
    """)
    )
    sweep_id = create(
        workdir, "program: cross_validate.py\nmethod: grid\nparameters:\n  x: {values: [1]}\n"
    )
    running = agent(workdir, sweep_id)
    wait_for_file(workdir / "started", running)
    assert sweepkit("cancel", sweep_id, cwd=workdir).returncode == 0
    code, err = finish(running)
    assert (status(workdir, sweep_id)["runs"][0]["state"], code) == ("killed", 0), err
    assert not tagged_processes()


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGHUP], ids=["SIGKILL", "SIGHUP"])
def test_workers_and_their_runs_stop_when_their_launcher_is_killed_or_hung_up(workdir, signum):
    sweep_id = create(workdir, GRID_3)
    launcher = subprocess.Popen(
        ["sweepkit", "agent", sweep_id, "--workers", "2", "-f", "tests.sweep_functions:hangs",
         "--crash-grace", "5"],
        cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    wait_for_running(workdir, sweep_id, 2)
    launcher.send_signal(signum)
    _, err = launcher.communicate(timeout=120)
    # A hang-up is passed on and waited for (the workers' exit code, 143); a SIGKILL cannot be.
    assert launcher.returncode == (-signal.SIGKILL if signum == signal.SIGKILL else 143), err
    assert none_left(60) == []
    # Each worker heard it (SIGTERM from the kernel, or the hang-up passed on) and said so.
    assert status(workdir, sweep_id)["counts"] == {"preempted": 2}


# Store failures after opening: one line, the runs left recoverable -------------------------


@pytest.mark.slow
def test_a_damaged_store_is_one_error_line_for_every_command(workdir):
    sweep_id = create(workdir, GRID_3)
    assert sweepkit("agent", sweep_id, "--count", "1", "-f", "tests.sweep_functions:quadratic",
                    cwd=workdir).returncode == 0  # fmt: skip
    path = workdir / ".sweepkit" / "sweeps.db"
    with sqlite3.connect(path) as db:  # everything into the main file, then damage the runs
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        (root,) = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'runs'").fetchone()
        (page_size,) = db.execute("PRAGMA page_size").fetchone()
    with path.open("r+b") as file:
        file.seek((root - 1) * page_size)
        file.write(b"\xff" * page_size)
    for command in (["status", sweep_id], ["agent", sweep_id], ["status"]):
        result = sweepkit(*command, cwd=workdir)
        assert result.returncode == 1, result.stderr
        (line,) = result.stderr.strip().splitlines()[-1:]
        assert line.startswith("error: the sweep store") and "malformed" in line, result.stderr
        assert "Traceback" not in result.stderr


def test_a_store_deleted_under_a_running_agent_stops_it_within_a_heartbeat(workdir):
    sweep_id = create(workdir, GRID_3)
    running = agent(workdir, sweep_id, "-f", "tests.sweep_functions:hangs")
    wait_for_running(workdir, sweep_id, 1)
    for path in (workdir / ".sweepkit").glob("sweeps.db*"):
        path.unlink()
    code, err = finish(running, timeout=30)  # a beat every 2 s, then the run's tree ends (<= 5 s)
    assert code == 1 and "was deleted or replaced while in use" in err.splitlines()[-1], err
    assert "Traceback" not in err
    assert not tagged_processes()


@pytest.mark.slow
def test_a_store_locked_by_another_process_is_waited_for_with_a_message(workdir):
    sweep_id = create(workdir, GRID_3)
    with lock_held(workdir / ".sweepkit" / "sweeps.db"):
        waiting = agent(workdir, sweep_id, "-f", "tests.sweep_functions:quadratic")
        said = waiting.stderr.readline()  # once the wait has gone unsaid for LOCK_WAIT_S
        assert "is locked by another process" in said and "waiting for it" in said, said
    code, err = finish(waiting)
    assert code == 0 and "is free again" in err, err
    assert status(workdir, sweep_id)["counts"] == {"finished": 3}


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MB tmpfs: a disk that can be filled (needs root, as CI has)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                          capture_output=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.slow
def test_a_full_disk_under_the_store_is_one_line_and_the_run_is_recovered(
    workdir, small_disk, monkeypatch
):
    monkeypatch.setenv("SWEEPKIT_STORE", str(small_disk / "sweeps.db"))
    sweep_id = create(workdir, GRID_3)
    running = agent(workdir, sweep_id, "-f", "tests.sweep_functions:hangs")
    wait_for_running(workdir, sweep_id, 1)
    filler = small_disk / "filler"
    with contextlib.suppress(OSError), filler.open("wb") as file:
        while True:
            file.write(b"\0" * 4096)
            file.flush()
    code, err = finish(running, timeout=60)  # the store's log grows at the next heartbeat
    assert code == 1 and "database or disk is full" in err.splitlines()[-1], err
    assert "free some disk space" in err and "Traceback" not in err
    filler.unlink()
    # The run it was watching is reaped by the next agent and its point run again.
    code, err = finish(agent(workdir, sweep_id, "-f", "tests.sweep_functions:quadratic"))
    assert code == 0, err
    states = sorted(r["state"] for r in status(workdir, sweep_id)["runs"])
    assert states == ["crashed", "finished", "finished", "finished"]


# What a run does, said as it is ----------------------------------------------------------------


@pytest.mark.slow
def test_a_function_raising_keyboardinterrupt_fails_with_one_traceback(workdir):
    sweep_id = create(workdir, GRID_3.replace("[1.0, 2.0, 3.0]", "[1.0]"))
    result = sweepkit("agent", sweep_id, "-f", "tests.sweep_functions:interrupts_itself",
                      cwd=workdir)  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.count("Traceback") == 1, result.stderr  # wandb's, as it left `with`
    (run,) = status(workdir, sweep_id)["runs"]
    assert run["state"] == "failed" and "KeyboardInterrupt" in run["error"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("function", "metric", "said"),
    [
        ("never_inits", None, "never called wandb.init: it logged nothing"),
        ("inits_twice", 1.0, "called wandb.init 2 times; the last run's metric counts"),
        ("logs_nan", 1.0, "loss was logged 2 time(s) as NaN, inf or not a number"),
    ],
)
def test_what_a_run_logged_oddly_is_said_and_counted_as_wandb_would(
    workdir, function, metric, said
):
    sweep_id = create(workdir, GRID_3.replace("[1.0, 2.0, 3.0]", "[1.0]"))
    result = sweepkit("agent", sweep_id, "-f", f"tests.sweep_functions:{function}", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert said in result.stderr
    (run,) = status(workdir, sweep_id)["runs"]
    assert (run["state"], run["metric"]) == ("finished", metric)
