"""The store in a PostgreSQL database: agents on any number of machines share one sweep.

``--store postgresql://USER[:PASSWORD]@HOST:PORT/DB`` (psycopg 3, no ORM:
`pip install 'sweepkit[postgres]'`). The tables are made on first use. A
claim is one transaction that locks the sweep's row (`SELECT ... FOR
UPDATE`) while the engine suggests the next config (a random draw is made
before: it reads no runs), so claims of one sweep are serialised across
machines and no grid point is handed out twice; other sweeps, heartbeats and
run ends do not wait on it.

The server may go away (a restart, a failover, a network cut): a
transaction that fails because its connection was lost is rolled back by
the server, so it is run again whole on a new connection, with back-off,
said in one line when it starts and when the server is back. A claim and a
run's end know whether their first try landed (the claim's run id and the
end's time are chosen before the transaction), so nothing is done twice.
After `SWEEPKIT_STORE_PATIENCE` seconds (300) without the server the agent
stops with one line; its run is then left for the reaper. An agent told to
stop (SIGTERM, Ctrl-C twice) while the server is away stops at once, the
same way: a preempted Slurm task has seconds before SIGKILL.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sweepkit.backends.store.base import StoreError
from sweepkit.backends.store.location import redacted
from sweepkit.backends.store.sql import Cursor, SQLStore
from sweepkit.log import note

T = TypeVar("T")

PATIENCE_S = 300.0  # how long a lost server is waited for ($SWEEPKIT_STORE_PATIENCE)
BACKOFF_S = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)  # then every 8 s
CONNECT_TIMEOUT_S = 5
_MIGRATION_LOCK = 0x5_3EE9  # pg_advisory_xact_lock key: one process migrates at a time
# Failures that are the server saying no for good, not going away: said at once.
_FATAL = (
    "password authentication failed", "does not exist", "no pg_hba.conf entry",
    "permission denied", "invalid dsn", "invalid connection option", "invalid integer value",
)  # fmt: skip


def _driver() -> Any:
    try:
        import psycopg
    except ImportError as exc:
        raise StoreError(
            "a PostgreSQL store needs psycopg: pip install 'sweepkit[postgres]'"
        ) from exc
    return psycopg


class _QmarkCursor:
    """A psycopg cursor that takes the ``?`` placeholders the shared SQL is written with."""

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    def execute(self, sql: str, params: Sequence[Any] = ()) -> _QmarkCursor:
        self._cursor.execute(sql.replace("?", "%s"), params)
        return self

    def executemany(self, sql: str, params: Sequence[Sequence[Any]]) -> _QmarkCursor:
        self._cursor.executemany(sql.replace("?", "%s"), params)
        return self

    def fetchone(self) -> Any:
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()


class PostgresStore(SQLStore):
    """Sweeps and their runs in a PostgreSQL database."""

    _LOCK_SWEEP = _LOCK_RUN = " FOR UPDATE"
    _HAS_SCHEMA_TABLE = (
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'sweepkit_schema'"
    )

    def __init__(self, url: str) -> None:
        super().__init__(redacted(url))
        self._psycopg = _driver()
        self._url = url
        self._patience_s = float(os.environ.get("SWEEPKIT_STORE_PATIENCE") or PATIENCE_S)
        self._conn: Any = None
        self._migrate()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connect(self) -> Any:
        if self._conn is None or self._conn.closed or self._conn.broken:
            if self._conn is not None:
                self._conn.close()
            self._conn = None
            self._conn = self._psycopg.connect(
                self._url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
                application_name="sweepkit",
            )  # fmt: skip
        return self._conn

    def _lock_for_migration(self, cursor: Cursor) -> None:
        cursor.execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))

    def _transact(self, work: Callable[[Cursor], T], *, write: bool = True) -> T:
        """Run `work` in one transaction; on a lost server, again whole on a new connection."""
        psycopg = self._psycopg
        lost_since: float | None = None
        tries = 0
        while True:
            try:
                conn = self._connect()
                if write:
                    with conn.transaction():
                        result = work(_QmarkCursor(conn.cursor()))
                else:
                    result = work(_QmarkCursor(conn.cursor()))
            except psycopg.OperationalError as exc:
                if not self._transient(exc):
                    raise StoreError(
                        f"cannot use the sweep store {self.location}: {_first_line(exc)}"
                    ) from exc
                now = time.monotonic()
                if lost_since is None:
                    lost_since = now
                    note(
                        f"the sweep store {self.location} is unreachable ({_first_line(exc)}): "
                        f"reconnecting with back-off for up to {self._patience_s:g} s"
                    )
                elif now - lost_since > self._patience_s:
                    raise StoreError(
                        f"the sweep store {self.location} has been unreachable for "
                        f"{now - lost_since:.0f} s ({_first_line(exc)}): start the agent again "
                        "once the server is back (its run is reaped and offered again or "
                        "finished from its log); SWEEPKIT_STORE_PATIENCE waits longer"
                    ) from exc
                if not self._back_off(BACKOFF_S[min(tries, len(BACKOFF_S) - 1)]):
                    raise StoreError(
                        f"told to stop while the sweep store {self.location} is unreachable "
                        f"({_first_line(exc)}): stopping without it (the run going is left to "
                        "the next agent, which reaps it and offers it again)"
                    ) from exc
                tries += 1
                continue
            except psycopg.Error as exc:
                raise StoreError(
                    f"the sweep store {self.location} failed: {_first_line(exc)}"
                ) from exc
            if lost_since is not None:
                note(
                    f"the sweep store {self.location} is back after "
                    f"{time.monotonic() - lost_since:.1f} s: reconnected"
                )
            return result

    def _back_off(self, seconds: float) -> bool:
        """Sleep `seconds` unless `stop_waiting` says stop first; False if it did."""
        deadline = time.monotonic() + seconds
        while not self.stop_waiting():
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            time.sleep(min(left, 0.1))  # a signal's flag is seen within 0.1 s
        return False

    def _transient(self, exc: Exception) -> bool:
        """A lost connection or a server starting, stopping or restarting: worth waiting for."""
        message = str(exc)
        if self._conn is not None and self._conn.broken:
            return True
        return not any(word in message for word in _FATAL)


def _first_line(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
