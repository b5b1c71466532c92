"""The errors sweepkit raises on purpose.

Each carries the exit code the CLI maps it to, and a message that is one line
telling the user what to do. Anything else that escapes is a bug and gets a
traceback.
"""

from __future__ import annotations


class SweepkitError(Exception):
    """Base class: a failure we expected and can explain in one line."""

    exit_code = 1


class ConfigError(SweepkitError, ValueError):
    """A value the user gave (a hyperparameter, a sweep YAML, a flag) is not usable."""

    exit_code = 2


class DataError(SweepkitError):
    """The dataset could not be found, downloaded or read."""
