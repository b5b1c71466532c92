"""Another process holding a SQLite store's write lock, as a `sqlite3` shell left in a
transaction (or an agent stopped in a debugger) holds it."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

_HOLD = (
    "import sqlite3, sys\n"
    "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
    "db.execute('BEGIN IMMEDIATE'); print('locked', flush=True); sys.stdin.readline()"
)


@contextlib.contextmanager
def lock_held(store: Path) -> Iterator[None]:
    """The write lock of `store`, held by another process from entry (once it holds it) to
    exit. The holder is no process of the test's runs: it carries no SWEEPKIT_TEST_TAG."""
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(store)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={k: v for k, v in os.environ.items() if k != "SWEEPKIT_TEST_TAG"},
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        yield
    finally:
        holder.communicate("release\n")  # its transaction ends with it
