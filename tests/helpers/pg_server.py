"""A throwaway PostgreSQL server on loopback, for the tests and bench/store_claims.py.

`initdb` into a fresh folder (as the `postgres` user when run as root: the
server refuses to run as root), `pg_ctl` with a private port and socket
folder, fsync off (a test server need not survive a power cut). The binaries
come from Debian's `postgresql` package (/usr/lib/postgresql/N/bin) or
$PG_BIN; without them, `find_binaries` says why and the tests skip.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

from tests.helpers.processes import untagged_env


def find_binaries() -> Path | None:
    """The folder holding initdb and pg_ctl, or None if PostgreSQL's server is not installed."""
    candidates = [os.environ.get("PG_BIN", "")]
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    if found := shutil.which("initdb"):
        candidates.append(str(Path(found).parent))
    for folder in filter(None, candidates):
        if (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PostgresServer:
    """One server: start, make databases, restart, kill connections, stop."""

    def __init__(self, binaries: Path) -> None:
        self.bin = binaries
        self.root = Path(tempfile.mkdtemp(prefix="sweepkit-pg-"))
        self.data = self.root / "data"
        self.sockets = self.root / "sock"
        self.port = _free_port()
        # The server will not run as root: as root, it runs as Debian's `postgres` user.
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(
            [*self._as, str(self.bin / tool), *args],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=untagged_env(),
        )  # fmt: skip

    def start(self) -> PostgresServer:
        self.sockets.mkdir()
        if self._as:
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(self.sockets, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        self._pg_ctl("start")
        return self

    def _pg_ctl(self, action: str, *args: str) -> None:
        options = (
            f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
            " -c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w",
            "-o", options, *args, action,
        )  # fmt: skip

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def admin(self, sql: str, *params: object) -> list[tuple]:
        """Run one statement on the server's `postgres` database; its rows, if any."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            cursor = conn.execute(sql, params or None)
            return cursor.fetchall() if cursor.description else []

    def new_database(self) -> str:
        """A fresh, empty database; its URL."""
        name = "t_" + uuid.uuid4().hex[:12]
        self.admin(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def restart(self) -> None:
        """`pg_ctl -m fast restart`: every open connection gets AdminShutdown."""
        self._pg_ctl("restart", "-m", "fast")

    def stop(self) -> None:
        self._pg_ctl("stop", "-m", "fast")

    def resume(self) -> None:
        """Start a server stopped with `stop`."""
        self._pg_ctl("start")

    def terminate_backends(self, database_url: str, query_like: str = "%") -> int:
        """`pg_terminate_backend` every sweepkit connection to that database whose current
        query matches; how many were ended."""
        database = database_url.rsplit("/", 1)[1]
        rows = self.admin(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s"
            " AND application_name = 'sweepkit' AND query LIKE %s",
            database, query_like,
        )  # fmt: skip
        return sum(1 for (ended,) in rows if ended)

    def close(self) -> None:
        """Stop the server (if running) and delete its folder."""
        subprocess.run(
            [*self._as, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
             "-w", "stop"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=untagged_env(),
        )  # fmt: skip
        shutil.rmtree(self.root, ignore_errors=True)
