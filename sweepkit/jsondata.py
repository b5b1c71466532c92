"""What a sweep config may hold: JSON data, as W&B's server and both sweep stores keep it.

A config read from YAML (`sweepkit.yaml12` already refuses dates, binary and
numbers JSON cannot write) or handed over from Python (`wandb.sweep(dict)`) is
checked here once, then turned into the very JSON text the store writes; the
config that is validated is read back from that text, so that what was checked
is what runs.

>>> dumps({"method": "grid", "parameters": {"lr": {"values": [0.1, 1]}}})
'{"method": "grid", "parameters": {"lr": {"values": [0.1, 1]}}}'
>>> problems({"parameters": {"a": {"values": [float("nan"), "x\\x00"]}}, 1: 2, "1": 3})
['parameters.a.values[0]: nan is not a finite number (JSON has no infinity or NaN)', \
'parameters.a.values[1]: holds a NUL character, which PostgreSQL cannot store', \
"(top level): the keys 1 and '1' are both '1' in JSON, whose keys are text: one would be lost"]
"""

from __future__ import annotations

import json
import math
from typing import Any

from sweepkit.errors import ConfigError

INT64 = 2**63


def problems(value: Any) -> list[str]:
    """Every value in `value` that JSON (or PostgreSQL's JSON) cannot keep, by its path."""
    found: list[str] = []
    _walk(value, "", found, set())
    return found


def dumps(config: Any) -> str:
    """The JSON text a store writes for a sweep config.

    Raises:
        ConfigError: it holds something JSON cannot keep (one line per value, by its path).
    """
    if found := problems(config):
        raise ConfigError("\n".join(f"sweep config: {problem}" for problem in found))
    return json.dumps(config)


def _walk(value: Any, path: str, found: list[str], inside: set[int]) -> None:
    where = path or "(top level)"
    if isinstance(value, dict | list | tuple):
        if id(value) in inside:
            found.append(f"{where}: holds itself (a recursive structure)")
            return
        inside.add(id(value))
        if isinstance(value, dict):
            keys: dict[str, Any] = {}
            for key, item in value.items():
                if not isinstance(key, str | int | float | bool) and key is not None:
                    found.append(f"{where}: the key {key!r} is not text or a number")
                    continue
                text = key if isinstance(key, str) else json.dumps(key)
                if text in keys:
                    found.append(
                        f"{where}: the keys {keys[text]!r} and {key!r} are both {text!r} in "
                        "JSON, whose keys are text: one would be lost"
                    )
                keys[text] = key
                if isinstance(key, str):
                    _check_text(key, f"{where} (a key)", found)
                _walk(item, f"{path}.{text}" if path else text, found, inside)
        else:
            for i, item in enumerate(value):
                _walk(item, f"{path}[{i}]", found, inside)
        inside.discard(id(value))
    elif isinstance(value, str):
        _check_text(value, where, found)
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        if not -INT64 <= value < INT64:
            found.append(f"{where}: the integer does not fit in 64 bits")
    elif isinstance(value, float):
        if not math.isfinite(value):
            found.append(f"{where}: {value} is not a finite number (JSON has no infinity or NaN)")
    else:
        found.append(f"{where}: {type(value).__name__} is not a JSON value ({_short(value)})")


def _check_text(text: str, where: str, found: list[str]) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        found.append(
            f"{where}: holds {text[exc.start]!r}, half of a UTF-16 pair (a lone surrogate), "
            "which is not Unicode text"
        )
    if "\x00" in text:
        found.append(f"{where}: holds a NUL character, which PostgreSQL cannot store")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
