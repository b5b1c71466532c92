"""A corpus of malformed sweep configs, made from real ones: what a hurried or hostile user
hands `validate` and `create`.

Every file is a mutation of a valid config (sweepkit's own and the public W&B sweeps in
tests/sweep_corpus/), made the same way for the same seed: a value of the wrong type, a
number too large, too small or not finite, text in odd Unicode, a key deleted, misspelt or
repeated, nesting too deep, aliases that expand without end, bytes that are not UTF-8, an
empty file and a 10 MB one, YAML cut off in the middle, tags JSON has no word for.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
SOURCES = sorted(
    [*(REPO / "sweeps").glob("*.yaml"), *(REPO / "tests" / "sweep_corpus").glob("*.yaml")]
)

# Values a leaf is replaced by: wrong types, extreme numbers, odd text.
ODD_VALUES: list[Any] = [
    None, True, [], {}, "", " ", "x" * 5000, [[[[[1]]]]], {"values": []}, {"min": 1},
    0, -1, 10**30, -(10**30), 2**63, -(2**63) - 1, 1e308, -1e308, 5e-324, 1e-320, -0.0, 0.5,
    "1e-5", "NaN", "inf", "null", "2020-01-01", "é", "日本語", "🙂" * 3, "\u202egnp.exe",
    "a\u0000b", "\t\n", "'; DROP TABLE sweeps; --", "${env}", "--lr=1", "💥" * 1000,
    list(range(300)), {"distribution": "uniform", "min": 1, "max": 0},
    {"distribution": "int_uniform", "min": 0, "max": 10**12},
    {"distribution": "q_uniform", "min": 0, "max": 1, "q": 1e-300},
]  # fmt: skip
# Raw YAML text for a leaf: what safe_dump never writes.
ODD_TEXT = [
    ".nan", ".inf", "-.inf", "1e400", "9" * 5000, "0x" + "f" * 40, "2020-01-01", "2020-01-01T10:00:00Z",
    "!!binary aGVsbG8=", "!!set {a, b}", "!!python/object:os.system ls", "!custom 1",
    '"\\ud800"', '"\\udfff x"', '"\\0"', "*undefined", "&a [1, *a]", "[1, 2", "{a: 1, a: 2}",
    "!!omap [a: 1]", "1_000", "0o17", "0b101", "'unterminated", "|", "? [1, 2]\n  : 3",
]  # fmt: skip


def _paths(node: Any, path: tuple = ()) -> Iterator[tuple]:
    """Every path to a node of a parsed config (the top mapping excluded)."""
    if path:
        yield path
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, (*path, i))


def _at(config: Any, path: tuple) -> tuple[Any, Any]:
    parent = config
    for key in path[:-1]:
        parent = parent[key]
    return parent, path[-1]


def _dump(config: Any) -> bytes:
    return yaml.safe_dump(config, allow_unicode=True, sort_keys=False).encode()


def _typo(word: str, rng: random.Random) -> str:
    if len(word) < 3:
        return word + "s"
    i = rng.randrange(len(word) - 1)
    return word[:i] + word[i + 1] + word[i] + word[i + 2 :]


def _structural(config: dict, rng: random.Random) -> bytes:
    """Replace, delete, misspell or nest one node of the config."""
    mutant = copy.deepcopy(config)
    path = rng.choice(list(_paths(mutant)))
    parent, key = _at(mutant, path)
    kind = rng.choice(["replace", "replace", "replace", "delete", "typo", "nest", "wide"])
    if kind == "delete":
        del parent[key]
    elif kind == "typo" and isinstance(parent, dict) and isinstance(key, str):
        parent[_typo(key, rng)] = parent.pop(key)
    elif kind == "nest":
        value = parent[key]
        for _ in range(rng.choice([10, 40, 200])):
            value = [value]
        parent[key] = value
    elif kind == "wide":
        parent[key] = [copy.deepcopy(parent[key]) for _ in range(rng.choice([50, 3000]))]
    else:
        parent[key] = copy.deepcopy(rng.choice(ODD_VALUES))
    return _dump(mutant)


def _textual(config: dict, rng: random.Random) -> bytes:
    """Write odd YAML in place of one leaf's value, or break the text itself."""
    text = _dump(config).decode()
    lines = text.splitlines()
    kind = rng.choice(["leaf", "leaf", "leaf", "cut", "tabs", "latin1", "bom", "crlf"])
    if kind == "leaf":
        candidates = [i for i, line in enumerate(lines) if ": " in line and not line.endswith(":")]
        if candidates:
            i = rng.choice(candidates)
            lines[i] = lines[i].split(": ", 1)[0] + ": " + rng.choice(ODD_TEXT)
        return ("\n".join(lines) + "\n").encode()
    if kind == "cut":
        return text[: rng.randrange(1, max(2, len(text)))].encode()
    if kind == "tabs":
        return text.replace("  ", "\t").encode()
    if kind == "latin1":
        return text.replace("method", "méthode", 1).encode("latin-1", errors="replace")
    if kind == "bom":
        return text.encode("utf-16")
    return text.replace("\n", "\r\n").encode()


