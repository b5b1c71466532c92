"""YAML as sweep configs mean it: PyYAML's safe loader, with numbers read as YAML 1.2 does."""

from __future__ import annotations

import re
from typing import Any

import yaml


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, reading numbers as YAML 1.2 (and W&B's server) do.

    PyYAML implements YAML 1.1, where a float needs a dot: ``1e-5`` is the
    string "1e-5". Sweep configs are full of them (W&B's own courses write
    ``min: 1e-5``), and their authors mean numbers.
    """


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def load_yaml(text: str) -> Any:
    """Parse YAML, with numbers as YAML 1.2 reads them.

    >>> load_yaml("lr: {min: 1e-5, max: 3E-2, values: [1e3, 10, 2.5, 1e-5x]}")
    {'lr': {'min': 1e-05, 'max': 0.03, 'values': [1000.0, 10, 2.5, '1e-5x']}}
    """
    return yaml.load(text, Loader=_Loader)
