"""YAML as sweep configs mean it: data only, numbers as YAML 1.2 reads them, bounded.

PyYAML's safe loader builds whatever YAML can say. A sweep config is JSON data
(W&B's server keeps it as JSON, and so does sweepkit's store), so this loader
refuses, with the line it is on, every value JSON has no word for: dates,
binary, sets, numbers that are not finite or do not fit in 64 bits. And it
refuses a document too big to expand before anything expands it: `bounded`
walks the parser's events once, counting every node as often as aliases repeat
it, so a few hundred bytes of aliases ("billion laughs") or a recursive alias
are refused in milliseconds instead of eating the machine.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import yaml
from yaml import events

# PyYAML's C parser when the wheel has libyaml (it parses about 20 times faster);
# the constructors and resolvers below are Python either way.
_Base: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
INT64 = 2**63


class NotData(yaml.constructor.ConstructorError):
    """A value YAML can write that a sweep config cannot hold (it is not JSON data)."""


class _Loader(_Base):  # type: ignore[misc, valid-type]
    """PyYAML's safe loader, reading numbers as YAML 1.2 (and W&B's server) do, data only.

    PyYAML implements YAML 1.1, where a float needs a dot: ``1e-5`` is the
    string "1e-5". Sweep configs are full of them (W&B's own courses write
    ``min: 1e-5``), and their authors mean numbers.
    """

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        try:
            value = super().construct_yaml_int(node)
        except ValueError:  # Python's limit on the digits of an int read from text
            value = None
        if value is None or not -INT64 <= value < INT64:
            raise NotData(
                None, None, f"the integer {_short(node.value)} does not fit in 64 bits (W&B's "
                "server and the engine's numpy cannot hold it): quote it to keep it as text",
                node.start_mark,
            )  # fmt: skip
        return value

    def construct_yaml_float(self, node: yaml.ScalarNode) -> float:
        value = super().construct_yaml_float(node)
        if value != value or value in (float("inf"), float("-inf")):
            raise NotData(
                None, None, f"{_short(node.value)} is not a finite number: JSON (W&B's server, "
                "the sweep store) has no infinity or NaN",
                node.start_mark,
            )  # fmt: skip
        return value

    def _not_data(self, node: yaml.Node) -> Any:
        what = {
            "tag:yaml.org,2002:timestamp": "a date or time",
            "tag:yaml.org,2002:binary": "binary data",
            "tag:yaml.org,2002:set": "a set",
            "tag:yaml.org,2002:omap": "an ordered map",
            "tag:yaml.org,2002:pairs": "a list of pairs",
        }[node.tag]
        problem = f"{what} is not a sweep value: JSON has none"
        if isinstance(node, yaml.ScalarNode):
            problem = f"{what} ({_short(node.value)}) is not a sweep value: JSON has none; " \
                      "quote it if you mean the text"  # fmt: skip
        raise NotData(None, None, problem, node.start_mark)


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)
_Loader.add_constructor("tag:yaml.org,2002:float", _Loader.construct_yaml_float)
for _tag in ("timestamp", "binary", "set", "omap", "pairs"):
    _Loader.add_constructor(f"tag:yaml.org,2002:{_tag}", _Loader._not_data)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _short(text: str) -> str:
    return text if len(text) <= 40 else f"{text[:20]}...({len(text):,} characters)"


@dataclasses.dataclass(frozen=True)
class Bounds:
    """How big a document may be once its aliases are expanded."""

    nodes: int  # values, lists and mappings, each alias counted as what it repeats
    depth: int  # lists and mappings inside one another


class TooBig(yaml.YAMLError):
    """The document is past `Bounds` (or its aliases are recursive): it is not expanded."""

    def __init__(self, problem: str, mark: yaml.Mark | None) -> None:
        super().__init__(problem)
        self.problem, self.problem_mark = problem, mark


def bounded(text: str, bounds: Bounds) -> None:
    """Raise TooBig if `text`, expanded, is past `bounds`; nothing is built.

    >>> bounded("a: &x [1, 2]\\nb: [*x, *x]", Bounds(nodes=13, depth=3))  # 7 + 2 * 3 nodes
    >>> bounded("a: &x [1, 2]\\nb: [*x, *x, *x]", Bounds(nodes=13, depth=3))
    Traceback (most recent call last):
    sweepkit.yaml12.TooBig: more than 13 values, lists and mappings once its aliases are expanded
    """
    nodes = depth = 0
    # Per open list or mapping: its anchor, the node count and the deepest level at its start.
    open_: list[list[Any]] = []
    anchored: dict[str, tuple[int, int]] = {}  # anchor -> (nodes, levels) it expands to
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, events.AliasEvent):
            if any(frame[0] == event.anchor for frame in open_):
                raise TooBig(f"the alias *{event.anchor} is inside its own anchor (a recursive "
                             "alias): a sweep config cannot hold itself", event.start_mark)  # fmt: skip
            size, levels = anchored.get(event.anchor, (1, 0))  # undefined: the loader says so
            nodes += size
            deepest = depth + levels
        elif isinstance(event, events.ScalarEvent):
            nodes += 1
            deepest = depth
            if event.anchor:
                anchored[event.anchor] = (1, 0)
        elif isinstance(event, events.CollectionStartEvent):
            nodes += 1
            depth += 1
            deepest = depth
            open_.append([event.anchor, nodes, depth])
        elif isinstance(event, events.CollectionEndEvent):
            anchor, start, reached = open_.pop()
            if anchor:
                anchored[anchor] = (nodes - start + 1, reached - depth + 1)
            depth -= 1
            deepest = reached
        else:
            continue
        if open_:
            open_[-1][2] = max(open_[-1][2], deepest)
        if deepest > bounds.depth:
            raise TooBig(f"nested more than {bounds.depth} lists or mappings deep",
                         event.start_mark)  # fmt: skip
        if nodes > bounds.nodes:
            raise TooBig(f"more than {bounds.nodes:,} values, lists and mappings once its "
                         "aliases are expanded", event.start_mark)  # fmt: skip


def load_yaml(text: str, bounds: Bounds | None = None) -> Any:
    """Parse YAML into JSON data, with numbers as YAML 1.2 reads them, within `bounds`.

    Raises:
        yaml.YAMLError: not YAML; NotData: a value JSON cannot hold; TooBig: past `bounds`.
            Each has `problem` and `problem_mark` (the line it is on).

    >>> load_yaml("lr: {min: 1e-5, max: 3E-2, values: [1e3, 10, 2.5, 1e-5x]}")
    {'lr': {'min': 1e-05, 'max': 0.03, 'values': [1000.0, 10, 2.5, '1e-5x']}}
    >>> load_yaml("when: 2020-01-01")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    sweepkit.yaml12.NotData: a date or time (2020-01-01) is not a sweep value: JSON has none; ...
    """
    if bounds is not None:
        bounded(text, bounds)
    return yaml.load(text, Loader=_Loader)