def _billion_laughs(levels: int, width: int) -> bytes:
    lines = ["method: random", "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    lines.append(f"parameters:\n  x: {{values: *a{levels - 1}}}")
    return ("\n".join(lines) + "\n").encode()


def _whole_files(rng: random.Random) -> list[tuple[str, bytes]]:
    """Files that break as a whole: sizes, encodings, bombs, nesting, too many parameters."""
    grid = "method: grid\nparameters:\n" + "".join(
        f"  p{i}: {{values: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}}\n" for i in range(9)
    )
    return [
        ("empty", b""),
        ("whitespace", b"   \n\n\t\n"),
        ("comment-only", b"# nothing here\n"),
        ("ten-megabytes", b"method: random\nparameters:\n  x: {values: [" + b"1, " * 3_500_000 + b"1]}\n"),
        ("just-over-one-megabyte", b"# " + b"x" * 1_000_000 + b"\nmethod: grid\n"),
        ("random-bytes", bytes(rng.randrange(256) for _ in range(4096))),
        ("nul-bytes", b"\x00" * 100),
        ("utf16", "method: grid\nparameters:\n  x: {values: [1]}\n".encode("utf-16-le")),
        ("billion-laughs", _billion_laughs(9, 10)),
        ("wide-laughs", _billion_laughs(3, 200)),
        ("recursive-alias", b"method: grid\nparameters:\n  x: &r {values: [1, *r]}\n"),
        ("deep-flow", b"method: grid\nparameters:\n  a:\n    values: " + b"[" * 1200 + b"1" + b"]" * 1200 + b"\n"),
        ("deep-block", ("method: grid\nparameters:\n" + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(60)) + "  " * 61 + "values: [1]\n").encode()),
        ("grid-of-a-billion", grid.encode()),
        ("int-range-grid", b"method: grid\nparameters:\n  n: {distribution: int_uniform, min: 0, max: 9000000000000000000}\n"),
        ("q-uniform-grid", b"method: grid\nparameters:\n  q: {distribution: q_uniform, min: 0, max: 1, q: 1.0e-300}\n"),
        ("twenty-thousand-parameters", ("method: random\nparameters:\n" + "".join(f"  p{i}: {{value: {i}}}\n" for i in range(20_000))).encode()),
        ("fifteen-hundred-parameters", ("method: random\nparameters:\n" + "".join(f"  p{i}: {{value: 1}}\n" for i in range(1_500))).encode()),
        ("two-documents", b"method: grid\nparameters:\n  x: {values: [1]}\n---\nmethod: random\n"),
        ("top-level-list", b"- method: grid\n"),
        ("top-level-scalar", b"42\n"),
        ("surrogate-key", b'method: grid\nparameters:\n  "\\ud800": {values: [1]}\n'),
        ("nul-in-value", b'method: grid\nparameters:\n  x: {values: ["a\\0b"]}\n'),
        ("int-and-text-keys", b'method: grid\nparameters:\n  1: {values: [1]}\n  "1": {values: [2]}\n'),
        ("python-tag", b"method: !!python/name:os.system grid\n"),
    ]  # fmt: skip


def _parsed(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError:  # a public file kept for being broken: not a source
        return None


def corpus(seed: int = 32, mutants: int = 200) -> list[tuple[str, bytes]]:
    """`mutants` mutations of the valid configs, then the whole-file cases: (name, bytes)."""
    rng = random.Random(seed)
    configs = [(p.stem, _parsed(p)) for p in SOURCES]
    configs = [(name, c) for name, c in configs if isinstance(c, dict) and c.get("parameters")]
    files = []
    for i in range(mutants):
        name, config = configs[i % len(configs)]
        mutate = _structural if rng.random() < 0.6 else _textual
        files.append((f"{i:03d}-{mutate.__name__.strip('_')}-{name[:40]}", mutate(config, rng)))
    return files + _whole_files(rng)
