"""The examples in sweepkit's docstrings are run: an example that no longer holds fails here."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import sweepkit

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(sweepkit.__path__, prefix="sweepkit.")
    if info.name != "sweepkit.__main__"  # running it is the CLI
)


@pytest.mark.parametrize("name", MODULES)
def test_the_modules_examples_hold(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed"
