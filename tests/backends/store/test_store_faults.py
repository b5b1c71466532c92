"""Faults of a networked store, with real agent processes and a real PostgreSQL server: the
server restarted mid-sweep, a connection killed in the middle of a claim, the server
unreachable at start, and a run that ends while the server is away.

Agents reconnect with back-off and say so in one line each way; no claim is half-done or
done twice; a run that finished while the store was away is recorded when it comes back.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.helpers.cli import create, status

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
GRID = (
    "method: grid\nmetric: {name: loss, goal: minimize}\nparameters:\n  x: {values: [1, 2, 3, 4]}\n"
)
LOST = "is unreachable"
BACK = "is back after"


class Agent:
    """`sweepkit agent` as a process whose stderr lines are collected as they come."""

    def __init__(
        self, workdir: Path, sweep_id: str, function: str = "gated", options: tuple[str, ...] = ()
    ) -> None:
        self.process = subprocess.Popen(
            ["sweepkit", "agent", sweep_id, "-f", f"tests.sweep_functions:{function}", *options],
            cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))

    def said(self, fragment: str) -> list[str]:
        return [line for line in self.lines if fragment in line]

    def wait_said(self, fragment: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout  # a hang guard
        while not self.said(fragment):
            assert self.process.poll() is None or self._reader.is_alive(), self.lines
            assert time.monotonic() < deadline, f"never said {fragment!r}: {self.lines}"
            time.sleep(0.1)

    def finish(self, timeout: float = 300) -> int:
        code = self.process.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return code


@pytest.fixture
def gates(pg_workdir, monkeypatch) -> Path:
    folder = pg_workdir / "gates"
    folder.mkdir()
    monkeypatch.setenv("SWEEPKIT_TEST_GATES", str(folder))
    return folder


@pytest.fixture
def pg_workdir(workdir, postgres_url, monkeypatch):
    monkeypatch.setenv("SWEEPKIT_STORE", postgres_url)
    return workdir


@pytest.fixture
def server(postgres_server):
    """The session's server, running again after the test whatever the test did to it."""
    yield postgres_server
    if not _running(postgres_server):
        postgres_server.resume()


def _running(server) -> bool:
    try:
        server.admin("SELECT 1")
    except Exception:
        return False
    return True


