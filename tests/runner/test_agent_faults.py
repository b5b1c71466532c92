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

import pytest

from sweepkit.guard import GRACE_S
from tests.helpers.cli import create, status, sweepkit
from tests.helpers.grids import GRID_3_YAML
from tests.helpers.processes import none_left, tagged_processes, wait_for_file, wait_for_running
from tests.helpers.sqlite_lock import lock_held


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


@pytest.mark.slow
def test_a_run_that_finished_as_its_agent_died_is_recorded_finished_not_run_again(workdir):
    sweep_id = create(workdir, GRID_3_YAML)
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
    sweep_id = create(workdir, GRID_3_YAML)
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
    sweep_id = create(workdir, GRID_3_YAML)
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
    sweep_id = create(workdir, GRID_3_YAML)
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


def test_processes_a_run_leaves_behind_end_with_it(workdir):
    sweep_id = create(workdir, GRID_3_YAML.replace("[1.0, 2.0, 3.0]", "[1.0]"))
    result = sweepkit("agent", sweep_id, "-f", "tests.sweep_functions:leaves_children", cwd=workdir)
    assert result.returncode == 0, result.stderr
    # The run, its `sleep` and its `setsid sleep`: the two children were still there.
    assert "left 2 process(es) running: ended them" in result.stderr
    assert not tagged_processes()


@pytest.mark.slow
def test_a_run_that_ignores_sigterm_and_its_children_die_with_a_sigkilled_agent(workdir):
    sweep_id = create(workdir, GRID_3_YAML)
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
    sweep_id = create(workdir, GRID_3_YAML)
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


@pytest.mark.slow
def test_a_damaged_store_is_one_error_line_for_every_command(workdir):
    sweep_id = create(workdir, GRID_3_YAML)
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
    sweep_id = create(workdir, GRID_3_YAML)
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
    sweep_id = create(workdir, GRID_3_YAML)
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
    sweep_id = create(workdir, GRID_3_YAML)
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


@pytest.mark.slow
def test_a_function_raising_keyboardinterrupt_fails_with_one_traceback(workdir):
    sweep_id = create(workdir, GRID_3_YAML.replace("[1.0, 2.0, 3.0]", "[1.0]"))
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
    sweep_id = create(workdir, GRID_3_YAML.replace("[1.0, 2.0, 3.0]", "[1.0]"))
    result = sweepkit("agent", sweep_id, "-f", f"tests.sweep_functions:{function}", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert said in result.stderr
    (run,) = status(workdir, sweep_id)["runs"]
    assert (run["state"], run["metric"]) == ("finished", metric)
