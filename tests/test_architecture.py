"""The package's shape: no import cycle, no module too long to read, the layers kept.

The layers themselves are import-linter's contracts (`[tool.importlinter]` in
pyproject.toml, `lint-imports` in CI); what import-linter does not check is here.
"""

from __future__ import annotations

from pathlib import Path

import grimp
import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "sweepkit"
MAX_LINES = 460  # a module one can read at one sitting (docs/architecture.md)


def cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Every group of modules that import one another, directly or not (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_no_module_imports_itself_through_others():
    assert cycles(grimp.build_graph("sweepkit")) == []


def test_a_cycle_is_found():
    graph = grimp.ImportGraph()
    for module in ("a", "b", "c"):
        graph.add_module(module)
    graph.add_import(importer="a", imported="b")
    graph.add_import(importer="b", imported="c")
    assert cycles(graph) == []
    graph.add_import(importer="c", imported="a")
    assert cycles(graph) == [["a", "b", "c"]]


@pytest.mark.parametrize(
    "path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_no_module_is_too_long_to_read(path):
    assert len(path.read_text().splitlines()) <= MAX_LINES
