"""What a misspelt word probably meant: W&B's server warns about an unknown key or value;
sweepkit adds "did you mean 'metric'?"."""

from __future__ import annotations

import difflib
from typing import Any


def closest_word(word: Any, choices: list[Any]) -> str | None:
    """The choice `word` is probably a typo of, if one is close: fewest edits (a swap of two
    letters is one), then the nearest length.

    >>> closest_word("valuse", ["value", "values", "min"]), closest_word("zzz", ["metric"])
    ('values', None)
    """
    words = [c for c in choices if isinstance(c, str)]
    close = difflib.get_close_matches(word, words, n=3) if isinstance(word, str) else []
    return min(close, key=lambda c: (_edits(word, c), abs(len(c) - len(word))), default=None)


def _edits(a: str, b: str) -> int:
    """Edits from `a` to `b`: insertions, deletions, substitutions, swaps of neighbours."""
    rows = [list(range(len(b) + 1))]
    for i, ca in enumerate(a, 1):
        row = [i]
        for j, cb in enumerate(b, 1):
            row.append(min(rows[-1][j] + 1, row[j - 1] + 1, rows[-1][j - 1] + (ca != cb)))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                row[j] = min(row[j], rows[-2][j - 2] + 1)
        rows.append(row)
    return rows[-1][-1]
