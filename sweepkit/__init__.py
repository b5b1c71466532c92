"""sweepkit: run Weights & Biases hyperparameter sweeps anywhere, online or fully offline.

`sweepkit.sweep` and `sweepkit.agent` take what `wandb.sweep` and `wandb.agent`
take (`sweepkit.api`); wandb is imported only when they are called.
"""

from sweepkit.api import agent, sweep

__version__ = "0.1.0"
__all__ = ["agent", "sweep"]
