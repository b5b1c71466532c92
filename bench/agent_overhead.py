"""What a sweep costs besides training: sweepkit's local agent against Optuna, in one run.

1. Runs of a trivial W&B function (wandb.init, one wandb.log, finish) through
   sweepkit's local agent (each run its own process, forked from the warm fork
   server; the store, the engine and the run-log read included), and the same
   trials through Optuna with SQLite storage doing the same wandb logging in
   its own process. Each side is timed at two sweep sizes, so that the cost of
   one more run (the marginal cost) comes apart from the one-time start-up
   (importing wandb in the fork server, starting wandb-core). Prints both for
   each side and the ratios (targets: <= 1.5 s per run, <= 1.2x Optuna).
2. The store and scheduler alone: claim and finish 1,000 random-search runs
   (target < 20 ms per run at 1,000 runs).
3. The bayes suggestion time at 50, 200 and 500 finished runs.

    python bench/agent_overhead.py [--runs 20] [--store-runs 1000]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
import time
from pathlib import Path

import wandb


def trivial() -> None:
    """The function both sides run: a real (offline) wandb run that logs one value."""
    with wandb.init() as run:
        run.log({"loss": (float(run.config.get("x", 0.0)) - 3) ** 2})


RANDOM_SWEEP = {
    "method": "random",
    "metric": {"name": "loss", "goal": "minimize"},
    "parameters": {"x": {"distribution": "uniform", "min": 0, "max": 6}},
}


def sweepkit_seconds(runs: int, workdir: Path) -> float:
    """Wall time of one agent performing `runs` runs of a fresh sweep, start-up included."""
    from sweepkit.backends.local import LocalBackend

    backend = LocalBackend(workdir / f"sweeps-{runs}.db")
    sweep_id = backend.create({**RANDOM_SWEEP, "run_cap": runs})
    start = time.perf_counter()
    result = backend.agent(sweep_id, function=f"{Path(__file__).stem}:trivial")
    elapsed = time.perf_counter() - start
    assert (result.performed, result.failed) == (runs, 0), result
    return elapsed


def optuna_seconds(runs: int, workdir: Path) -> float:
    """Wall time of one Optuna study of `runs` trials, study creation included."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    wandb.teardown()  # each measurement starts its own wandb-core, as the agent does
    start = time.perf_counter()
    study = optuna.create_study(
        storage=f"sqlite:///{workdir / f'optuna-{runs}.db'}",
        sampler=optuna.samplers.RandomSampler(),
    )

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0, 6)
        with wandb.init(project="sweepkit-bench", config={"x": x}) as run:
            loss = (x - 3) ** 2
            run.log({"loss": loss})
        return loss

    study.optimize(objective, n_trials=runs)
    return time.perf_counter() - start


def store_ms_per_run(total: int, workdir: Path) -> tuple[float, float]:
    """Mean ms per claim+finish over all runs, and over the last 100."""
    from sweepkit.backends.store import Store

    store = Store(workdir / "store-only.db")
    sweep_id = store.create_sweep(RANDOM_SWEEP)
    times = []
    for _ in range(total):
        start = time.perf_counter()
        run = store.claim_run(sweep_id)
        assert run is not None
        loss = (run.config["x"]["value"] - 3) ** 2
        store.finish_run(
            sweep_id,
            run.name,
            state="finished",
            history=[{"loss": loss}],
            summary={"loss": loss},
            run_dir=None,
        )
        times.append(time.perf_counter() - start)
    return 1000 * statistics.mean(times), 1000 * statistics.mean(times[-100:])


def bayes_suggestion_ms(sizes: list[int], workdir: Path) -> dict[int, float]:
    from sweepkit.backends.store import Store

    store = Store(workdir / "bayes.db")
    sweep_id = store.create_sweep(
        {
            "method": "bayes",
            "metric": {"name": "loss", "goal": "minimize"},
            "parameters": {
                "x": {"distribution": "uniform", "min": 0, "max": 6},
                "lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-1},
            },
        }
    )
    finished, results = 0, {}
    for size in sizes:
        while finished < size:
            start = time.perf_counter()
            run = store.claim_run(sweep_id)
            last = time.perf_counter() - start
            x, lr = run.config["x"]["value"], run.config["lr"]["value"]
            loss = (x - 3) ** 2 + abs(math.log10(lr) + 2)
            store.finish_run(
                sweep_id,
                run.name,
                state="finished",
                history=[{"loss": loss}],
                summary={"loss": loss},
                run_dir=None,
            )
            finished += 1
        results[size] = 1000 * last  # the claim made with `size - 1` finished runs
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs", type=int, default=25, help="runs (and trials) in the larger sweep"
    )
    parser.add_argument(
        "--small", type=int, default=5, help="runs (and trials) in the smaller sweep"
    )
    parser.add_argument("--store-runs", type=int, default=1000)
    parser.add_argument(
        "--bayes", default="50,200,500", help="finished-run counts to time bayes at"
    )
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="sweepkit-bench-"))
    os.environ.update(
        WANDB_MODE="offline",
        WANDB_SILENT="true",
        WANDB_DIR=str(workdir),
        WANDB_DATA_DIR=str(workdir / "data"),
    )
    os.chdir(workdir)

    extra = args.runs - args.small
    rows = {}
    for name, measure in (("local agent", sweepkit_seconds), ("optuna", optuna_seconds)):
        small, large = measure(args.small, workdir), measure(args.runs, workdir)
        rows[name] = (
            (large - small) / extra,
            small - args.small * (large - small) / extra,
            large / args.runs,
        )
    print(
        f"{'':12s} {'per run':>10s} {'start-up':>10s} {'all-in per run at ' + str(args.runs):>24s}"
    )
    for name, (marginal, startup, all_in) in rows.items():
        print(f"{name:12s} {marginal:9.3f}s {startup:9.2f}s {all_in:23.3f}s")
    (ours, _, ours_all), (theirs, _, theirs_all) = rows["local agent"], rows["optuna"]
    print(f"ratio agent/optuna: per run {ours / theirs:.2f}x, all-in {ours_all / theirs_all:.2f}x"
          "   (targets: <= 1.5 s per run, <= 1.2x)")  # fmt: skip
    print("(the agent runs each run in its own process; Optuna runs its trials inside its own)")

    mean_ms, last_ms = store_ms_per_run(args.store_runs, workdir)
    print(
        f"store+scheduler, random: {mean_ms:.1f} ms/run over {args.store_runs} runs, {last_ms:.1f} ms/run for the last 100 (target < 20)"
    )
    for size, ms in bayes_suggestion_ms([int(s) for s in args.bayes.split(",")], workdir).items():
        print(f"bayes suggestion with {size:4d} finished runs: {ms:8.1f} ms")


if __name__ == "__main__":
    main()
