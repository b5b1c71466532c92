"""sweepkit: run Weights & Biases hyperparameter sweeps anywhere, online or fully offline."""

__version__ = "0.1.0"
