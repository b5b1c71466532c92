"""One-line notes to the user on stderr, kept apart from a command's real output."""

from __future__ import annotations

import sys


def note(message: str) -> None:
    """Print ``sweepkit: message`` to stderr (stdout stays parseable)."""
    print(f"sweepkit: {message}", file=sys.stderr, flush=True)
