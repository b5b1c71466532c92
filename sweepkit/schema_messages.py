"""The schema's errors as people read them: one ``path: message`` line per problem.

jsonschema reports a failed choice between alternatives (a parameter's distributions) as
"not valid under any of the given schemas", and its `best_match` picks the shallowest
error, often of an alternative the author did not mean. Here: a key none of the
alternatives knows is said as the unknown key, with what was probably meant
(`sweepkit.suggest`); otherwise the error of the alternative that fits best; a long value
the message quotes is cut short.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import jsonschema

from sweepkit import engine
from sweepkit.suggest import closest_word


def messages(error: jsonschema.ValidationError) -> list[str]:
    """``path: message`` for one schema error (one per unknown key); for a choice between
    alternatives (a parameter's distributions), a key none of them knows, else the error of
    the alternative the author most likely meant. Unknown keys and values get W&B's words
    and, where one is close, what was probably meant."""
    chosen = _closest(error)
    if unknown := _keys_no_alternative_knows(error):
        # Whatever else the closest alternative misses (a required key) may be the typo itself.
        extra = [] if chosen.validator in _SHAPE else messages(chosen)
        return [*(_unexpected(error, key, known) for key, known in unknown), *extra]
    path = ".".join(str(p) for p in chosen.absolute_path) or "(top level)"
    message = chosen.message
    if chosen.validator == "additionalProperties" and isinstance(chosen.instance, Mapping):
        known = list(chosen.schema.get("properties", {}))
        return [_unexpected(chosen, key, known) for key in chosen.instance if key not in known]
    if chosen.validator == "enum" and list(chosen.absolute_path)[-1:] == ["distribution"]:
        known = sorted(_distributions(error))
        message = (
            f"{chosen.instance!r} is not a distribution the engine knows "
            f"({', '.join(known)}){_hint(chosen.instance, known)}"
        )
    elif chosen.validator == "enum":
        message += _hint(chosen.instance, chosen.validator_value)
    elif chosen.validator == "type" and list(chosen.absolute_path)[-1:] == ["values"]:
        message = f"must be a list (values: [{chosen.instance!r}]), not {chosen.instance!r}"
    return [f"{path}: {_briefly(message, chosen.instance)}"]


def _unexpected(error: jsonschema.ValidationError, key: str, known: list[str]) -> str:
    path = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    close = closest_word(key, known)
    hint = f"; did you mean {close!r}?" if close else ""
    return f"{path}: Additional properties are not allowed ({key!r} was unexpected{hint})"


def _keys_no_alternative_knows(error: jsonschema.ValidationError) -> list[tuple[str, list[str]]]:
    """A mapping's keys that none of a choice's alternatives knows (``valuse:``), with the
    keys they do know: the best alternative alone would only say what it misses."""
    if error.validator != "anyOf" or not isinstance(error.instance, Mapping):
        return []
    branches = [engine.schema_branch(branch) for branch in error.validator_value]
    known = sorted({key for branch in branches for key in branch.get("properties", {})})
    return [(key, known) for key in error.instance if known and key not in known]


def _hint(word: Any, choices: list[Any]) -> str:
    close = closest_word(word, choices)
    return f" (did you mean {close!r}?)" if close else ""


_SHAPE = {"required", "additionalProperties"}  # the instance has another shape than the branch


def _closest(error: jsonschema.ValidationError) -> jsonschema.ValidationError:
    """Among a failed choice's alternatives (``anyOf``), the one that fits best: its
    `distribution` matches, then it misses or has the fewest keys, then the fewest errors.
    jsonschema's own `best_match` prefers the shallowest error, which for ``values: 256``
    is "'distribution' is a required property" of some other distribution."""
    if not error.context:
        return error
    depth = len(error.absolute_path)
    branches: dict[Any, list[jsonschema.ValidationError]] = defaultdict(list)
    for sub in error.context:
        branches[sub.relative_schema_path[0]].append(sub)

    def wrong_distribution(e: jsonschema.ValidationError) -> bool:
        if e.validator == "additionalProperties":  # a branch with no distribution at all
            return isinstance(e.instance, dict) and "distribution" in set(e.instance) - set(
                e.schema.get("properties", {})
            )
        return list(e.absolute_path)[depth : depth + 1] == ["distribution"]

    def fit(leaves: list[jsonschema.ValidationError]) -> tuple[int, int, int]:
        shape = sum(e.validator in _SHAPE for e in leaves)
        return (sum(map(wrong_distribution, leaves)), shape, len(leaves))

    leaves = min(([_closest(e) for e in errs] for errs in branches.values()), key=fit)
    return min(leaves, key=lambda e: (e.validator in _SHAPE, -len(e.absolute_path)))


def _distributions(error: jsonschema.ValidationError) -> set[str]:
    """Every distribution name the alternatives of a parameter's schema accept."""
    names: set[str] = set()
    for sub in error.context or []:
        if sub.validator == "enum" and list(sub.absolute_path)[-1:] == ["distribution"]:
            names.update(sub.validator_value)
        names |= _distributions(sub)
    return names


def _briefly(message: str, value: Any) -> str:
    """The schema's message with a long value it quotes cut short: a list of thousands of
    values, a text of thousands of characters.

    >>> _briefly(f"{list(range(500))!r} is not of type 'string'", list(range(500)))
    "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, ... (500 items) is not of \
type 'string'"
    """
    quoted = repr(value)
    if len(quoted) <= 80 or quoted not in message:
        return message
    size = (
        f"{len(value):,} items" if isinstance(value, list | dict) else f"{len(quoted):,} characters"
    )
    head = quoted[:60]
    head = head[: head.rfind(", ")] if ", " in head else head
    return message.replace(quoted, f"{head}, ... ({size})")
