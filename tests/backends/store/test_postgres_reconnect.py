"""The PostgreSQL store's waits for a lost server, in this process (where a mutation run sees
them), on the session's real server: a connection the server killed, a port where nothing
answers, a server that says no for good, a wait cut short by SIGTERM, patience run out.

tests/test_store_faults.py does the same with agent processes and a restarted server.
"""

from __future__ import annotations

import socket
import sys

import pytest

from sweepkit.backends.store import StoreError, open_store
from tests.helpers.grids import GRID_12

pytestmark = pytest.mark.postgres


@pytest.fixture
def notes(monkeypatch) -> list[str]:
    import sweepkit.backends.store.postgres as postgres

    said: list[str] = []
    monkeypatch.setattr(postgres, "note", said.append)
    monkeypatch.setattr(postgres, "BACKOFF_S", (0.01, 0.02))
    return said


def dead_port_url(url: str) -> str:
    """The same URL on a loopback port where nothing listens: every connect is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    host, rest = url.rsplit(":", 1)
    return f"{host}:{port}/{rest.split('/', 1)[1]}"


def test_a_connection_the_server_killed_is_replaced_and_said_once_each_way(
    postgres_url, postgres_server, notes
):
    store = open_store(postgres_url)
    sweep_id = store.create_sweep(GRID_12)
    (pid,) = store._transact(lambda c: c.execute("SELECT pg_backend_pid()").fetchone())
    (name,) = store._transact(
        lambda c: c.execute(
            "SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()"
        ).fetchone()
    )
    assert name == "sweepkit"  # what an operator sees in pg_stat_activity
    assert "connect_timeout=5" in store._conn.info.dsn  # an unanswering host is not waited on
    postgres_server.admin("SELECT pg_terminate_backend(%s)", pid)
    assert store.sweep(sweep_id).id == sweep_id  # on a new connection
    lost, back = notes
    assert lost.startswith(f"the sweep store {store.location} is unreachable (")
    assert lost.endswith("): reconnecting with back-off for up to 300 s")
    assert back.startswith(f"the sweep store {store.location} is back after ")
    assert back.endswith(" s: reconnected")
    waited = float(back.rsplit(" after ", 1)[1].split(" s:")[0])
    assert 0.0 <= waited < 60.0  # how long it was away, not a clock reading


def test_a_server_away_is_waited_for_with_back_off_until_it_answers(
    postgres_url, notes, monkeypatch
):
    import sweepkit.backends.store.postgres as postgres

    monkeypatch.setattr(postgres, "BACKOFF_S", (0.01, 0.02, 0.03))
    store = open_store(postgres_url)
    store.close()
    real, store._url = store._url, dead_port_url(postgres_url)
    waits: list[float] = []

    def back_off(seconds: float) -> bool:
        waits.append(seconds)
        if len(waits) == 4:
            store._url = real  # the server is back
        return True

    store._back_off = back_off
    assert store.sweeps() == []
    assert waits == [0.01, 0.02, 0.03, 0.03]  # the schedule step by step, then its last step
    assert len(notes) == 2 and "Connection refused" in notes[0]


def test_patience_run_out_is_one_line_that_says_what_to_do(postgres_url, notes):
    store = open_store(postgres_url)
    store.close()
    store._url, store._patience_s = dead_port_url(postgres_url), 0.0
    with pytest.raises(StoreError) as gave_up:
        store.sweeps()
    said = str(gave_up.value)
    assert said.startswith(f"the sweep store {store.location} has been unreachable for 0 s (")
    assert said.endswith(
        "start the agent again once the server is back (its run is reaped and offered again "
        "or finished from its log); SWEEPKIT_STORE_PATIENCE waits longer"
    )
    assert "Connection refused" in said  # what the driver said, its first line
    assert len(notes) == 1  # the wait's first line; no "back" line


def test_patience_comes_from_the_environment(postgres_url, monkeypatch):
    monkeypatch.setenv("SWEEPKIT_STORE_PATIENCE", "12.5")
    assert open_store(postgres_url)._patience_s == 12.5
    monkeypatch.setenv("SWEEPKIT_STORE_PATIENCE", "")
    assert open_store(postgres_url)._patience_s == 300.0


def test_told_to_stop_while_the_server_is_away_stops_at_once(postgres_url, notes):
    store = open_store(postgres_url)
    store.close()
    store._url = dead_port_url(postgres_url)
    store.stop_waiting = lambda: True  # the agent got SIGTERM
    with pytest.raises(StoreError) as stopped:
        store.sweeps()
    said = str(stopped.value)
    assert said.startswith(f"told to stop while the sweep store {store.location} is unreachable (")
    assert "Connection refused" in said
    assert said.endswith(
        "): stopping without it (the run going is left to the next agent, which reaps it and "
        "offers it again)"
    )


def test_back_off_sleeps_its_time_unless_told_to_stop(postgres_url):
    store = open_store(postgres_url)
    assert store._back_off(0.0) is True
    store.stop_waiting = lambda: True
    assert store._back_off(60.0) is False  # at once, not after a minute


class FakeClock:
    """time.monotonic and time.sleep for `_back_off`: what it sleeps, with no time spent."""

    def __init__(self):
        self.now, self.sleeps = 0.0, []  # from 0: five steps of 0.1 add up to 0.5 exactly

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0, "a sleep of nothing: the wait would spin"
        self.sleeps.append(seconds)
        self.now += seconds


def test_a_back_off_sleeps_in_steps_short_enough_to_hear_a_stop(postgres_url, monkeypatch):
    import sweepkit.backends.store.postgres as postgres

    clock = FakeClock()
    monkeypatch.setattr(postgres, "time", clock)
    store = open_store(postgres_url)
    assert store._back_off(0.5) is True
    assert clock.sleeps == pytest.approx([0.1] * 5)  # a signal's flag is seen within 0.1 s
    clock.sleeps.clear()
    store.stop_waiting = lambda: len(clock.sleeps) == 2  # SIGTERM during the third step
    assert store._back_off(8.0) is False and len(clock.sleeps) == 2


def test_without_psycopg_a_postgresql_store_says_how_to_get_it(monkeypatch):
    from sweepkit.backends.store.postgres import _driver

    monkeypatch.setitem(sys.modules, "psycopg", None)  # `import psycopg` raises ImportError
    with pytest.raises(StoreError) as missing:
        _driver()
    assert str(missing.value) == (
        "a PostgreSQL store needs psycopg: pip install 'sweepkit[postgres]'"
    )


def test_a_failure_without_words_is_named_by_its_type():
    from sweepkit.backends.store.postgres import _first_line

    assert _first_line(ConnectionError()) == "ConnectionError"
    assert _first_line(ValueError("first\nsecond")) == "first"


def test_a_server_that_says_no_for_good_is_not_waited_for(postgres_url, notes):
    store = open_store(postgres_url)
    store.close()
    store._url = postgres_url.rsplit("/", 1)[0] + "/no_such_database"
    with pytest.raises(StoreError, match=r"^cannot use the sweep store .*no_such_database"):
        store.sweeps()
    assert notes == []


def test_a_statement_the_server_refuses_is_one_line(postgres_url, notes):
    store = open_store(postgres_url)
    with pytest.raises(StoreError, match=r"^the sweep store .* failed: relation .*nothing"):
        store._transact(lambda c: c.execute("SELECT * FROM nothing"))
    assert notes == []


def test_keeping_a_grid_window_never_waits_for_a_claim_holding_the_sweep(postgres_url):
    # An agent works its window out and keeps it while another agent's claim holds the
    # sweep's row (FOR UPDATE): nothing of keeping it may lock that row (a foreign key's
    # check would, and wait for the claim to end).
    import threading

    import psycopg

    store = open_store(postgres_url)
    sweep_id = store.create_sweep(GRID_12)
    with psycopg.connect(postgres_url) as holder:
        holder.execute("SELECT id FROM sweeps WHERE id = %s FOR UPDATE", (sweep_id,))
        preparing = threading.Thread(target=store.prepare_claim, args=(sweep_id,), daemon=True)
        preparing.start()
        preparing.join(timeout=30)  # only against a hang: it takes milliseconds
        assert not preparing.is_alive(), "keeping the window waited for the sweep's row"
    (kept,) = store._transact(
        lambda c: c.execute("SELECT count(*) FROM grid_windows").fetchone(), write=False
    )
    assert kept == 1
