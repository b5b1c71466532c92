"""What a sweep hands out next, decided on its runs as the store keeps them.

A store is only storage: inside its claim transaction it hands `choose` the
sweep and its runs (`ScheduledRun` records, no metric histories), and inserts
what comes back. Everything that decides lives here, once, for every store
kind: the point offered again (a crash up to --retries times, a preemption
always, --retry-failed), `run_cap`, `metric.target`, the `sweeps` engine's
suggestion, and whether a sweep with nothing left is finished.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import random
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from sweepkit import engine
from sweepkit.core.lifecycle import ENGINE_STATE, RunState
from sweepkit.core.records import ScheduledRun, StoredSweep

# Plain strings: compared once per run per claim, faster than the enum's own __eq__.
_RUNNING, _CRASHED, _PREEMPTED, _FAILED = (
    RunState.RUNNING.value,
    RunState.CRASHED.value,
    RunState.PREEMPTED.value,
    RunState.FAILED.value,
)
# The states of runs scheduling may act on: still going, or ended without a result.
UNSETTLED = (_RUNNING, _CRASHED, _PREEMPTED, _FAILED)


@dataclasses.dataclass(frozen=True)
class Choice:
    """What `choose` decided: a config to run (new, or a point again), or nothing."""

    config: dict[str, Any] | None = None  # {"name": {"value": v}}; None: nothing to hand out
    search_info: dict[str, Any] | None = None  # what the engine attached to its suggestion
    retry_of: ScheduledRun | None = None  # the run whose point this is again
    finished: bool = False  # nothing left, nothing running, nothing lost: the sweep is done

    @property
    def attempt(self) -> int:
        return self.retry_of.attempt + 1 if self.retry_of else 1


@dataclasses.dataclass(frozen=True)
class SweepRuns:
    """What a claim reads of a sweep's runs: enough to decide, at a cost that does not grow
    with the sweep for random search.

    Every run that scheduling may act on is here in full (`unsettled`: running,
    crashed, preempted, failed); of the others only what run_cap and
    metric.target ask (how many points, the metric's extremes). The engine's
    methods that read past runs (grid, bayes) get them all (`every`).
    """

    tries: int  # every run, retries too: the next run is the sweep's tries + 1st
    points: int  # runs that are not a retry: what run_cap counts
    metric_min: float | None  # over every run's metric value
    metric_max: float | None
    unsettled: list[ScheduledRun]  # running, crashed, preempted or failed, in claim order
    retried: frozenset[str]  # runs whose point a later run repeats
    every: list[ScheduledRun] | None = None  # all runs in claim order, when the engine reads them

    @classmethod
    def of(cls, runs: Sequence[ScheduledRun], *, with_every: bool = True) -> SweepRuns:
        """The same facts, from a list of every run (what a store's SQL computes)."""
        values = [r.metric_value for r in runs if r.metric_value is not None]
        return cls(
            tries=len(runs),
            points=sum(r.retry_of is None for r in runs),
            metric_min=min(values, default=None),
            metric_max=max(values, default=None),
            unsettled=[r for r in runs if r.state in UNSETTLED],
            retried=frozenset(_retried(runs)),
            every=list(runs) if with_every else None,
        )


def reads_past_runs(config: dict[str, Any]) -> bool:
    """Whether the engine's method needs the sweep's past runs (random search draws without)."""
    return config["method"] != "random"


def draw_ahead(config: dict[str, Any]) -> engine.SweepRun | None:
    """Random search's next draw, made before the claim's transaction; None for the methods
    that read past runs.

    The draw reads no runs, so making it while the sweep is held (the engine
    validates every parameter on each call) only makes every other agent of the
    sweep wait. Whether it is used is still decided inside the
    transaction (`choose`: a point offered again, `run_cap`, `metric.target`).
    """
    return None if reads_past_runs(config) else engine.next_run(config, [])


# Grid points a claim works out when it has no window or one nearly used up (GRID_REFILL):
# the engine's grid search reads every past run once, then each point costs little more.
GRID_AHEAD = 256
GRID_REFILL = 64  # fewer left: between two claims of one agent, every other agent may claim
# Grid points worked out while a run trains (Store.prepare_claim), once a window has fewer than
# a threshold drawn for each agent between GRID_PREPARE_BELOW and half a window: 32 agents
# claiming in turn use up such a window in 30 to 60 claims each, and, having started
# together, do not all work out their next one at once.
GRID_PREPARED = 2048
GRID_PREPARE_BELOW = 128


@dataclasses.dataclass(frozen=True)
class GridAhead:
    """The engine's next grid points past a sweep's first `seen` runs, worked out before a
    claim holds the sweep.

    The engine's grid search reads every past run, more as the sweep grows;
    done while the sweep is held, every other agent of the sweep waits it out. The engine hands out the first point, in its
    order, that no run has. So once more runs were claimed, its answer is the
    first of these points that none of them took, provided each of them took
    one of these points or repeats an older run's (a retry). A run that did
    neither (an agent with another engine release, a point from elsewhere, the
    same point written another way) makes `past` say it cannot tell, and the
    claim asks the engine with every run: the engine stays the only judge of
    what is next.
    """

    seen: int  # the sweep's runs the points were worked out past (its first `seen` in claim order)
    # In the engine's order, each as the store writes a run's config (`point_json`): a run took
    # a point if its config_json is that text, with no parsing.
    points: tuple[str, ...]
    last: bool  # the grid has no points past these

    def past(self, since: Sequence[ScheduledRun]) -> GridAhead | None:
        """This window once the runs claimed after its `seen` (`since`, all of them) have
        taken their points; None where it cannot say what the engine would: a run took a
        point it does not hold, or it has no point left short of the grid's end."""
        held = set(self.points)
        taken = set()
        for run in since:
            if run.config_json in held:
                taken.add(run.config_json)
            elif run.retry_of is None:
                return None
        left = tuple(point for point in self.points if point not in taken)
        if not left and not self.last:
            return None
        return GridAhead(self.seen + len(since), left, self.last)

    def needs_refill(self, below: int) -> bool:
        """Whether to work the window out again: fewer than `below` points left short of the
        grid's end."""
        return not self.last and len(self.points) < below


class GridWindows:
    """One agent's grid windows: the last it used of each sweep, and its own threshold below
    which it works a window out while its run trains (`Store.prepare_claim`), drawn between
    GRID_PREPARE_BELOW and half a window so that agents which started together do not all
    work one out at once."""

    def __init__(self) -> None:
        self.by_sweep: dict[str, GridAhead] = {}
        self.prepare_below = random.randint(GRID_PREPARE_BELOW, GRID_PREPARED // 2)

    def usable(
        self,
        sweep_id: str,
        *,
        kept: Callable[[], GridAhead | None],
        since: Callable[[int], Sequence[ScheduledRun]],
        below: int,
    ) -> GridAhead | None:
        """The window a claim may take its point from: this agent's last, less the runs
        claimed since (`since(seen)`); where that cannot tell or has fewer than `below`
        points left short of the grid's end, the sweep's newest (`kept()`, whichever agent
        kept it) less the runs since; None where neither will do: work one out from every
        run (`grid_ahead`)."""
        window = self.by_sweep.get(sweep_id)
        if window is not None:
            window = window.past(since(window.seen))
        if window is None or window.needs_refill(below):
            window = kept()
            if window is not None:
                window = window.past(since(window.seen))
        return window if window is not None and not window.needs_refill(below) else None

    def keep(self, sweep_id: str, window: GridAhead | None) -> None:
        """The window this agent's next claim starts from (None: none it can trust)."""
        if window is None:
            self.by_sweep.pop(sweep_id, None)
        else:
            self.by_sweep[sweep_id] = window


def grid_ahead(config: dict[str, Any], runs: Sequence[ScheduledRun], n: int) -> GridAhead:
    """The engine's next `n` points of a grid sweep past `runs` (every run it has)."""
    suggested = engine.next_runs(config, engine_runs(config, runs), n)
    points = tuple(point_json(run.config) for run in suggested)
    return GridAhead(seen=len(runs), points=points, last=len(points) < n)


def point_json(config: dict[str, Any]) -> str:
    """A run's config as the store writes it: JSON in the engine's key order, plain values."""
    return json.dumps(config, default=_tolist)


def choose(
    sweep: StoredSweep,
    runs: SweepRuns,
    *,
    max_retries: int,
    retry_ended_before: float | None = None,
    drawn: engine.SweepRun | None = None,
    ahead: GridAhead | None = None,
) -> Choice:
    """The sweep's next run.

    A point offered again comes first, oldest first: a crashed run's (up to
    `max_retries` times), a preempted run's (always: not the run's fault),
    and with `retry_ended_before`, a run's that failed or crashed for good
    before then. Otherwise, unless `run_cap` or `metric.target` is reached,
    the engine's suggestion (random search without the past runs: it draws
    independently of them; `drawn` is that draw made ahead, `draw_ahead`; grid
    the first point of `ahead`, when the store has taken out of it the runs
    claimed since it was worked out, `GridAhead.past`).

    >>> sweep = StoredSweep("local-x", None, None, None,
    ...     {"method": "grid", "parameters": {"a": {"values": [1]}}}, "running", 0.0)
    >>> choose(sweep, SweepRuns.of([]), max_retries=2).config
    {'a': {'value': 1}}
    """
    again = _offered_again(runs, max_retries, retry_ended_before)
    if again is not None:
        return Choice(config=again.config, retry_of=again)
    config = sweep.config
    suggestion = None
    if not sweep_is_done(config, runs):
        if ahead is not None:
            if ahead.points:
                return Choice(config=json.loads(ahead.points[0]))
        elif reads_past_runs(config):
            suggestion = engine.next_run(config, engine_runs(config, runs.every or []))
        else:
            suggestion = drawn if drawn is not None else engine.next_run(config, [])
    if suggestion is None:
        running = any(r.state == _RUNNING for r in runs.unsettled)
        return Choice(finished=not running and not lost(runs.unsettled, runs.retried))
    # The engine hands out numpy scalars; the run's param file and wandb want plain values.
    return Choice(config=_plain(suggestion.config), search_info=_plain(suggestion.search_info))


def _offered_again(
    runs: SweepRuns, max_retries: int, retry_ended_before: float | None
) -> ScheduledRun | None:
    before = -math.inf if retry_ended_before is None else retry_ended_before
    for run in runs.unsettled:
        if run.id in runs.retried:
            continue
        state = run.state
        if (
            (state == _CRASHED and run.attempt <= max_retries)
            or state == _PREEMPTED
            or (state in (_FAILED, _CRASHED) and run.ended_at is not None and run.ended_at < before)
        ):
            return run
    return None


def _retried(runs: Sequence[ScheduledRun]) -> set[str]:
    """Runs whose end a later run repeats."""
    return {run.retry_of for run in runs if run.retry_of}


def sweep_is_done(config: dict[str, Any], runs: SweepRuns) -> bool:
    """run_cap reached (points, not tries: a retry repeats a point already counted), or a run
    reached metric.target."""
    cap = config.get("run_cap")
    if cap is not None and runs.points >= cap:
        return True
    metric = config.get("metric") or {}
    target = metric.get("target")
    if target is None:
        return False
    if metric.get("goal", "minimize") == "maximize":
        return runs.metric_max is not None and runs.metric_max >= target
    return runs.metric_min is not None and runs.metric_min <= target


def lost(runs: Sequence[ScheduledRun], retried: frozenset[str] | set[str]) -> bool:
    """A crashed run that no later run repeats: the sweep is not finished while it is lost."""
    return any(run.state == _CRASHED and run.id not in retried for run in runs)


def unfinished_points(runs: Sequence[ScheduledRun], max_retries: int) -> dict[str, int]:
    """Points that ended without a result and will not be offered again on their own:
    {"failed": n, "crashed": m} (crashed past `max_retries`)."""
    retried = _retried(runs)
    return dict(
        Counter(
            run.state
            for run in runs
            if run.id not in retried
            and (run.state == _FAILED or (run.state == _CRASHED and run.attempt > max_retries))
        )
    )


def stops_runs(config: dict[str, Any]) -> bool:
    """Whether the sweep has an early_terminate rule the engine can apply (it needs a metric)."""
    return "early_terminate" in config and "metric" in config


def runs_to_stop(
    config: dict[str, Any], runs: Sequence[ScheduledRun], points: dict[str, list[float]]
) -> set[str]:
    """Running runs that the sweep's early_terminate rule (hyperband) would stop now."""
    stopped = engine.stop_runs(config, engine_runs(config, runs, points))
    return {run.name for run in stopped if run.state == "running"}


def engine_runs(
    config: dict[str, Any],
    runs: Sequence[ScheduledRun],
    points: dict[str, list[float]] | None = None,
) -> list[engine.SweepRun]:
    """The sweep's runs as the engine reads them: configs, the metric, its history.

    The engine reads a run's metric as the extremes of its history and its
    summary (bayes), its last point (bayes' `impute: latest`), and, for
    hyperband (`points`), its points in order. A run's history is handed over
    as its kept points, if any, followed by its min, max and last: the same
    answers as its whole history, at a size that does not grow with what it
    logged.
    """
    metric = (config.get("metric") or {}).get("name")
    names = tuple(engine.parameter_names(config))
    if points is None:  # a claim: grid and bayes hand the engine every run, each time
        return [_engine_run_cached(run, metric, names) for run in runs]
    # Hyperband writes its verdict into the records it is handed: fresh ones, never shared.
    return [_engine_run(run, metric, names, points.get(run.id, ())) for run in runs]


def _engine_run(
    run: ScheduledRun, metric: str | None, names: tuple[str, ...], kept: Sequence[float] = ()
) -> engine.SweepRun:
    tail = (
        [v for v in (run.metric_min, run.metric_max, run.metric_last) if v is not None]
        if run.metric_count > len(kept)
        else []
    )
    return engine.sweep_run(
        run.id,
        state=ENGINE_STATE[RunState(run.state)],
        config=run.config,
        history=[{metric: v} for v in (*kept, *tail)] if metric else [],
        summary={metric: run.metric_value} if metric and run.metric_value is not None else {},
        parameter_names=list(names),
    )


# Parsing a run's config and building its record (pydantic) cost as much as the engine's
# grid search itself, while the sweep is held: each is built once per agent. A run that
# changed (a beat, its end) is another ScheduledRun, so another entry; the engine only reads
# the records of a claim. 20,000 records of a few KB each bound the memory.
_engine_run_cached = functools.lru_cache(maxsize=20_000)(_engine_run)


def _plain(value: Any) -> Any:
    """Deep copy with numpy scalars and arrays turned into Python numbers and lists."""
    return json.loads(json.dumps(value, default=_tolist))


def _tolist(value: Any) -> Any:
    return value.tolist() if hasattr(value, "tolist") else str(value)
