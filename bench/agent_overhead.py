"""What a sweep costs besides training: sweepkit's local agent against Optuna, in one process run.

1. A random-search sweep of N runs (--runs) of a trivial W&B function
   (bench/trivial_run.py: wandb.init, one wandb.log, finish; offline) through
   sweepkit's local agent on a fresh store: each run its own process, forked
   from the agent's warm fork server; the store, the `sweeps` engine and the
   read of the run's wandb log included. Then the same N trials through Optuna
   (SQLite storage, random sampler), each doing the same wandb logging inside
   Optuna's process. For each side: all-in seconds per run (the whole sweep's
   wall time / N), steady seconds per run (the median time from one run's start
   to the next's) and the start-up (the rest: starting wandb-core on both
   sides; the agent's fork server importing wandb and the engine's first
   suggestion importing scipy; Optuna creating its study). Targets: <= 1.5 s
   per run with wandb.init/finish, and <= 1.2x Optuna's.
2. The store and scheduler alone, no process and no wandb: claim and finish
   --store-runs random-search runs (with a metric, and without), ms per run over
   all of them and over the last 100 (target < 20 ms per run at 1,000 runs).
3. The bayes suggestion time (`Store.claim_run` on a bayes sweep of three
   continuous parameters) at 50, 200 and 500 finished runs: the median and the
   slowest of a few claims at each size.

The machine may be shared and noisy: compare the figures of one run with each
other (the ratios), not with another run's.

    python bench/agent_overhead.py                                # 20 runs, 1,000 store runs
    python bench/agent_overhead.py --runs 50 --bayes 50,200,500,1000
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import wandb

from sweepkit.backends.local import LocalBackend
from sweepkit.backends.store import Store, open_store
from sweepkit.core.records import MetricTally

# Each agent run process re-executes this script's top level (multiprocessing's fork server
# children import the parent's __main__, as __mp_main__): keep it to what the fork server
# has preloaded (wandb, sweepkit). Optuna is imported where it is used, else every agent
# run would pay for importing it (~75 ms).

REPO = Path(__file__).resolve().parent.parent
# The fork server and the runs import the run function by name (bench.trivial_run:trivial):
# they need the repository root on their path.
sys.path.insert(0, str(REPO))
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p
)

FUNCTION = "bench.trivial_run:trivial"
METRIC = {"name": "loss", "goal": "minimize"}
X = {"distribution": "uniform", "min": -3.0, "max": 3.0}
RANDOM_SWEEP = {"method": "random", "metric": METRIC, "parameters": {"x": X}}
BAYES_SWEEP = {
    "method": "bayes",
    "metric": METRIC,
    "parameters": {
        "x": X,
        "y": {"distribution": "uniform", "min": -1.0, "max": 1.0},
        "lr": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-1},
    },
}


class Timing:
    """One side's sweep: when it started, when each run started, when the last one ended."""

    def __init__(self, started: float, run_starts: list[float], ended: float) -> None:
        self.runs = len(run_starts)
        self.total = ended - started
        gaps = [b - a for a, b in zip(run_starts, [*run_starts[1:], ended], strict=True)]
        self.all_in = self.total / self.runs
        self.steady = statistics.median(gaps)
        self.startup = self.total - self.runs * self.steady


def time_agent(runs: int, workdir: Path) -> Timing:
    """The local agent performing `runs` runs of a fresh random sweep, start-up included."""
    backend = LocalBackend(workdir / "sweepkit.db")
    sweep_id = backend.create(RANDOM_SWEEP)
    started = time.time()
    result = backend.agent(sweep_id, function=FUNCTION, count=runs)
    ended = time.time()
    assert (result.performed, result.failed) == (runs, 0), result
    rows = backend.store.runs(sweep_id)
    assert all(r.state == "finished" and "loss" in r.summary for r in rows), rows
    # A run's row is written when the agent claims it: its created_at is the run's start.
    return Timing(started, [r.created_at for r in rows], ended)


def time_optuna(trials: int, workdir: Path) -> Timing:
    """An Optuna study of `trials` trials, each logging to its own wandb run, study creation included."""
    import optuna

    run_starts: list[float] = []

    def objective(trial: optuna.Trial) -> float:
        run_starts.append(time.time())
        x = trial.suggest_float("x", X["min"], X["max"])
        # wandb 0.31 returns a still-active run on a second init by default: finish_previous
        # makes each trial a run of its own even if the last one did not reach finish().
        run = wandb.init(project="sweepkit-bench", config=trial.params, reinit="finish_previous")
        loss = run.config.get("x", 0.0) ** 2
        run.log({"loss": loss})
        run.finish()
        assert x == run.config["x"]
        return loss

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started = time.time()
    study = optuna.create_study(
        storage=f"sqlite:///{workdir / 'optuna.db'}",
        sampler=optuna.samplers.RandomSampler(),
        direction="minimize",
    )
    study.optimize(objective, n_trials=trials)
    ended = time.time()
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(complete) == trials, study.trials
    return Timing(started, run_starts, ended)


def claim_and_finish(store: Store, sweep_id: str, loss: Callable[[dict], float]) -> float:
    """Claim the sweep's next run, finish it with `loss` of its config; seconds the claim took."""
    start = time.perf_counter()
    run = store.claim_run(sweep_id)
    claimed = time.perf_counter() - start
    assert run is not None
    value = loss({k: v["value"] for k, v in run.config.items()})
    store.finish_run(
        sweep_id,
        run.id,
        state="finished",
        progress=MetricTally("loss").replay([value], {"loss": value}),
        summary={"loss": value},
        run_dir=None,
    )
    return claimed


