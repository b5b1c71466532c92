"""Where a store is, and how it is named in every message: a file path or a PostgreSQL URL,
its password hidden.

>>> is_postgres("postgresql://sweeps@db:5432/sweeps"), is_postgres(".sweepkit/sweeps.db")
(True, False)
"""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

DEFAULT_FILE = str(Path(".sweepkit") / "sweeps.db")
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def default_store_location() -> str:
    """$SWEEPKIT_STORE, or .sweepkit/sweeps.db in the working directory."""
    return os.environ.get("SWEEPKIT_STORE") or DEFAULT_FILE


def is_postgres(location: str) -> bool:
    """Whether a store location is a PostgreSQL URL (else it is a SQLite file's path)."""
    return location.startswith(POSTGRES_SCHEMES)


def store_exists(location: str) -> bool:
    """Whether there is a store there to read (a server is always asked: its tables are
    made on first use)."""
    return is_postgres(location) or Path(location).exists()


def redacted(url: str) -> str:
    """The store's location without its password, for every message, log and script that
    names a store: the password of a URL's user (``USER:PASSWORD@``) or of its query
    (``?password=``, which libpq reads too).

    >>> redacted("postgresql://me:secret@db:5432/sweeps")
    'postgresql://me:***@db:5432/sweeps'
    >>> redacted("postgresql://me@db/sweeps?sslmode=require&password=secret")
    'postgresql://me@db/sweeps?sslmode=require&password=***'
    >>> redacted(".sweepkit/sweeps.db")
    '.sweepkit/sweeps.db'
    """
    if not is_postgres(url):
        return url
    parts = urllib.parse.urlsplit(url)
    if parts.password is not None:
        at = parts.netloc.rindex("@")
        user_end = parts.netloc.index(":", 0, at) if ":" in parts.netloc[:at] else at
        parts = parts._replace(netloc=f"{parts.netloc[:user_end]}:***{parts.netloc[at:]}")
    query = "&".join(
        "password=***" if item.split("=", 1)[0].lower() == "password" else item
        for item in parts.query.split("&")
    )
    return urllib.parse.urlunsplit(parts._replace(query=query))
