"""Sweep files a user should never have written: one line per problem, exit 2, nothing stored.

`validate` and `create` run in this process (the console script's own `main`, its exit
code and both streams), so that a corpus of hundreds of files runs in seconds; a
traceback that would reach a user's terminal fails the test here as an exception.
"""

from __future__ import annotations

import sys
import time
import traceback
from pathlib import Path

import pytest

from sweepkit.backends.store import open_store, redacted
from sweepkit.cli import main
from tests.helpers.hostile_configs import corpus

PROMPT_S = 5.0  # a hang guard, not a timing: a bomb or a huge grid took minutes before


def cli(capsys, *args: str) -> tuple[int | str, str, str, float]:
    """`sweepkit ARGS` in this process: (exit code or "traceback", stdout, stderr, seconds)."""
    argv, sys.argv = sys.argv, ["sweepkit", *args]
    started = time.perf_counter()
    try:
        main()
        code: int | str = 0
    except SystemExit as exited:
        code = exited.code if isinstance(exited.code, int) else int(exited.code is not None)
    except BaseException:  # what would reach the user as a traceback
        code = "traceback"
        print(traceback.format_exc(), file=sys.stderr)
    finally:
        sys.argv = argv
    seconds = time.perf_counter() - started
    out, err = capsys.readouterr()
    return code, out, err, seconds


def sweeps_in(store: Path) -> int:
    if not store.exists():
        return 0
    opened = open_store(store)
    try:
        return len(opened.sweeps())
    finally:
        opened.close()


# Each promise of docs/fault-tolerance.md's "Bad input", as the file a user wrote and the one line
# they read back.
CASES = [
    ("latin1", b"method: grid\nparameters:\n  lr:\n    values: [caf\xe9]\n",
     "is not UTF-8 text: byte 0xe9 at line 4, column 17 (save the file as UTF-8)"),
    ("deep", b"method: grid\nparameters:\n  a:\n    values: " + b"[" * 1200 + b"1" + b"]" * 1200 + b"\n",
     "is not valid YAML at line 4, column 1010: exceeded maximum nesting depth"),
    ("deep-but-parsable", b"method: grid\nparameters:\n  a:\n    values: " + b"[" * 40 + b"1" + b"]" * 40 + b"\n",
     "at line 4, column 42: nested more than 32 lists or mappings deep"),
    ("bigint", b"method: grid\nparameters:\n  a:\n    values: [" + b"9" * 5000 + b"]\n",
     "at line 4, column 14: the integer 99999999999999999999...(5,000 characters) does not fit "
     "in 64 bits"),
    ("int64", b"method: grid\nparameters:\n  a: {values: [9223372036854775808]}\n",
     "at line 3, column 16: the integer 9223372036854775808 does not fit in 64 bits"),
    ("recursive", b"method: grid\nparameters:\n  x: &r {values: [1, *r]}\n",
     "at line 3, column 22: the alias *r is inside its own anchor (a recursive alias)"),
    ("binary", b"method: grid\nparameters:\n  x: {values: [!!binary aGVsbG8=]}\n",
     "at line 3, column 16: binary data (aGVsbG8=) is not a sweep value: JSON has none; "
     "quote it if you mean the text"),
    ("date", b"method: grid\nparameters:\n  x: {values: [2020-01-01]}\n",
     "at line 3, column 16: a date or time (2020-01-01) is not a sweep value"),
    ("nan", b"method: random\nparameters:\n  x: {min: 0, max: .nan}\n",
     "at line 3, column 20: .nan is not a finite number"),
    ("overflow", b"method: random\nparameters:\n  x: {min: 0, max: 1e400}\n",
     "at line 3, column 20: 1e400 is not a finite number"),
    ("surrogate", b'method: grid\nparameters:\n  "\\ud800": {values: [1]}\n',
     "is not valid YAML at line 3, column 6: found invalid Unicode character escape code"),
    ("nul", b'method: grid\nparameters:\n  x: {values: ["a\\0b"]}\n',
     ": parameters.x.values[0]: holds a NUL character, which PostgreSQL cannot store"),
    ("one-key-twice", b'method: grid\nparameters:\n  1: {values: [1]}\n  "1": {values: [2]}\n',
     ": parameters: the keys 1 and '1' are both '1' in JSON, whose keys are text"),
    ("set", b"method: grid\nparameters:\n  x: {values: !!set {a, b}}\n",
     "at line 3, column 15: a set is not a sweep value: JSON has none"),
    ("billion-laughs", b"method: random\n" + b"".join(
        b"a%d: &a%d [" % (i, i) + b", ".join([b"*a%d" % (i - 1) if i else b"lol"] * 10) + b"]\n"
        for i in range(9)) + b"parameters:\n  x: {values: *a8}\n",
     "at line 6, column 45: more than 100,000 values, lists and mappings once its aliases are "
     "expanded"),
    ("ten-megabytes", b"method: random\nparameters:\n  x: {values: [" + b"1, " * 3_500_000 + b"1]}\n",
     "is over 1,000,000 bytes: a sweep config is at most 1 MB"),
    ("a-billion-grid-points", ("method: grid\nparameters:\n" + "".join(
        f"  p{i}: {{values: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}}\n" for i in range(9))).encode(),
     "parameters: a grid of 1,000,000,000 points; sweepkit hands out at most 1,000,000"),
    ("int-range-grid", b"method: grid\nparameters:\n  n: {distribution: int_uniform, min: 0, max: 4000000000}\n",
     "parameters: a grid of 4,000,000,001 points"),
    ("fifteen-hundred-parameters", ("method: random\nparameters:\n" + "".join(
        f"  p{i}: {{value: 1}}\n" for i in range(1_500))).encode(),
     "parameters: 1,500 parameters (nested ones counted); a sweep has at most 1,000"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "content", "said"), CASES, ids=[c[0] for c in CASES])
