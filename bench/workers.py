"""Sweep throughput with parallel workers against one worker, side by side in one run.

The same small sweep of real `sweepkit.train` runs (the bundled MNIST sample,
1,000 training images each) is worked by `sweepkit agent --workers 2` (each
worker gets cores/2 threads) and by one worker with all the cores; each gets a
fresh store. Prints runs/min of each and the ratio (target >= 1.0 on a 2-core
machine: two workers must not lose to one by oversubscribing the CPU).

    python bench/workers.py                 # CPU workers
    python bench/workers.py --gpus all      # on a GPU box: --per-gpu 1 against --per-gpu 2
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

SWEEP = {
    "method": "grid",
    "metric": {"name": "acc", "goal": "maximize"},
    "parameters": {
        "lr": {"values": [0.001, 0.002, 0.003, 0.004]},
        "l1_size": {"values": [16, 32]},
        "dataset": {"value": "sample"},
        "max_train": {"value": 1000},
        "num_batches_to_log": {"value": 2},
    },
}


def sweep_seconds(workdir: Path, agent_flags: list[str]) -> float:
    """Create the sweep in a fresh store and time one `sweepkit agent` command over all of it."""
    env = {
        **os.environ,
        "SWEEPKIT_STORE": str(workdir / "sweeps.db"),
        "WANDB_DIR": str(workdir),
        "WANDB_MODE": "offline",
    }
    spec = workdir / "sweep.yaml"
    spec.write_text(yaml.safe_dump(SWEEP))
    sweepkit = [sys.executable, "-m", "sweepkit"]
    sweep_id = subprocess.run(
        [*sweepkit, "create", str(spec)], env=env, check=True, capture_output=True, text=True
    ).stdout.strip()
    start = time.perf_counter()
    subprocess.run(
        [*sweepkit, "agent", sweep_id, *agent_flags], env=env, check=True, capture_output=True
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--gpus", help="GPU mode: compare --per-gpu 1 and --per-gpu 2 on these GPUs"
    )
    args = parser.parse_args()
    runs = len(SWEEP["parameters"]["lr"]["values"]) * len(SWEEP["parameters"]["l1_size"]["values"])
    if args.gpus:
        baseline = ("--per-gpu 1", ["--gpus", args.gpus, "--per-gpu", "1"])
        contender = ("--per-gpu 2", ["--gpus", args.gpus, "--per-gpu", "2"])
    else:
        cores = os.cpu_count() or 1
        baseline = (f"1 worker x {cores} threads", ["--workers", "1"])
        contender = (f"2 workers x {max(1, cores // 2)} threads", ["--workers", "2"])
    rates = {}
    for name, flags in (baseline, contender):
        with tempfile.TemporaryDirectory(prefix="sweepkit-bench-") as tmp:
            rates[name] = runs / sweep_seconds(Path(tmp), flags) * 60
    for name, rate in rates.items():
        print(f"{name:24s} {rate:6.1f} runs/min  ({runs} runs)")
    print(f"ratio {contender[0]} / {baseline[0]}: {rates[contender[0]] / rates[baseline[0]]:.2f}x")


if __name__ == "__main__":
    main()
