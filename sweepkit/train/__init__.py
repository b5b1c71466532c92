"""The reusable train function every sweep run calls: `sweepkit.train.train(config)`.

`train`, `run_training` and `TrainResult` are loaded on first use, so that
``sweepkit.train.config`` (checked by the CLI before anything runs) does not
pay for importing torch and wandb.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sweepkit.train.run import TrainResult, run_training, train

__all__ = ["TrainResult", "run_training", "train"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from sweepkit.train import run

        return getattr(run, name)
    raise AttributeError(f"module 'sweepkit.train' has no attribute {name!r}")
