"""W&B's open-source `sweeps` engine, as sweepkit calls it: the one module that imports it.

Two releases are in use, and a user gets whichever their numpy allows: 0.3
(numpy < 2) and 0.2 (the newest that installs beside numpy 2). Where sweepkit
touches the engine they differ, and this module makes them behave the same:

- **Runs handed to the engine.** 0.2 declares `SweepRun.history` and
  `summary_metrics` by their aliases only, and pydantic 2 silently drops the
  field names: bayes would see no metric and hyperband stop nothing. Runs are
  built by the aliases (`sampledHistory`, `summaryMetrics`), which both accept.
- **Nested parameters.** 0.2 looks a past run's nested value up by its
  flattened name, 0.3 by its path in the nested config; a past run is handed
  over with both, or a 0.2 grid never sees its points as done.
- **run_cap.** W&B documents it; 0.2's schema predates it. The engine never
  reads it (sweepkit's store enforces it), so it is validated with the
  definition 0.3's schema gives it, on either release.
- **Known 0.2 bugs** that no wrapper can fix (bayes numerics, hyperband's
  bands one value late) are said once, with how to get 0.3 (`caveat`).
"""

from __future__ import annotations

import copy
import functools
import importlib.metadata
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import jsonschema

with warnings.catch_warnings():  # the engine's pydantic models warn about v1-style options
    warnings.simplefilter("ignore")
    from sweeps.config import schema as _schema
    from sweeps.params import HyperParameter, HyperParameterSet

    import sweeps

__all__ = [
    "HyperParameter",
    "HyperParameterSet",
    "SweepRun",
    "caveat",
    "engine_violations",
    "next_run",
    "next_runs",
    "schema_branch",
    "schema_errors",
    "stop_runs",
    "sweep_run",
    "version",
]

SweepRun = sweeps.SweepRun
NESTING_DELIMITER = HyperParameterSet.NESTING_DELIMITER
# Keys W&B documents that 0.2's schema predates, with the schema 0.3 gives them: run_cap
# (sweepkit enforces it), and W&B Launch's job and image_uri (sweepkit refuses them itself,
# in one line that says why, on either release).
SWEEPKIT_KEYS = {
    "run_cap": {
        "type": "integer",
        "description": "Sweep will run no more than this number of runs, across any number of agents",
        "exclusiveMinimum": 0,
    },
    "job": {"type": "string", "description": "Launch Job to run"},
    "image_uri": {
        "type": "string",
        "description": "Sweeps on Launch will use this uri instead of a job",
    },
}
GET_0_3 = "pip install 'sweeps>=0.3' 'numpy<2'"


def version() -> str:
    """The installed engine's release, e.g. ``0.3.0``."""
    return importlib.metadata.version("sweeps")


def is_0_2() -> bool:
    """True for an engine before 0.3 (the release that installs beside numpy 2)."""
    major, minor = (int(part) for part in version().split(".")[:2])
    return (major, minor) < (0, 3)


def caveat(config: Mapping[str, Any]) -> str | None:
    """One line on what the installed engine is known to get wrong for this config, if anything.

    >>> caveat({"method": "grid"}) is None
    True
    """
    if not is_0_2():
        return None
    wrong = []
    if config.get("method") == "bayes":
        wrong.append("bayes breaks on metrics that overflow and on inf/NaN values")
    if "early_terminate" in config:
        wrong.append("hyperband checks each band one logged value late")
    if not wrong:
        return None
    return (
        f"sweeps engine {version()} (the one numpy 2 allows): {'; '.join(wrong)}; "
        f"0.3 fixes this: {GET_0_3}"
    )


@functools.cache
def _validator() -> jsonschema.protocols.Validator:
    """The engine's own schema validator, knowing the documented keys its schema may predate."""
    schema = _schema.sweep_config_jsonschema
    missing = {k: v for k, v in SWEEPKIT_KEYS.items() if k not in schema["properties"]}
    if not missing:
        return _schema.validator
    schema = copy.deepcopy(schema)
    schema["properties"].update(missing)
    return type(_schema.validator)(schema, format_checker=_schema.format_checker)


def schema_errors(config: Mapping[str, Any]) -> Iterator[jsonschema.ValidationError]:
    """Every way `config` breaks W&B's sweep schema (with `run_cap` known on either release)."""
    return _validator().iter_errors(config)


