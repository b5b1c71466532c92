"""The run bench/agent_watch.py watches: a function that logs `loss` every step, N steps.

`python bench/steps_run.py N` runs it alone (offline, its own wandb-core), the
baseline; the agent imports it by name (``bench.steps_run:train``).
"""

from __future__ import annotations

import sys

import wandb


def train(steps: int | None = None) -> None:
    """One real (offline) wandb run logging `loss` at every one of its steps."""
    with wandb.init(config={"steps": steps} if steps else None) as run:
        for step in range(int(run.config["steps"])):
            run.log({"loss": 1.0 / (step + 1)})


if __name__ == "__main__":
    train(int(sys.argv[1]))
