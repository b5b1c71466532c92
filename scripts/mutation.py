"""Mutation score of the modules in `[tool.mutmut]` (pyproject.toml), from a clean state.

    python scripts/mutation.py            # mutmut run (one worker), then the score per module
    python scripts/mutation.py --score    # the score of the last run (mutants/ as it is)

mutmut 3 copies the package to mutants/, puts every mutant behind a switch and
runs, for each mutant, the selected tests that call the function it changed.
The score per module is killed / (mutants - equivalent): a timeout counts as
killed (the mutant broke the code), a mutant no test reaches counts as
survived. `tests/mutation/equivalent.md` lists the mutants that no test can
kill, each with its mutated line and why; an entry whose mutant no longer
survives, or whose line no longer matches (the function changed), is stale
and makes this script exit 1, as does a score under TARGET or any survivor
not listed.

One kind of mutant is equivalent by rule rather than by entry: a change of case in
a SQL statement outside its quoted literals (`SELECT state FROM sweeps` ->
`select state from sweeps`). SQL keywords and unquoted names are case-insensitive
in SQLite and PostgreSQL alike; a change inside a literal (`'running'`) is not
covered and must be killed.
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EQUIVALENT = REPO / "tests" / "mutation" / "equivalent.md"
TARGET = 0.85
KILLED = {"killed", "timeout", "caught by type check"}
# An entry of equivalent.md: "## <mutant name>", then "+<the mutated line>", then "Why: ...".
ENTRY = re.compile(r"^## (?P<name>\S+)\n(?P<line>\+.*)\nWhy: (?P<why>.+)$", re.MULTILINE)


# A SQL statement, or a piece of one continued on its own line: our SQL's keywords are
# capitals (a message's "and" is not SQL), or its `= ?` placeholders.
SQL = re.compile(
    r"\b(SELECT|INSERT|UPDATE|DELETE|WHERE|VALUES|ON CONFLICT|CREATE|ALTER|PRAGMA|BEGIN|COMMIT"
    r"|ROLLBACK|ORDER BY|FROM|AND|LIMIT)\b|\w = \?"
)


def sql_case_only(diff: str) -> bool:
    """Whether a mutant's diff only changes the case of SQL outside its '...' literals."""
    removed = [line[1:] for line in diff.splitlines() if line[:1] == "-" and line[:3] != "---"]
    added = [line[1:] for line in diff.splitlines() if line[:1] == "+" and line[:3] != "+++"]
    if len(removed) != 1 or len(added) != 1 or removed == added or not SQL.search(removed[0]):
        return False
    before, after = removed[0].split("'"), added[0].split("'")
    return len(before) == len(after) and all(
        b == a if i % 2 else b.lower() == a.lower()  # odd pieces: inside a '...' literal
        for i, (b, a) in enumerate(zip(before, after, strict=True))
    )


def mutmut(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mutmut", *args], cwd=REPO, text=True, capture_output=True, **kwargs
    )


def run() -> float:
    """A fresh `mutmut run` on one worker (its own progress line shows how far it is)."""
    shutil.rmtree(REPO / "mutants", ignore_errors=True)
    started = time.monotonic()
    print("mutmut run --max-children 1", flush=True)
    code = subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children", "1"], cwd=REPO)
    if code.returncode != 0:
        sys.exit(f"error: mutmut run failed (exit {code.returncode}); its output is above")
    return time.monotonic() - started


def results() -> dict[str, str]:
    """Every mutant's status, as `mutmut results --all true` prints it."""
    out = mutmut("results", "--all", "true", check=True).stdout
    return dict(line.strip().rsplit(": ", 1) for line in out.splitlines() if ": " in line)


def module_of(mutant: str) -> str:
    """``sweepkit.config.x_check__mutmut_4`` -> ``sweepkit.config``."""
    return mutant.split(".x", 1)[0] if ".x" in mutant else mutant.rsplit(".", 1)[0]


def equivalents() -> dict[str, str]:
    """{mutant: its mutated line} from equivalent.md."""
    text = EQUIVALENT.read_text() if EQUIVALENT.exists() else ""
    return {m["name"]: m["line"] for m in ENTRY.finditer(text)}


def stale(listed: dict[str, str], status: dict[str, str]) -> list[str]:
    """Entries of equivalent.md that no longer name a surviving mutant with that line."""
    wrong = []
    for name, line in listed.items():
        if status.get(name) != "survived":
            wrong.append(f"{name}: {status.get(name, 'no such mutant')}, not survived")
        elif line not in mutmut("show", name).stdout.splitlines():
            wrong.append(f"{name}: its mutated line is no longer {line!r}")
    return wrong


def score(status: dict[str, str]) -> bool:
    """Print the score per module; True if every module meets TARGET and nothing is unlisted."""
    listed = equivalents()
    by_module: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    unlisted = []
    for name, state in status.items():
        counts = by_module[module_of(name)]
        counts["mutants"] += 1
        if state in KILLED:
            counts["killed"] += 1
        elif name in listed or (state == "survived" and sql_case_only(mutmut("show", name).stdout)):
            counts["equivalent"] += 1
        else:
            counts["survived"] += 1
            unlisted.append(f"{name}: {state}")
    print(
        f"\n{'module':32} {'mutants':>7} {'killed':>6} {'equiv.':>6} {'survived':>8} {'score':>6}"
    )
    ok = True
    for module, c in sorted(by_module.items()):
        killable = c["mutants"] - c["equivalent"]
        value = c["killed"] / killable if killable else 1.0
        ok &= value >= TARGET
        print(
            f"{module:32} {c['mutants']:7} {c['killed']:6} {c['equivalent']:6} "
            f"{c['survived']:8} {value:6.1%}"
        )
    total = sum(by_module.values(), collections.Counter())
    killable = total["mutants"] - total["equivalent"]
    print(f"{'all':32} {total['mutants']:7} {total['killed']:6} {total['equivalent']:6} "
          f"{total['survived']:8} {total['killed'] / max(killable, 1):6.1%}")  # fmt: skip
    for line in unlisted:
        print(f"survived, not listed as equivalent: {line}")
    wrong = stale(listed, status)
    for line in wrong:
        print(f"stale entry in {EQUIVALENT.relative_to(REPO)}: {line}")
    return ok and not unlisted and not wrong


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--score", action="store_true", help="score the last run, do not run")
    args = parser.parse_args()
    if importlib.util.find_spec("mutmut") is None:
        sys.exit("error: mutmut is not installed here: pip install -e '.[mutation]'")
    if not args.score:
        took = run()
        print(f"mutmut run took {took / 60:.1f} min")
    sys.exit(0 if score(results()) else 1)


if __name__ == "__main__":
    main()
