"""Claims per second and claim latency: a SQLite file vs PostgreSQL on loopback, side by side.

For each store kind, sweep method (random, grid) and number of agent
processes (1, 8, 32): a fresh store holds a sweep of 1,000 finished runs,
each having logged 10,000 steps of the metric (what the store keeps of them:
count, min, max, last; no points, as the sweep has no early_terminate). Then
the agents, forked from this process so that each starts at once, make their
first claim (a new connection's: the server's caches cold, the sweep read),
and once all have, claim more runs between them: as fast as they can, or
paced (`--paced 32@200`: claims offered at 200 per second between 32 agents,
as agents that train between their claims), finishing each (with its
10,000-step metric) before the next claim, as real agents do: 30 claims per
agent, at least 192, or 100 per agent when paced (the grid has 4,400 points,
3,400 of them left).
Printed: claims per second (the claims after the first over the wall time
from the start to the last), the median and p99 latency of one `claim_run`
after the first, the slowest first claim, and the duplicates found (grid
points handed out twice, or run ids twice, first claims included): always
0, or the benchmark fails.

PostgreSQL is a throwaway server started here (tests/helpers/pg_server.py: initdb,
pg_ctl on a free loopback port, fsync off; as root it runs as `postgres`), or
the database at --postgres URL. Target: PostgreSQL >= 200 claims/s with 32
agents and p99 < 50 ms.

    python bench/store_claims.py                       # everything (about 2 minutes on 2 cores)
    python bench/store_claims.py --agents 32 --methods random
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sweepkit import engine  # noqa: E402
from sweepkit.backends.store import open_store  # noqa: E402
from sweepkit.core.records import MetricTally  # noqa: E402

# The agents fork from here with the engine's methods imported (scipy, scikit-learn: ~0.5 s
# of CPU each), as agents that have started: the figures are claims, not start-up.
engine.load_methods()

PAST_RUNS = 1_000
STEPS = 10_000
# 10,000 grid points: 1,000 already run, the rest left to claim (3,200 at the paced line):
# more than a window of points ahead (scheduling.GRID_PREPARED), so agents work out new ones.
GRID_B = 250
GRID = {
    "method": "grid",
    "metric": {"name": "loss", "goal": "minimize"},
    "parameters": {"a": {"values": list(range(40))}, "b": {"values": list(range(GRID_B))}},
}
RANDOM = {
    "method": "random",
    "metric": {"name": "loss", "goal": "minimize"},
    "parameters": {
        "a": {"distribution": "uniform", "min": 0, "max": 40},
        "b": {"distribution": "uniform", "min": 0, "max": 30},
    },
}
# What a run that logged 10,000 steps hands the store when it ends (no new points: kept none).
CURVE = [1.0 / (i + 1) for i in range(STEPS)]
PROGRESS = MetricTally("loss").replay(CURVE, {"loss": CURVE[-1]})


def grid_point(i: int) -> dict:
    """The grid's i-th point in the engine's order (the last parameter varies fastest)."""
    return {"a": {"value": i // GRID_B}, "b": {"value": i % GRID_B}}


def fill(location: str, config: dict) -> str:
    """A sweep of `config` holding PAST_RUNS finished runs of STEPS logged steps each.

    The rows are written in one transaction through the store's own cursor (a
    claim each would take minutes for a grid): the first PAST_RUNS grid points,
    or as many random draws.
    """
    import random

    store = open_store(location)
    sweep_id = store.create_sweep(config)
    rng = random.Random(0)
    now = time.time()
    rows = []
    for i in range(PAST_RUNS):
        if config["method"] == "grid":
            point = grid_point(i)
        else:
            point = {"a": {"value": rng.uniform(0, 40)}, "b": {"value": rng.uniform(0, 30)}}
        rows.append(
            (sweep_id, f"past{i:04d}", i + 1, json.dumps(point), now + i * 1e-3, now, now,
             PROGRESS.count, PROGRESS.minimum, PROGRESS.maximum, PROGRESS.last, PROGRESS.value)
        )  # fmt: skip
    store._transact(  # the benchmark's shortcut past the store's API: a prefilled history
        lambda cursor: cursor.executemany(
            "INSERT INTO runs (sweep_id, id, seq, state, config, created_at, heartbeat_at,"
            " ended_at, metric_count, metric_min, metric_max, metric_last, metric_value)"
            " VALUES (?, ?, ?, 'finished', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    )
    store.close()
    return sweep_id


def claim_and_finish(store, sweep_id: str) -> tuple[float, tuple[str, str] | None]:
    """One claim's latency, and what it handed out (run id, config), finished as a run would
    (its agent prepares the next claim while the run trains, as sweepkit's agent does)."""
    begin = time.perf_counter()
    run = store.claim_run(sweep_id)
    latency = time.perf_counter() - begin
    if run is None:
        return latency, None
    store.prepare_claim(sweep_id)
    store.finish_run(
        sweep_id, run.id, state="finished", progress=PROGRESS,
        summary={"loss": PROGRESS.value}, run_dir=None,
    )  # fmt: skip
    return latency, (run.id, json.dumps(run.config, sort_keys=True))


def agent(location: str, sweep_id: str, claims: int, gates, out, every_s: float, seed: int) -> None:
    """One agent process: its first claim (a new connection's), then at the start `claims`
    more: one after the other, or with `every_s`, one every `every_s` s from a seeded offset.
    It leaves only once every agent is done, so that none measures another's exit."""
    import random

    ready, start, done = gates
    store = open_store(location)
    first_latency, first = claim_and_finish(store, sweep_id)
    ready.wait()
    start.wait()
    due = time.perf_counter() + random.Random(seed).uniform(0, every_s)
    latencies, got = [], [first] if first else []
    for k in range(claims):
        if every_s:
            time.sleep(max(0.0, due + k * every_s - time.perf_counter()))
        latency, handed = claim_and_finish(store, sweep_id)
        latencies.append(latency)
        if handed is None:
            break
        got.append(handed)
    ended = time.time()
    done.wait()
    out.put((ended, first_latency, latencies, got))
    store.close()


def measure(location: str, config: dict, agents: int, claims: int, rate: float) -> dict:
    """`claims` by `agents` processes: as fast as they can, or with `rate`, offered at `rate`
    claims per second between them (each agent claiming every agents / rate seconds)."""
    sweep_id = fill(location, config)
    context = multiprocessing.get_context("fork")  # this process has imported everything once
    ready, start, done = context.Barrier(agents + 1), context.Event(), context.Barrier(agents)
    out = context.Queue()
    each = claims // agents
    every_s = agents / rate if rate else 0.0
    processes = [
        context.Process(
            target=agent, args=(location, sweep_id, each, (ready, start, done), out, every_s, i)
        )
        for i in range(agents)
    ]
    for process in processes:
        process.start()
    ready.wait(timeout=600)  # every agent has made its first claim (a hang guard)
    began = time.time()
    start.set()
    results = [out.get(timeout=1800) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    ended = max(r[0] for r in results)
    firsts = sorted(r[1] for r in results)
    latencies = sorted(t for r in results for t in r[2])
    handed = [item for r in results for item in r[3]]
    ids = [run_id for run_id, _ in handed]
    points = [point for _, point in handed]
    duplicates = (len(ids) - len(set(ids))) + (
        len(points) - len(set(points)) if config["method"] == "grid" else 0
    )
    if config["method"] == "grid":  # nor a point already run before
        past = {json.dumps(grid_point(i), sort_keys=True) for i in range(PAST_RUNS)}
        duplicates += len(past & set(points))
    return {
        "claims": len(latencies),
        "per_s": len(latencies) / (ended - began),
        "median_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "first_max_ms": 1000 * firsts[-1],
        "duplicates": duplicates,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", default="1,8,32", help="agent process counts (1,8,32)")
    parser.add_argument("--methods", default="random,grid")
    parser.add_argument("--kinds", default="sqlite,postgres")
    parser.add_argument(
        "--claims",
        type=int,
        help="claims per measurement after each agent's first (30 per agent, at least 192;"
        " paced: 100 per agent)",
    )
    parser.add_argument(
        "--paced",
        default="32@200",
        help="AGENTS@RATE lines after the others, for each method: claims offered at RATE per"
        " second between AGENTS agents, as agents that train between claims (32@200; '' none)",
    )
    parser.add_argument(
        "--postgres", metavar="URL", help="an existing database, else a throwaway server"
    )
    args = parser.parse_args()
    kinds = args.kinds.split(",")
    # (method, agents, rate): rate 0 claims as fast as the agents can.
    lines = [
        (method, int(agents), 0.0)
        for method in args.methods.split(",")
        for agents in args.agents.split(",")
    ]
    for paced in filter(None, args.paced.split(",")):
        agents, rate = paced.split("@")
        lines += [(method, int(agents), float(rate)) for method in args.methods.split(",")]

    server = None
    if "postgres" in kinds and not args.postgres:
        from tests.helpers.pg_server import PostgresServer, find_binaries

        binaries = find_binaries()
        if binaries is None:
            sys.exit(
                "PostgreSQL's server is not installed (apt-get install postgresql), or --postgres URL"
            )
        server = PostgresServer(binaries).start()
    print(f"{PAST_RUNS:,} finished runs of {STEPS:,} steps each; {os.cpu_count()} CPUs")
    print(
        f"{'store':>9} {'method':>7} {'agents':>6} {'offered':>8} {'claims':>6} {'claims/s':>9}"
        f" {'median':>9} {'p99':>9} {'1st max':>9} {'dup':>4}"
    )
    failed = False
    try:
        for method, agents, rate in lines:
            config = GRID if method == "grid" else RANDOM
            # Paced: 100 claims an agent, long enough for grid agents to work their windows
            # of points out again several times (every ~30 claims at 32 agents).
            claims = args.claims or (100 * agents if rate else max(192, 30 * agents))
            for kind in kinds:
                with tempfile.TemporaryDirectory() as tmp:
                    if kind == "sqlite":
                        location = str(Path(tmp) / "s.db")
                    else:
                        location = args.postgres or server.new_database()
                    got = measure(location, config, agents, max(claims, agents), rate)
                failed |= got["duplicates"] != 0
                offered = f"{rate:.0f}/s" if rate else "max"
                print(f"{kind:>9} {method:>7} {agents:>6} {offered:>8} {got['claims']:>6} "
                      f"{got['per_s']:>9.0f} {got['median_ms']:>6.1f} ms {got['p99_ms']:>6.1f} ms "
                      f"{got['first_max_ms']:>6.0f} ms {got['duplicates']:>4}", flush=True)  # fmt: skip
    finally:
        if server is not None:
            server.close()
    print("target: postgres, 32 agents: >= 200 claims/s, p99 < 50 ms; duplicates: 0")
    if failed:
        sys.exit("duplicates found: a point or a run id was handed out twice")


if __name__ == "__main__":
    main()
