"""sweepkit: run Weights & Biases hyperparameter sweeps anywhere, online or fully offline.

`sweepkit.sweep` and `sweepkit.agent` take what `wandb.sweep` and `wandb.agent`
take (`sweepkit.api`); wandb is imported only when they are called.
"""

import sys
import types

from sweepkit.api import agent, sweep

__version__ = "0.1.0"
__all__ = ["agent", "sweep"]


class _Package(types.ModuleType):
    """Importing the submodule `sweepkit.agent` (the local run loop) would bind its module to
    the package's `agent` name, hiding the function; the function keeps the name."""

    def __setattr__(self, name: str, value: object) -> None:
        if name == "agent" and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
