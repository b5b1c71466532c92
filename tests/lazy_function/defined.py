"""Writes "import PID" to $SWEEPKIT_TEST_IMPORTS in each process that imports it, and "run
PID PARENT" in each process that calls `run`: which process paid for the import is on
record, and which process each run was forked from."""

from __future__ import annotations

import os


def _record(*what: object) -> None:
    with open(os.environ["SWEEPKIT_TEST_IMPORTS"], "a") as record:
        record.write(" ".join(map(str, what)) + "\n")


_record("import", os.getpid())


def run() -> None:
    _record("run", os.getpid(), os.getppid())