def store_ms_per_run(config: dict, total: int, path: Path) -> tuple[float, float]:
    """Claim and finish `total` runs: mean ms per run (claim + finish) over all, and the last 100."""
    store = open_store(path)
    sweep_id = store.create_sweep(config)
    times = []
    for _ in range(total):
        start = time.perf_counter()
        claim_and_finish(store, sweep_id, lambda c: c["x"] ** 2)
        times.append(time.perf_counter() - start)
    store.close()
    return 1000 * statistics.mean(times), 1000 * statistics.mean(times[-100:])


def bayes_claim_ms(
    sizes: list[int], samples: int, path: Path
) -> tuple[dict[int, list[float]], float]:
    """Claim times (ms) with `size`, size+1, ... finished runs, `samples` of each size; and seconds spent."""
    store = open_store(path)
    sweep_id = store.create_sweep(BAYES_SWEEP)
    start = time.perf_counter()
    claims = [  # claims[n]: the claim made with n finished runs
        1000 * claim_and_finish(store, sweep_id, lambda c: c["x"] ** 2 + c["y"] ** 2)
        for _ in range(max(sizes) + samples)
    ]
    store.close()
    return {size: claims[size : size + samples] for size in sizes}, time.perf_counter() - start


def verdict(value: float, target: float) -> str:
    return "ok" if value <= target else "MISSED"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="runs (and Optuna trials) to time")
    parser.add_argument("--store-runs", type=int, default=1000, help="runs for the store alone")
    parser.add_argument(
        "--bayes", default="50,200,500", help="finished-run counts to time bayes claims at"
    )
    parser.add_argument("--bayes-samples", type=int, default=5, help="claims timed at each count")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="sweepkit-bench-"))
    os.environ.update(
        WANDB_MODE="offline",
        WANDB_SILENT="true",
        WANDB_DIR=str(workdir / "wandb-dir"),
        WANDB_DATA_DIR=str(workdir / "wandb-data"),
        WANDB_CACHE_DIR=str(workdir / "wandb-cache"),
        WANDB_CONFIG_DIR=str(workdir / "wandb-config"),
    )
    for name in ("wandb-dir", "wandb-data", "wandb-cache", "wandb-config"):
        (workdir / name).mkdir()
    print(f"workdir {workdir}; {os.cpu_count()} CPUs; wandb {wandb.__version__}")

    # 1. The agent first (a cold fork server, its own wandb-core), then Optuna in this
    # process with a wandb-core of its own: each side pays its own start-up.
    agent = time_agent(args.runs, workdir)
    wandb.teardown()
    os.environ.pop("WANDB_SERVICE", None)
    study = time_optuna(args.runs, workdir)
    print(f"\n{args.runs} runs of a trivial wandb function (init, one log, finish; offline)")
    print(f"{'':12s} {'all-in':>13s} {'steady':>13s} {'start-up':>9s} {'total':>8s}")
    for name, t in (("local agent", agent), ("optuna", study)):
        print(
            f"{name:12s} {t.all_in:7.3f} s/run {t.steady:7.3f} s/run"
            f" {t.startup:7.2f} s {t.total:6.1f} s"
        )
    all_in, steady = agent.all_in / study.all_in, agent.steady / study.steady
    print(
        f"ratio agent/optuna: all-in {all_in:.2f}x ({verdict(all_in, 1.2)}),"
        f" steady {steady:.2f}x ({verdict(steady, 1.2)})   (target <= 1.2x)"
    )
    print(
        f"agent per run, all-in: {agent.all_in:.3f} s ({verdict(agent.all_in, 1.5)})"
        "   (target <= 1.5 s with wandb.init/finish)"
    )
    print("(each agent run is its own process; Optuna's trials run inside Optuna's process)")

    # 2. The store and the scheduler alone.
    print(
        f"\nstore + scheduler alone: claim and finish {args.store_runs} runs (target < 20 ms/run)"
    )
    no_metric = {k: v for k, v in RANDOM_SWEEP.items() if k != "metric"}
    for label, config, db in (
        ("random, metric loss", RANDOM_SWEEP, "store-metric.db"),
        ("random, no metric", no_metric, "store-plain.db"),
    ):
        mean_ms, last_ms = store_ms_per_run(config, args.store_runs, workdir / db)
        print(
            f"{label:20s} {mean_ms:6.2f} ms/run over all, {last_ms:6.2f} ms/run over the last 100"
        )

    # 3. Bayes suggestions as the sweep grows.
    sizes = sorted(int(s) for s in args.bayes.split(","))
    claims, seconds = bayes_claim_ms(sizes, args.bayes_samples, workdir / "bayes.db")
    print(
        f"\nbayes claim (3 continuous parameters), {args.bayes_samples} claims at each size"
        f" ({seconds:.0f} s to fill {max(sizes) + args.bayes_samples} runs)"
    )
    for size, ms in claims.items():
        print(
            f"{size:5d} finished runs: median {statistics.median(ms):7.1f} ms, slowest {max(ms):7.1f} ms"
        )


if __name__ == "__main__":
    main()
