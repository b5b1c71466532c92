"""Every test runs wandb for real, offline, inside its own temporary folders."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import uuid
from pathlib import Path

import pytest
import wandb

from tests.helpers.processes import tagged_processes

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One data folder for the whole session: the bundled sample is unpacked once."""
    return str(tmp_path_factory.mktemp("data"))


@pytest.fixture(autouse=True)
def fresh_engine_records() -> None:
    """Each test builds its runs' engine records anew: the per-agent cache
    (`scheduling._engine_run_cached`) would otherwise hand a test the records an earlier test
    built from equal rows, and a forked mutation run the unmutated parent's."""
    scheduling = sys.modules.get("sweepkit.core.scheduling")
    if scheduling is not None:
        scheduling._engine_run_cached.cache_clear()


@pytest.fixture(autouse=True)
def wandb_offline(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory, data_dir: str
):
    """wandb offline, writing only under a temporary folder; no credentials visible."""
    root = tmp_path_factory.mktemp("wandb")
    for name in (
        "WANDB_API_KEY",
        "WANDB_PROJECT",
        "WANDB_SWEEP_ID",
        "WANDB_RUN_ID",
        "WANDB_ENTITY",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(root))
    monkeypatch.setenv("WANDB_DATA_DIR", str(root / "data"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(root / "cache"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(root / "config"))
    monkeypatch.setenv("NETRC", str(root / "no-netrc"))
    monkeypatch.setenv("SWEEPKIT_DATA_DIR", data_dir)
    yield root
    # wandb reads its environment once per process: forget it so the next test's folders apply.
    wandb.teardown()


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """An empty working directory for commands; agents there import tests.sweep_functions. A
    tag in every descendant's environment finds any process a test left behind, and ends it
    before the next test."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setenv("SWEEPKIT_TEST_TAG", uuid.uuid4().hex)
    yield tmp_path
    # The wandb service this process started (an agent run in-process) carries the tag too:
    # it is ended as wandb ends it, before anything tagged left over is killed.
    wandb.teardown()
    for pid in tagged_processes():  # a failed test leaves nothing running into the next ones
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def postgres_server():
    """One throwaway PostgreSQL server for the test session (about 1 s to start); skipped,
    with the reason, where PostgreSQL's server is not installed (.ci/run installs it)."""
    from tests.helpers.pg_server import PostgresServer, find_binaries

    binaries = find_binaries()
    if binaries is None:
        pytest.skip("PostgreSQL's server is not installed (apt-get install postgresql)")
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install -e '.[dev]')")
    server = PostgresServer(binaries).start()
    yield server
    server.close()


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """A fresh database on the session's server: its URL."""
    return postgres_server.new_database()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_location(request, tmp_path) -> str:
    """Where a store of each kind lives: a SQLite file, and a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "s.db")
    return request.getfixturevalue("postgres_url")
