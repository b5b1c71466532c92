"""Signals at the moments that used to go wrong, with real agents, process groups and locks.

A terminal's Ctrl-C reaches every process of its foreground process group: each agent here
runs in a session of its own, and the tests signal that whole group, as a terminal would.
Every wait is on an event (a line, a file, a state in the store), never on the clock.
"""

from __future__ import annotations

import os
import queue
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.helpers.cli import create, status
from tests.helpers.grids import GRID_2_YAML, GRID_3_YAML
from tests.helpers.processes import tagged_processes, wait_for_running
from tests.helpers.sqlite_lock import lock_held


class Agent:
    """`sweepkit agent` in a session of its own, its stderr read line by line as it comes."""

    def __init__(self, workdir: Path, sweep_id: str, *flags: str) -> None:
        self.process = subprocess.Popen(
            ["sweepkit", "agent", sweep_id, *flags], cwd=workdir, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.lines: queue.Queue[str] = queue.Queue()
        self.said: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.put(line.rstrip("\n"))

    def wait_for_line(self, fragment: str, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                assert self.process.poll() is None, "\n".join(self.said)
                continue
            self.said.append(line)
            if fragment in line:
                return line
        raise AssertionError(f"no line with {fragment!r}:\n" + "\n".join(self.said))

    def ctrl_c(self) -> None:
        os.killpg(self.process.pid, signal.SIGINT)  # what the terminal does

    def finish(self, timeout: float = 120) -> tuple[int, str]:
        code = self.process.wait(timeout=timeout)
        self._reader.join(timeout=30)  # until the agent's stderr is closed: every line read
        while not self.lines.empty():
            self.said.append(self.lines.get())
        return code, "\n".join(self.said)


@pytest.mark.slow
def test_ctrl_c_while_the_fork_server_imports_finishes_the_run_then_stops(workdir):
    """The fork server imports the user's module while the first run waits for it: a Ctrl-C
    then is the agent's (finish the run, then stop), not a KeyboardInterrupt in the server."""
    (workdir / "slow_import.py").write_text(
        "import os, sys, time\n"
        "from pathlib import Path\n"
        "if any('multiprocessing.forkserver' in arg for arg in sys.orig_argv):\n"
        "    Path('server-importing').write_text(str(os.getpid()))\n"
        "    while not Path('go').exists():\n"
        "        time.sleep(0.05)\n"
        "from tests.sweep_functions import quadratic as train\n"
    )
    sweep_id = create(workdir, GRID_2_YAML)
    agent = Agent(workdir, sweep_id, "-f", "slow_import:train")
    agent.wait_for_line(" started: ")  # claimed; its process waits for the importing server
    while not (workdir / "server-importing").exists():
        assert agent.process.poll() is None
        time.sleep(0.05)
    agent.ctrl_c()
    agent.wait_for_line("finishing the current run, then stopping")
    (workdir / "go").touch()
    code, said = agent.finish()
    assert code == 130, said
    assert "Traceback" not in said and "interrupted" not in said, said
    info = status(workdir, sweep_id)
    assert info["counts"] == {"finished": 1}, said  # the run finished; no second one started
    assert not tagged_processes()


@pytest.mark.slow
def test_ctrl_c_twice_stops_the_run_and_says_so_in_one_line(workdir):
    sweep_id = create(workdir, GRID_2_YAML)
    agent = Agent(workdir, sweep_id, "-f", "tests.sweep_functions:hangs_until_stopped")
    wait_for_running(workdir, sweep_id, 1)
    agent.ctrl_c()
    agent.wait_for_line("finishing the current run, then stopping")
    agent.ctrl_c()
    code, said = agent.finish()
    assert code == 130, said
    assert "Traceback" not in said and "RunStopped" not in said, said
    lines = said.splitlines()
    assert any(line.endswith(": stopped by Ctrl-C") and "sweepkit: run " in line for line in lines)
    assert "sweepkit: stopped by Ctrl-C" in lines, said  # the run's own line: what stopped it
    (run,) = status(workdir, sweep_id)["runs"]
    assert (run["state"], run["error"]) == ("killed", "stopped by Ctrl-C")
    assert not tagged_processes()


def _heartbeat_age(store: Path) -> float:
    with sqlite3.connect(store) as db:  # WAL: a reader never waits for the writer's lock
        (beat,) = db.execute(
            "SELECT MAX(heartbeat_at) FROM runs WHERE state = 'running'"
        ).fetchone()
    return time.time() - beat


@pytest.mark.slow
def test_sigterm_while_another_process_holds_the_sqlite_lock_stops_the_agent_at_once(workdir):
    from sweepkit.runner.loop import HEARTBEAT_S

    sweep_id = create(workdir, GRID_3_YAML)
    store = workdir / ".sweepkit" / "sweeps.db"
    agent = Agent(workdir, sweep_id, "--crash-grace", "5", "-f",
                  "tests.sweep_functions:runs_until_released")  # fmt: skip
    wait_for_running(workdir, sweep_id, 1)
    with lock_held(store):
        # The agent's next beat waits for the lock: its last one grows old.
        while _heartbeat_age(store) < 2 * HEARTBEAT_S:
            assert agent.process.poll() is None
            time.sleep(0.1)
        agent.process.send_signal(signal.SIGTERM)  # Slurm's preemption: seconds to go
        signalled = time.monotonic()
        code, said = agent.finish(timeout=60)
        took = time.monotonic() - signalled
        assert code == 143, said
        # Before, it waited for the lock (here: for ever). Now: a lock slice, then the run's end.
        assert took < 15, f"{took:.1f} s"
        last = said.splitlines()[-1]
        assert last.startswith("error: told to stop while the sweep store") and "locked" in last
        assert "Traceback" not in said
        assert not tagged_processes()  # the run ended with its agent
    # The next agent reaps the run left `running` and offers its point again.
    (workdir / "release").touch()
    result = subprocess.run(
        ["sweepkit", "agent", sweep_id, "--crash-grace", "5", "-f",
         "tests.sweep_functions:quadratic"], cwd=workdir, capture_output=True, text=True,
        timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    runs = status(workdir, sweep_id)["runs"]
    assert sorted(r["config"]["x"] for r in runs if r["state"] == "finished") == [1.0, 2.0, 3.0]
    assert [r["state"] for r in runs if r["state"] != "finished"] == ["crashed"]


@pytest.mark.slow
def test_a_store_on_a_read_only_filesystem_says_so_and_what_to_do(workdir):
    """A read-only mount, in a mount namespace of its own (root can write any file a mode
    forbids; a read-only filesystem refuses even root)."""
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a mount namespace here: {probe.stderr.decode().strip()}")
    sweep = workdir / "sweep.yaml"
    sweep.write_text(GRID_2_YAML)
    mount = workdir / "ro"
    mount.mkdir()
    script = (
        f"mount -t tmpfs tmpfs {mount} && sweepkit create {sweep} --store {mount}/s.db "
        f">/dev/null 2>&1 && mount -o remount,ro {mount} && "
        f"sweepkit create {sweep} --store {mount}/s.db"
    )
    result = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True)
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: cannot use {mount}/s.db as a sweep store: ")
    assert f"{mount}/s.db cannot be written (read-only)" in last and "--store" in last, last
    assert "Traceback" not in result.stderr
