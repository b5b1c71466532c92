"""The local backend's sweep store, opened from where it is: a file path or a PostgreSQL URL
(`sweepkit.backends.store.location`)."""

from __future__ import annotations

from pathlib import Path

from sweepkit.backends.store.base import KEEP_POINTS, LOCAL_PREFIX, Store, StoreError
from sweepkit.backends.store.location import (
    default_store_location,
    is_postgres,
    redacted,
    store_exists,
)

__all__ = [
    "KEEP_POINTS",
    "LOCAL_PREFIX",
    "Store",
    "StoreError",
    "default_store_location",
    "is_postgres",
    "open_store",
    "redacted",
    "store_exists",
]


def open_store(location: str | Path | None = None) -> Store:
    """The store at `location`: ``postgresql://USER@HOST:PORT/DB`` is a PostgreSQL store,
    anything else the path of a SQLite file (made if missing). None: `default_store_location`.

    Raises:
        StoreError: it cannot be used as a sweep store (one line that says why).
    """
    location = str(location) if location is not None else default_store_location()
    if is_postgres(location):
        from sweepkit.backends.store.postgres import PostgresStore

        return PostgresStore(location)
    from sweepkit.backends.store.sqlite import SQLiteStore

    return SQLiteStore(location)
