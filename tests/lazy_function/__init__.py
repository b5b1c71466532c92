"""A package that loads its run function on first use, as `sweepkit.train` loads `train`:
importing the package alone does not import the module that defines the function."""

from __future__ import annotations


def __getattr__(name: str):
    if name == "run":
        from tests.lazy_function.defined import run

        return run
    raise AttributeError(name)
