"""A run the benchmarks watch: a function that logs `loss` every step, N steps.

`python bench/steps_run.py N` runs it alone (offline, its own wandb-core), the
baseline of bench/agent_watch.py, whose agent imports it by name
(``bench.steps_run:train``). `python bench/steps_run.py N PER_SECOND` logs at
most PER_SECOND steps a second, as training does (bench/dashboard.py).
"""

from __future__ import annotations

import sys
import time

import wandb


def train(steps: int | None = None, per_second: float | None = None) -> None:
    """One real (offline) wandb run logging `loss` at every one of its steps."""
    with wandb.init(config={"steps": steps} if steps else None) as run:
        start = time.monotonic()
        for step in range(int(run.config["steps"])):
            if per_second:
                time.sleep(max(0.0, start + step / per_second - time.monotonic()))
            run.log({"loss": 1.0 / (step + 1)})


if __name__ == "__main__":
    train(int(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else None)