def wait_for(path: Path, agent: Agent, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout  # a hang guard
    while not path.exists():
        assert agent.process.poll() is None, agent.lines
        assert time.monotonic() < deadline, f"{path.name} never appeared: {agent.lines}"
        time.sleep(0.1)


def release_all(gates: Path) -> None:
    for x in (1, 2, 3, 4):
        (gates / f"release-{x}").touch()


def assert_each_point_finished_once(workdir: Path, sweep_id: str) -> None:
    info = status(workdir, sweep_id)
    assert info["state"] == "finished", info
    assert sorted((r["config"]["x"], r["state"]) for r in info["runs"]) == [
        (x, "finished") for x in (1, 2, 3, 4)
    ]
    assert all(r["metric"] == r["config"]["x"] for r in info["runs"])


def test_a_server_restarted_mid_sweep_is_reconnected_to_and_the_sweep_ends(
    pg_workdir, gates, server
):
    sweep_id = create(pg_workdir, GRID)
    agents = [Agent(pg_workdir, sweep_id) for _ in range(2)]
    wait_for(gates / "started-1", agents[0])
    wait_for(gates / "started-2", agents[0])
    server.restart()  # pg_ctl -m fast restart: both agents' connections are cut
    release_all(gates)
    assert [a.finish() for a in agents] == [0, 0], [a.lines for a in agents]
    for agent in agents:  # each said it once each way
        assert len(agent.said(LOST)) == len(agent.said(BACK)) >= 1, agent.lines
        assert all(line.count("\n") == 0 for line in agent.said(LOST))
    assert_each_point_finished_once(pg_workdir, sweep_id)


def test_a_connection_killed_in_the_middle_of_a_claim_leaves_no_half_claim(
    pg_workdir, gates, server, postgres_url
):
    import psycopg

    sweep_id = create(pg_workdir, GRID)
    release_all(gates)
    with psycopg.connect(
        postgres_url
    ) as holder:  # holds the sweep's row: the agent's claim waits on it
        holder.execute("SELECT id FROM sweeps WHERE id = %s FOR UPDATE", (sweep_id,))
        agent = Agent(pg_workdir, sweep_id)
        deadline = time.monotonic() + 180
        waiting = []
        while not waiting:  # the agent is inside its claim transaction, waiting for the lock
            assert time.monotonic() < deadline and agent.process.poll() is None, agent.lines
            waiting = server.admin(
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'sweepkit'"
                " AND wait_event_type = 'Lock' AND query LIKE %s", "%FOR UPDATE%",
            )  # fmt: skip
            time.sleep(0.1)
        assert server.admin("SELECT pg_terminate_backend(%s)", waiting[0][0]) == [(True,)]
        agent.wait_said(LOST)
        rows = holder.execute("SELECT count(*) FROM runs").fetchone()
        assert rows == (0,)  # the killed claim left nothing
    assert agent.finish() == 0, agent.lines
    agent.wait_said(BACK)
    assert_each_point_finished_once(pg_workdir, sweep_id)


def test_a_server_unreachable_at_start_is_waited_for(pg_workdir, gates, server):
    sweep_id = create(pg_workdir, GRID)
    release_all(gates)
    server.stop()
    agent = Agent(pg_workdir, sweep_id)
    agent.wait_said(LOST)
    (line,) = agent.said(LOST)
    assert "reconnecting with back-off" in line
    server.resume()
    assert agent.finish() == 0, agent.lines
    assert len(agent.said(BACK)) == 1
    assert_each_point_finished_once(pg_workdir, sweep_id)


def test_a_run_that_ends_while_the_server_is_away_is_recorded_when_it_is_back(
    pg_workdir, gates, server
):
    sweep_id = create(pg_workdir, GRID)
    agent = Agent(pg_workdir, sweep_id)
    wait_for(gates / "started-1", agent)
    server.stop()
    agent.wait_said(LOST)  # its heartbeat found the server gone
    (gates / "release-1").touch()
    wait_for(gates / "done-1", agent)  # the run ended while the store was away
    server.resume()
    for x in (2, 3, 4):
        (gates / f"release-{x}").touch()
    assert agent.finish() == 0, agent.lines
    assert_each_point_finished_once(pg_workdir, sweep_id)


def test_sigterm_while_the_server_is_away_stops_the_agent_and_its_run_is_offered_again(
    pg_workdir, gates, server, monkeypatch
):
    # Slurm preempting a task whose store is away: SIGKILL follows in seconds, so the agent
    # must not wait out the store's patience (made an hour here: that wait would be a hang).
    monkeypatch.setenv("SWEEPKIT_STORE_PATIENCE", "3600")
    sweep_id = create(pg_workdir, GRID)
    agent = Agent(pg_workdir, sweep_id)
    wait_for(gates / "started-1", agent)
    server.stop()
    agent.wait_said(LOST)  # its heartbeat found the server gone
    agent.process.send_signal(signal.SIGTERM)
    assert agent.finish(timeout=60) == 143, agent.lines
    (line,) = [line for line in agent.lines if line.startswith("error:")]
    assert "told to stop while the sweep store" in line and "offers it again" in line
    assert not (gates / "done-1").exists()  # its run was ended with it, not left going
    server.resume()
    release_all(gates)
    # The next agent reaps the run left `running` and offers its point again.
    second = Agent(pg_workdir, sweep_id, options=("--crash-grace", "5"))
    assert second.finish() == 0, second.lines
    runs = status(pg_workdir, sweep_id)["runs"]
    assert sorted((r["config"]["x"], r["state"]) for r in runs) == [
        (1, "crashed"), (1, "finished"), (2, "finished"), (3, "finished"), (4, "finished")
    ]  # fmt: skip