def test_a_config_that_is_no_sweep_data_is_one_line_exit_2_and_nothing_stored(
    capsys, tmp_path, name, content, said
):
    path = tmp_path / f"{name}.yaml"
    path.write_bytes(content)
    store = tmp_path / "sweeps.db"
    for command in (["validate", str(path)], ["create", str(path), "--store", str(store)]):
        code, out, err, seconds = cli(capsys, *command)
        assert code == 2, err
        errors = [line for line in err.splitlines() if said in line]
        assert len(errors) == 1 and str(path) in errors[0], err
        assert "Traceback" not in err and out == ""
        assert seconds < PROMPT_S, f"{command[0]} took {seconds:.1f} s"
    assert sweeps_in(store) == 0


def test_a_typo_in_a_parameter_key_is_said_as_the_unknown_key_with_what_was_meant(capsys, tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("method: random\nmetrc: {name: acc}\nparameters:\n  lr: {valuse: [1, 2]}\n")
    code, _, err, _ = cli(capsys, "validate", str(path))
    assert code == 2
    assert err.splitlines() == [
        f"error: {path}: (top level): Additional properties are not allowed ('metrc' was "
        "unexpected; did you mean 'metric'?)",
        f"error: {path}: parameters.lr: Additional properties are not allowed ('valuse' was "
        "unexpected; did you mean 'values'?)",
    ]  # no "'min' is a required property": the schema's first alternative is not what was meant


def test_a_corpus_of_malformed_configs_gets_one_verdict_in_lines_and_stores_only_what_passed(
    capsys, tmp_path
):
    files = corpus()
    assert len(files) >= 200
    store = tmp_path / "sweeps.db"
    created = 0
    verdicts: dict[int, int] = {}
    for name, content in files:
        path = tmp_path / f"{name}.yaml"
        path.write_bytes(content)
        results = [
            cli(capsys, "validate", str(path)),
            cli(capsys, "create", str(path), "--store", str(store)),
        ]
        (checked, *_), (made, *_) = results
        for code, _, err, seconds in results:
            assert code in (0, 2), f"{name}: exit {code}\n{err}"
            assert "Traceback" not in err, f"{name}:\n{err}"
            assert all(len(line) <= 1_000 for line in err.splitlines()), f"{name}: a long line"
            assert seconds < PROMPT_S, f"{name}: {seconds:.1f} s"
        assert checked == made, f"{name}: validate says {checked}, create says {made}"
        verdicts[made] = verdicts.get(made, 0) + 1
        created += made == 0
    assert sweeps_in(store) == created  # a refused config left nothing behind
    assert verdicts[2] >= 100 and verdicts.get(0, 0) >= 10, verdicts  # the corpus tests both


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://sk:hunter2@db:5432/sweeps", "postgresql://sk:***@db:5432/sweeps"),
        ("postgres://:hunter2@db/sweeps", "postgres://:***@db/sweeps"),
        ("postgresql://sk:p%40ss@db/sweeps", "postgresql://sk:***@db/sweeps"),
        ("postgresql://sk@db/sweeps?password=hunter2&sslmode=require",
         "postgresql://sk@db/sweeps?password=***&sslmode=require"),
        ("postgresql://sk@db/sweeps?PASSWORD=hunter2", "postgresql://sk@db/sweeps?password=***"),
        ("postgresql://sk@db/sweeps", "postgresql://sk@db/sweeps"),
        ("my:odd@file.db", "my:odd@file.db"),  # a SQLite file's name is no URL
    ],
)  # fmt: skip
def test_a_store_url_is_named_without_its_password(url, shown):
    assert redacted(url) == shown


def test_create_names_the_store_without_its_password_in_its_next_step(
    capsys, tmp_path, monkeypatch
):
    # No server answers on port 1: the store fails to open after naming itself, and so
    # does every message on the way.
    monkeypatch.setenv("SWEEPKIT_STORE_PATIENCE", "0")
    path = tmp_path / "sweep.yaml"
    path.write_text("method: grid\nparameters:\n  x: {values: [1]}\n")
    url = "postgresql://sk:hunter2@127.0.0.1:1/sweeps"
    for given in (["--store", url], []):
        monkeypatch.setenv("SWEEPKIT_STORE", url)
        code, out, err, _ = cli(capsys, "create", str(path), *given)
        assert code != 0 and "hunter2" not in out + err and "sk:***@" in err, err
