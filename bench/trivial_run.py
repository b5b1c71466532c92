"""The run bench/agent_overhead.py sweeps: W&B's function-agent contract and nothing else.

The local agent imports it by name (``bench.trivial_run:trivial``) in its fork
server and its run processes, so it lives in a module of its own rather than in
the benchmark script (which is ``__main__`` there).
"""

from __future__ import annotations

import wandb


def trivial() -> None:
    """One real (offline) wandb run that logs one value of the sweep's metric."""
    run = wandb.init()
    run.log({"loss": run.config.get("x", 0.0) ** 2})
    run.finish()
