"""Claims per second and claim latency: a SQLite file vs PostgreSQL on loopback, side by side.

For each store kind, sweep method (random, grid) and number of agent
processes (1, 8, 32): a fresh store holds a sweep of 1,000 finished runs,
each having logged 10,000 steps of the metric (what the store keeps of them:
count, min, max, last; no points, as the sweep has no early_terminate). Then
the agents, forked from this process so that each starts at once, claim
`--claims` more runs between them as fast as they can, finishing each (with
its 10,000-step metric) before the next claim, as real agents do. Printed:
claims per second (all claims over the wall time from the first to the
last), the median and p99 latency of one `claim_run`, and the duplicates
found (grid points handed out twice, or run ids twice): always 0, or the
benchmark fails.

PostgreSQL is a throwaway server started here (tests/pg_server.py: initdb,
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
from sweepkit.follow import RunMetrics  # noqa: E402

# The agents fork from here with the engine's methods imported (scipy, scikit-learn: ~0.5 s
# of CPU each), as agents that have started: the figures are claims, not start-up.
engine.load_methods()

PAST_RUNS = 1_000
STEPS = 10_000
# 1,200 grid points: 1,000 already run, the rest left to claim.
GRID = {
    "method": "grid",
    "metric": {"name": "loss", "goal": "minimize"},
    "parameters": {"a": {"values": list(range(40))}, "b": {"values": list(range(30))}},
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
PROGRESS = RunMetrics("loss").replay(CURVE, {"loss": CURVE[-1]})


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
            point = {"a": {"value": i // 30}, "b": {"value": i % 30}}
        else:
            point = {"a": {"value": rng.uniform(0, 40)}, "b": {"value": rng.uniform(0, 30)}}
        rows.append(
            (sweep_id, f"past{i:04d}", json.dumps(point), now + i * 1e-3, now, now,
             PROGRESS.count, PROGRESS.minimum, PROGRESS.maximum, PROGRESS.last, PROGRESS.value)
        )  # fmt: skip
    store._transact(  # the benchmark's shortcut past the store's API: a prefilled history
        lambda cursor: cursor.executemany(
            "INSERT INTO runs (sweep_id, id, state, config, created_at, heartbeat_at, ended_at,"
            " metric_count, metric_min, metric_max, metric_last, metric_value)"
            " VALUES (?, ?, 'finished', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    )
    store.close()
    return sweep_id


def agent(location: str, sweep_id: str, claims: int, start, out) -> None:
    """One agent process: wait for the start, then claim and finish `claims` runs."""
    store = open_store(location)
    start.wait()
    latencies, got = [], []
    for _ in range(claims):
        begin = time.perf_counter()
        run = store.claim_run(sweep_id)
        latencies.append(time.perf_counter() - begin)
        if run is None:
            break
        got.append((run.id, json.dumps(run.config, sort_keys=True)))
        store.finish_run(
            sweep_id, run.id, state="finished", progress=PROGRESS,
            summary={"loss": PROGRESS.value}, run_dir=None,
        )  # fmt: skip
    out.put((time.time(), latencies, got))
    store.close()


def measure(location: str, config: dict, agents: int, claims: int) -> dict:
    sweep_id = fill(location, config)
    context = multiprocessing.get_context("fork")  # this process has imported everything once
    start, out = context.Event(), context.Queue()
    each = claims // agents
    processes = [
        context.Process(target=agent, args=(location, sweep_id, each, start, out))
        for _ in range(agents)
    ]
    for process in processes:
        process.start()
    time.sleep(1.0)  # let every agent open its store before the start
    began = time.time()
    start.set()
    results = [out.get(timeout=1800) for _ in processes]  # a hang guard
    for process in processes:
        process.join(timeout=60)
    ended = max(r[0] for r in results)
    latencies = sorted(t for r in results for t in r[1])
    handed = [item for r in results for item in r[2]]
    ids = [run_id for run_id, _ in handed]
    points = [point for _, point in handed]
    duplicates = (len(ids) - len(set(ids))) + (
        len(points) - len(set(points)) if config["method"] == "grid" else 0
    )
    if config["method"] == "grid":  # nor a point already run before
        past = {json.dumps({"a": {"value": i // 30}, "b": {"value": i % 30}}, sort_keys=True)
                for i in range(PAST_RUNS)}  # fmt: skip
        duplicates += len(past & set(points))
    return {
        "claims": len(handed),
        "per_s": len(handed) / (ended - began),
        "median_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "duplicates": duplicates,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", default="1,8,32", help="agent process counts (1,8,32)")
    parser.add_argument("--methods", default="random,grid")
    parser.add_argument("--kinds", default="sqlite,postgres")
    parser.add_argument("--claims", type=int, default=192, help="claims per measurement (192)")
    parser.add_argument(
        "--postgres", metavar="URL", help="an existing database, else a throwaway server"
    )
    args = parser.parse_args()
    agent_counts = [int(n) for n in args.agents.split(",")]
    kinds = args.kinds.split(",")

    server = None
    if "postgres" in kinds and not args.postgres:
        from tests.pg_server import PostgresServer, find_binaries

        binaries = find_binaries()
        if binaries is None:
            sys.exit(
                "PostgreSQL's server is not installed (apt-get install postgresql), or --postgres URL"
            )
        server = PostgresServer(binaries).start()
    print(f"{PAST_RUNS:,} finished runs of {STEPS:,} steps each; {args.claims} claims per line; "
          f"{os.cpu_count()} CPUs")  # fmt: skip
    print(
        f"{'store':>9} {'method':>7} {'agents':>6} {'claims/s':>9} {'median':>9} {'p99':>9} {'dup':>4}"
    )
    failed = False
    try:
        for method in args.methods.split(","):
            config = GRID if method == "grid" else RANDOM
            for agents in agent_counts:
                for kind in kinds:
                    with tempfile.TemporaryDirectory() as tmp:
                        if kind == "sqlite":
                            location = str(Path(tmp) / "s.db")
                        else:
                            location = args.postgres or server.new_database()
                        got = measure(location, config, agents, max(args.claims, agents))
                    failed |= got["duplicates"] != 0
                    print(f"{kind:>9} {method:>7} {agents:>6} {got['per_s']:>9.0f} "
                          f"{got['median_ms']:>6.1f} ms {got['p99_ms']:>6.1f} ms {got['duplicates']:>4}",
                          flush=True)  # fmt: skip
    finally:
        if server is not None:
            server.close()
    print("target: postgres, 32 agents: >= 200 claims/s, p99 < 50 ms; duplicates: 0")
    if failed:
        sys.exit("duplicates found: a point or a run id was handed out twice")


if __name__ == "__main__":
    main()
