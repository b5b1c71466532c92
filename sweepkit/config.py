"""Load a sweep YAML and check it as W&B does: refuse what cannot run, warn about the rest.

The schema and the search-space semantics belong to W&B's open-source `sweeps`
engine; this module adds only what the engine reports poorly or not at all:
the path of each violation (and, among the schema's alternatives, the one the
author meant), empty `values`, numbers as YAML 1.2 reads them, and a dry first
suggestion that decides whether the engine can run the config at all.

W&B's server checks a new sweep against the same schema and creates it anyway,
printing the violations as a warning ("Malformed sweep config detected"); the
engine then runs what it can. So does sweepkit: a config the engine cannot run
is refused (exit 2), every other violation is a warning.
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from sweepkit import engine, jsondata, schema_messages
from sweepkit.engine import SWEEPKIT_KEYS, HyperParameter, HyperParameterSet
from sweepkit.errors import ConfigError
from sweepkit.yaml12 import Bounds, NotData, TooBig, load_yaml


@dataclasses.dataclass(frozen=True)
class SweepSummary:
    """What `sweepkit validate` prints for a good config."""

    method: str
    parameters: int
    grid_size: int | None  # None when the search space is continuous

    def __str__(self) -> str:
        size = f", {count_text(self.grid_size)} grid points" if self.grid_size is not None else ""
        return f"{self.method} sweep, {self.parameters} parameters{size}"


@dataclasses.dataclass(frozen=True)
class Findings:
    """What checking a sweep config found."""

    errors: list[str]  # the engine cannot run it (or sweepkit cannot keep its promise): refused
    warnings: list[str]  # schema violations the engine runs anyway, as W&B warns and runs them


# What a sweep config may be, checked before anything expands it (docs/fault-tolerance.md, "Bad input").
MAX_FILE_BYTES = 1_000_000  # W&B asks that one value stay under 1 MB; a config is one value
BOUNDS = Bounds(nodes=100_000, depth=32)  # values, lists and mappings, aliases expanded
MAX_PARAMETERS = 1_000  # nested ones counted one by one, as the engine flattens them
# The engine lists a grid's every point each time it hands one out (`grid_search.py`).
MAX_GRID_POINTS = 1_000_000


def load_sweep_config(path: str | Path, *, on_warning: Any = None) -> dict[str, Any]:
    """Read a sweep YAML and check it; pass each warning to `on_warning` (a callable).

    Returns the config as the store will keep it (read back from its JSON).

    Raises:
        ConfigError: the file is missing, is not YAML, or cannot run; the
            message says every problem, one per line, each naming the file.
    """
    config, findings = examine(path)
    if findings.errors:  # one line per problem, each naming the file
        raise ConfigError("\n".join(f"{path}: {problem}" for problem in findings.errors))
    for warning in findings.warnings:
        if on_warning is not None:
            on_warning(f"{path}: {warning}")
    return config


def examine(path: str | Path) -> tuple[dict[str, Any], Findings]:
    """Read a sweep YAML and check it: `validate` prints this, `create` refuses on it, so
    the two never disagree.

    Raises:
        ConfigError: the file cannot be read as a sweep config at all (one line).
    """
    config = read_yaml(path)
    return config, check(config)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A sweep YAML as the store will keep it: JSON data read back from the store's own JSON
    text, bounded before anything is expanded; one-line errors for anything else."""
    data = _read_bounded(path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError(
            f"{path} is not UTF-8 text: byte 0x{data[exc.start]:02x} at line {line}, column "
            f"{column} (save the file as UTF-8)"
        ) from None
    try:
        config = load_yaml(text, BOUNDS)
    except (NotData, TooBig) as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: {exc.problem}") from None
    except yaml.reader.ReaderError as exc:  # a character YAML refuses, by its position
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        raise ConfigError(
            f"{path} is not valid YAML at line {line}, column {column}: unacceptable character "
            f"#x{_code_point(exc.character):04x}: {exc.reason}"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or _one_line(exc)
        raise ConfigError(f"{path} is not valid YAML{where}: {problem}") from None
    if not isinstance(config, dict):
        raise ConfigError(
            f"{path} must hold a mapping with method and parameters, not {type(config).__name__}"
        )
    if found := jsondata.problems(config):
        raise ConfigError(f"{path}: " + f"\n{path}: ".join(found))
    return json.loads(jsondata.dumps(config))


def _code_point(character: int | str) -> int:
    return character if isinstance(character, int) else ord(character)  # libyaml gives an int


def _read_bounded(path: str | Path) -> bytes:
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(
            f"{path} is over {MAX_FILE_BYTES:,} bytes: a sweep config is at most 1 MB, as W&B "
            "asks of one value (list long value ranges with min/max, not one by one)"
        )
    return data


def check(config: Mapping[str, Any]) -> Findings:
    """Sort a config's problems into what is refused and what is only warned about.

    The engine decides: if it cannot make a first suggestion (or sweepkit a
    promise: `run_cap`, empty `values`, bayes or early termination without a
    metric), every problem is an error, as any of them may be why. Otherwise
    each is a warning, as on W&B.

    >>> check({"method": "random", "parameters": {"lr": {"min": 0.1, "max": 0.01}}}).errors
    ['parameters.lr: min 0.1 is not less than max 0.01']
    >>> check({"method": "grid", "metric": {"name": "acc", "goal": "maximise"},
    ...        "parameters": {"a": {"values": [1]}}}).warnings
    ["metric.goal: 'maximise' is not one of ['minimize', 'maximize'] (did you mean 'maximize'?)"]
    """
    if too_big := _past_bounds(config):  # refused before the schema or the engine expands it
        return Findings(too_big, [])
    problems = violations(config)
    # sweepkit's own keys and empty values: the store and the engine would break on them.
    broken = [
        p for p in problems if p.split(".")[0].split(":")[0] in SWEEPKIT_KEYS or "is empty" in p
    ]
    broken += [
        f"{key}: the sweep runs a W&B Launch job; sweepkit runs its program: or command:, "
        "or a --function"
        for key in ("job", "image_uri")
        if key in config
    ]
    if isinstance(config.get("command"), list):
        from sweepkit.program import missing_program  # imports wandb: only for a command

        broken += [f"command: {missing}" for missing in [missing_program(dict(config))] if missing]
    cannot = _engine_refusals(config)
    if not broken and not cannot:
        return Findings([], problems + _command_warnings(config))
    # Any problem may be why the engine refused; its own words are added unless they repeat one.
    said = [
        r
        for r in cannot
        if (m := _with_parameter_path(r.removeprefix(ENGINE_CANNOT), config)) not in problems
        and not _repeats(m, problems)
    ]
    return Findings(list(dict.fromkeys(problems + broken + said)), [])


def _command_warnings(config: Mapping[str, Any]) -> list[str]:
    if not isinstance(config.get("command"), list):
        return []
    from sweepkit.program import unknown_macros  # imports wandb: only for configs with a command

    return [
        f"command: {macro} is not a macro `wandb agent` knows: it expands to nothing"
        for macro in unknown_macros(dict(config))
    ]


def violations(config: Mapping[str, Any]) -> list[str]:
    """Every schema violation of a sweep config, one ``path: message`` per entry, deduplicated.

    >>> violations({"method": "grid", "parameters": {"lr": {"min": 0.1, "max": 0.01}}})
    ['parameters.lr: min 0.1 is not less than max 0.01']
    >>> violations({"method": "grid", "parameters": {"img_size": {"values": 256}}})
    ['parameters.img_size.values: must be a list (values: [256]), not 256']
    """
    errors = list(engine.schema_errors(config))
    empty = _empty_values(config.get("parameters"))
    # An empty `values` also fails the schema, with a vaguer message about the same parameter.
    problems = [
        m
        for e in errors
        for m in schema_messages.messages(e)
        if not any(_about(m, e.split(".values:")[0]) for e in empty)
    ]
    problems += empty
    try:  # the engine's checks beyond the schema: min < max, probabilities, deprecated distributions
        extra = engine.engine_violations(config)
    except Exception as exc:  # it raises instead of reporting on some malformed parameters
        # (0.2 compares a string `max` with `min` and raises TypeError): what the schema said
        # of them is the reason; the exception is only news when the schema found nothing.
        extra = [] if problems else [_one_line(exc)]
    raw_schema_messages = {e.message for e in errors}
    for message in extra:
        message = _with_parameter_path(message, config)
        # Skip the engine's repeats of what the schema (with a path) or `empty` already said.
        if message not in raw_schema_messages and not _repeats(message, problems):
            problems.append(message)
    return list(dict.fromkeys(problems))


_INVALID_PARAMETER = "invalid hyperparameter configuration: "  # the engine's, before the name


def _repeats(message: str, problems: list[str]) -> bool:
    """The engine's 'invalid hyperparameter configuration: NAME' when NAME is already reported.

    (Its "Invalid configuration for hyperparameter 'NAME'" is raised, never listed: a
    parameter that is not a mapping, which the schema has already said.)
    """
    if not message.startswith(_INVALID_PARAMETER):
        return False
    name = message.removeprefix(_INVALID_PARAMETER)
    return any(_about(p, f"parameters.{name}") for p in problems)


def _about(message: str, path: str) -> bool:
    """Whether a ``path: ...`` message is about `path` or something under it (not `path`s
    namesakes: ``parameters.ab`` is not about ``parameters.a``)."""
    return message.startswith((f"{path}.", f"{path}:"))


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


def _past_bounds(config: Mapping[str, Any]) -> list[str]:
    """Too many parameters, or a grid too large to hand out: said before anything lists it.

    >>> _past_bounds({"method": "grid", "parameters": {f"p{i}": {"values": list(range(10))}
    ...                                                 for i in range(7)}})
    ['parameters: a grid of 10,000,000 points; sweepkit hands out at most 1,000,000 (the \
engine lists every point each time it picks one): use random search, or fewer values']
    """
    parameters = config.get("parameters")
    count = _count_parameters(parameters)
    if count > MAX_PARAMETERS:
        return [f"parameters: {count:,} parameters (nested ones counted); a sweep has at most "
                f"{MAX_PARAMETERS:,}"]  # fmt: skip
    if config.get("method") != "grid" or not isinstance(parameters, Mapping):
        return []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            size = summarize(config).grid_size
    except Exception:  # malformed: the schema and the engine say what is wrong
        return []
    if size is None or size <= MAX_GRID_POINTS:
        return []
    return [f"parameters: a grid of {count_text(size)} points; sweepkit hands out at most "
            f"{MAX_GRID_POINTS:,} (the engine lists every point each time it picks one): use "
            "random search, or fewer values"]  # fmt: skip


def _count_parameters(parameters: Any) -> int:
    if not isinstance(parameters, Mapping):
        return 0
    return sum(
        _count_parameters(spec["parameters"])
        if isinstance(spec, Mapping) and isinstance(spec.get("parameters"), Mapping)
        else 1
        for spec in parameters.values()
    )


def count_text(n: int) -> str:
    """A count as people read it, however large (Python will not print an int of more than
    4,300 digits, and nobody reads one).

    >>> count_text(1234567), count_text(10**20), count_text(7 * 10**5000)
    ('1,234,567', 'about 1.0e20', 'about 7.0e5000')
    """
    if n < 10**15:
        return f"{n:,}"
    exponent = int(n.bit_length() * math.log10(2))
    while n >= 10 ** (exponent + 1):
        exponent += 1
    while n < 10**exponent:
        exponent -= 1
    return f"about {n // 10 ** (exponent - 1) / 10:.1f}e{exponent}"


def _grid_points(param: HyperParameter) -> int | None:
    if param.type == HyperParameter.CONSTANT:
        return 1
    if param.type == HyperParameter.CATEGORICAL:
        return len(param.config["values"])
    if param.type == HyperParameter.INT_UNIFORM:
        return max(0, param.config["max"] - param.config["min"] + 1)
    if param.type == HyperParameter.Q_UNIFORM:  # the grid uses numpy.arange(min, max, q)
        steps = (param.config["max"] - param.config["min"]) / param.config["q"]
        return max(0, math.ceil(steps)) if math.isfinite(steps) else MAX_GRID_POINTS + 1
    return None


ENGINE_CANNOT = "the sweeps engine cannot run this config: "


def _one_line(exc: BaseException) -> str:
    line = " ".join(str(exc).split()) or type(exc).__name__
    return line if len(line) <= MAX_LINE else f"{line[: MAX_LINE - 20]}... (cut short)"


MAX_LINE = 300  # an engine's message that quotes a whole config is cut to this


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
    """Ask the engine for a first suggestion (and early termination for a first check); its
    refusal, whatever it raises on either release, is a reason the config cannot run."""
    refusals = []
    if config.get("method") == "bayes" and "metric" not in config:
        refusals.append(
            "metric: bayes search needs a metric to optimise (metric: {name: ..., goal: ...})"
        )
    if "early_terminate" in config and "metric" not in config:
        refusals.append(
            "metric: early_terminate stops runs by a metric: add metric: {name: ..., goal: ...}"
        )
    if refusals:
        return refusals
    try:
        engine.next_run(config, [])
        if "early_terminate" in config:
            engine.stop_runs(config, [])
    except Exception as exc:
        return [ENGINE_CANNOT + _one_line(exc)]
    return []
