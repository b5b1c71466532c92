"""What the ROC and PR curves and the captioned images add to a run, side by side in one process.

Alternates whole 1-epoch runs of `sweepkit.train.run_training` on the bundled
sample (real offline wandb runs, each from `wandb.init` to `finish`): with
everything every run logs (the defaults), and with `curves=false` and
`caption_images=0`. Both log the prediction table and the confusion matrix.
The median round counts. A warm-up run of each comes first, so the rounds
compare steady runs; what a fresh process pays once to import what the curves
need (pandas, sklearn.metrics) is measured apart, in a new interpreter.

    python bench/run_extras.py                  # 1 epoch, the whole sample (4,000 / 1,000)
    python bench/run_extras.py --max-train 500  # a quicker run; the test set stays whole

Prints seconds per run of each, the difference, and the ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import wandb

from sweepkit.train import run_training

WITHOUT = {"curves": False, "caption_images": 0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; median counts")
    parser.add_argument("--max-train", type=int, default=0, help="training images; 0 = all")
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 = torch's default")
    args = parser.parse_args()
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    root = tempfile.mkdtemp(prefix="sweepkit-bench-")
    os.environ.setdefault("WANDB_DIR", root)
    os.environ.setdefault("WANDB_DATA_DIR", os.path.join(root, "data"))
    base = {"dataset": "sample", "max_train": args.max_train, "threads": args.threads}

    def one_run(extra: dict) -> float:
        start = time.perf_counter()
        run_training({**base, **extra})
        return time.perf_counter() - start

    one_run(WITHOUT), one_run({})  # warm-up: data unpacked and cached, everything imported
    with_extras, without = [], []
    for _ in range(args.rounds):
        with_extras.append(one_run({}))
        without.append(one_run(WITHOUT))
    wandb.teardown()

    on, off = statistics.median(with_extras), statistics.median(without)
    print(f"1-epoch runs on the sample (max_train {args.max_train or 'all'}), {args.rounds} rounds")
    print(f"with ROC, PR, 16 captioned images {on:7.2f} s/run   rounds: {_list(with_extras)}")
    print(f"without them                      {off:7.2f} s/run   rounds: {_list(without)}")
    print(f"they add {on - off:+.2f} s per run: ratio {on / off:.3f}x")
    print(f"importing pandas and sklearn.metrics in a fresh process: {_import_seconds():.2f} s")


def _import_seconds() -> float:
    """What a new process that already has torch and wandb pays to import the curves' needs."""
    code = (
        "import time, torch, wandb; t = time.perf_counter(); import pandas, sklearn.metrics;"
        " print(time.perf_counter() - t)"
    )
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                check=True).stdout)  # fmt: skip


def _list(times: list[float]) -> str:
    return ", ".join(f"{t:.2f}" for t in times)


if __name__ == "__main__":
    main()