def schema_branch(branch: Mapping[str, Any]) -> Mapping[str, Any]:
    """One alternative of the schema's ``anyOf``, its ``$ref`` (``#/definitions/X``) resolved."""
    ref = branch.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/definitions/"):
        return branch
    return _schema.sweep_config_jsonschema["definitions"].get(ref.rsplit("/", 1)[1], {})


def engine_violations(config: Mapping[str, Any]) -> list[str]:
    """The engine's checks beyond its schema: min < max, probabilities, deprecated distributions.

    Raises:
        ValueError: the engine raises rather than reports on some malformed parameters.
    """
    known = _schema.sweep_config_jsonschema["properties"]
    # Keys sweepkit implements are checked by `schema_errors`; an engine that predates them
    # would call them unexpected.
    for_engine = {k: v for k, v in config.items() if k in known or k not in SWEEPKIT_KEYS}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return list(sweeps.schema_violations_from_proposed_config(for_engine))


def sweep_run(
    name: str,
    *,
    state: str,
    config: dict[str, Any],
    history: list[dict[str, Any]] | None = None,
    summary: dict[str, Any] | None = None,
    parameter_names: list[str] | None = None,
) -> sweeps.SweepRun:
    """A past or running run as the engine reads it, the same on 0.2 and 0.3.

    Args:
        name: the run's id.
        state: a `sweeps.RunState` value (running, finished, failed, crashed, killed).
        config: ``{name: {"value": v}}`` as the engine suggested it (nested for nested parameters).
        history: the sweep metric as logged, ``[{metric: v}, ...]``.
        summary: the final value of each logged scalar.
        parameter_names: the sweep's flattened parameter names (`parameter_names`), so that
            nested values can be found by either release.

    >>> run = sweep_run("r1", state="finished", config={}, history=[{"loss": 2.0}, {"loss": 1.0}])
    >>> run.metric_extremum("loss", kind="minimum")
    1.0
    """
    return sweeps.SweepRun(
        name=name,
        state=state,
        config=_with_flat_names(config, parameter_names or []),
        # By the aliases: 0.2 accepts nothing else and drops the field names without a word.
        sampledHistory=history or [],
        summaryMetrics=summary or {},
    )


def parameter_names(config: Mapping[str, Any]) -> list[str]:
    """The sweep's parameters as the engine names them (nested ones flattened)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [p.name for p in HyperParameterSet.from_config(config["parameters"])]


_MISSING = object()


def _with_flat_names(config: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """Add ``outer<delimiter>inner: {value: v}`` for each nested parameter (0.2 looks there)."""
    flat = {}
    for name in names:
        if NESTING_DELIMITER not in name:
            continue
        outer, *inner = name.split(NESTING_DELIMITER)
        node = config.get(outer, {}).get("value")
        for key in inner:
            node = node.get(key, _MISSING) if isinstance(node, dict) else _MISSING
        if node is not _MISSING:
            flat[name] = {"value": node}
    return {**config, **flat} if flat else config


def load_methods() -> None:
    """Import the engine's search and stopping methods now, as its first `next_run` or
    `stop_runs` would (bayes brings scipy and scikit-learn). A claim asks the engine inside
    the transaction that holds the sweep, where every other agent of the sweep would wait
    out that import, one agent after another."""
    from sweeps import bayes_search, grid_search, hyperband_stopping, random_search  # noqa: F401


def next_run(config: Mapping[str, Any], runs: list[sweeps.SweepRun]) -> sweeps.SweepRun | None:
    """The engine's next suggestion for the sweep, None when it has nothing left (grid done)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sweeps.next_run(dict(config), runs)


def next_runs(
    config: Mapping[str, Any], runs: list[sweeps.SweepRun], n: int
) -> list[sweeps.SweepRun]:
    """The engine's next `n` suggestions in its order, fewer where it has no more (grid's end)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [run for run in sweeps.next_runs(dict(config), runs, n=n) if run is not None]


def stop_runs(config: Mapping[str, Any], runs: list[sweeps.SweepRun]) -> list[sweeps.SweepRun]:
    """The runs the sweep's early_terminate rule (hyperband) would stop now."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return list(sweeps.stop_runs(dict(config), runs))
