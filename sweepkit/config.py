"""Load a sweep YAML and check it against W&B's own sweep schema, reporting every violation.

The schema and the search-space semantics belong to W&B's open-source `sweeps`
engine; this module adds only what the engine reports poorly or not at all:
the path of each violation, empty `values`, and a dry first suggestion that
catches configs the schema accepts but the engine cannot run (bayes without a
metric, a continuous distribution in a grid).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from sweepkit import engine
from sweepkit.engine import HyperParameter, HyperParameterSet
from sweepkit.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class SweepSummary:
    """What `sweepkit validate` prints for a good config."""

    method: str
    parameters: int
    grid_size: int | None  # None when the search space is continuous

    def __str__(self) -> str:
        size = f", {self.grid_size} grid points" if self.grid_size is not None else ""
        return f"{self.method} sweep, {self.parameters} parameters{size}"


def load_sweep_config(path: str | Path) -> dict[str, Any]:
    """Read a sweep YAML and validate it.

    Raises:
        ConfigError: the file is missing, is not YAML, or violates the schema;
            the message lists every violation, one per line.
    """
    config = read_yaml(path)
    problems = violations(config)
    if problems:
        raise ConfigError(f"{path}: {len(problems)} problem(s)\n" + "\n".join(problems))
    return config


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Parse a YAML file that must hold a mapping; one-line errors for anything else."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path} is not valid YAML{where}: {problem}") from exc
    if not isinstance(config, dict):
        raise ConfigError(
            f"{path} must hold a mapping with method and parameters, not {type(config).__name__}"
        )
    return config


def violations(config: Mapping[str, Any]) -> list[str]:
    """Every problem of a sweep config, one ``path: message`` per entry, deduplicated.

    >>> violations({"method": "grid", "parameters": {"lr": {"min": 0.1, "max": 0.01}}})
    ['parameters.lr: min 0.1 is not less than max 0.01']
    >>> violations({"method": "bayes", "parameters": {"lr": {"values": [1, 2]}}})
    ['metric: bayes search needs a metric to optimise (metric: {name: ..., goal: ...})']
    """
    errors = list(engine.schema_errors(config))
    empty = _empty_values(config.get("parameters"))
    # An empty `values` also fails the schema, with a vaguer message about the same parameter.
    problems = [
        m
        for m in map(_schema_message, errors)
        if not any(m.startswith(e.split(".values:")[0] + ":") for e in empty)
    ]
    problems += empty
    try:  # the engine's checks beyond the schema: min < max, probabilities, deprecated distributions
        extra = engine.engine_violations(config)
    except ValueError as exc:  # it raises instead of reporting on a non-mapping parameter
        extra = [str(exc)]
    raw_schema_messages = {e.message for e in errors}
    for message in extra:
        message = _with_parameter_path(message, config)
        # Skip the engine's repeats of what the schema (with a path) or `empty` already said.
        if message not in raw_schema_messages and not _repeats(message, problems):
            problems.append(message)
    if not problems:
        problems += _engine_refusals(config)
    return list(dict.fromkeys(problems))


def _repeats(message: str, problems: list[str]) -> bool:
    """The engine's 'invalid hyperparameter configuration: NAME' when NAME is already reported."""
    name = message.rsplit(": ", 1)[-1]
    return message.startswith("invalid hyperparameter configuration") and any(
        p.startswith(f"parameters.{name}.") or p.startswith(f"parameters.{name}:") for p in problems
    )


def _with_parameter_path(message: str, config: Mapping[str, Any]) -> str:
    """The engine starts parameter messages with the bare name ("lr: ..." or "lr uses ...")."""
    parameters = config.get("parameters")
    name = message.replace(":", " ").split(" ", 1)[0]
    if isinstance(parameters, Mapping) and name in parameters:
        return f"parameters.{name}: {message.removeprefix(name).lstrip(': ')}"
    return message


def summarize(config: Mapping[str, Any]) -> SweepSummary:
    """Method, number of (flattened) parameters and grid size, for a valid config."""
    params = HyperParameterSet.from_config(config["parameters"])
    sizes = [_grid_points(p) for p in params]
    grid = math.prod(sizes) if all(s is not None for s in sizes) else None
    return SweepSummary(config["method"], len(params), grid)  # type: ignore[arg-type]


def _grid_points(param: HyperParameter) -> int | None:
    if param.type == HyperParameter.CONSTANT:
        return 1
    if param.type == HyperParameter.CATEGORICAL:
        return len(param.config["values"])
    if param.type == HyperParameter.INT_UNIFORM:
        return param.config["max"] - param.config["min"] + 1
    if param.type == HyperParameter.Q_UNIFORM:  # the grid uses numpy.arange(min, max, q)
        return max(0, math.ceil((param.config["max"] - param.config["min"]) / param.config["q"]))
    return None


def _schema_message(error: jsonschema.ValidationError) -> str:
    # "is not valid under any of the given schemas" says nothing; the closest branch says more.
    best = jsonschema.exceptions.best_match(error.context) if error.context else error
    path = ".".join(str(p) for p in best.absolute_path) or "(top level)"
    return f"{path}: {best.message}"


def _empty_values(parameters: Any, prefix: str = "parameters") -> list[str]:
    if not isinstance(parameters, Mapping):
        return []
    problems = []
    for name, spec in parameters.items():
        if not isinstance(spec, Mapping):
            continue
        if "values" in spec and not spec["values"]:
            problems.append(f"{prefix}.{name}.values: is empty; give at least one value")
        problems += _empty_values(spec.get("parameters"), f"{prefix}.{name}.parameters")
    return problems


def _engine_refusals(config: Mapping[str, Any]) -> list[str]:
    """Ask the engine for a first suggestion; its refusal is a config problem."""
    if config.get("method") == "bayes" and "metric" not in config:
        return ["metric: bayes search needs a metric to optimise (metric: {name: ..., goal: ...})"]
    try:
        engine.next_run(config, [])
    except (ValueError, KeyError, TypeError) as exc:
        return [f"method: the sweeps engine cannot run this config: {exc}"]
    return []
