"""The train function's hyperparameters: defaults, types and checks.

Defaults are the seed notebook's (W&B's Tables quickstart). Values arrive from
sweeps as JSON numbers (bayes may send ``32.0`` for an int), from the command
line as strings, or from Python callers as anything; `TrainConfig.from_mapping`
turns them into one typed object or raises a single `ConfigError` that names
every bad key at once.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sweepkit.errors import ConfigError

DATASETS = ("auto", "mnist", "sample")
PRECISIONS = ("auto", "fp32", "bf16")
WATCH_MODES = ("none", "gradients", "parameters", "all")  # wandb.watch's `log`, or off


def default_data_dir() -> str:
    """Where MNIST is looked for and downloaded to: $SWEEPKIT_DATA_DIR or ~/.cache/sweepkit/data."""
    return os.environ.get("SWEEPKIT_DATA_DIR") or str(Path.home() / ".cache" / "sweepkit" / "data")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters and run settings of `sweepkit.train.train`.

    >>> TrainConfig.from_mapping({"lr": "0.01", "l1_size": 16.0})[0].l1_size
    16
    """

    # The seed's hyperparameters.
    epochs: int = 1
    batch_size: int = 32
    lr: float = 0.001
    l1_size: int = 32
    l2_size: int = 64
    conv_kernel: int = 5
    num_batches_to_log: int = 10
    images_per_batch: int = 32
    # What a user also wants to set.
    seed: int = 0
    dataset: str = "auto"  # auto: full MNIST if on disk or downloadable, else the bundled sample
    data_dir: str = dataclasses.field(default_factory=default_data_dir)
    max_train: int = 0  # cap on training images for quick runs; 0 = all
    max_test: int = 0  # cap on test images; 0 = all
    threads: int = 0  # torch intra-op threads; 0 = torch's default
    device: str = "auto"  # auto, cpu, cuda, cuda:N
    precision: str = "auto"  # auto: bf16 autocast where the hardware does bf16 natively, else fp32
    log_interval: int = 50  # training steps between `loss` points
    # What a run logs besides its curves and the prediction table (docs/training.md: "What every run logs").
    curves: bool = True  # ROC and precision-recall curves over the whole test set, at the end
    caption_images: int = 16  # test images logged per epoch captioned "Pred: X Truth: Y"; 0 = off
    # wandb.watch: histograms of gradients and/or parameters every `watch_freq` steps. Off by
    # default: it costs time on every training step (bench/watch_cost.py, docs/performance.md).
    watch: str = "none"
    watch_freq: int = 100

    @property
    def img_count(self) -> int:
        """Prediction-table rows per epoch as the seed computes it (capped at 10,000)."""
        return min(10000, self.num_batches_to_log * self.images_per_batch)

    def to_dict(self) -> dict[str, Any]:
        """Every setting plus the seed's derived `img_count`, as logged to the run config."""
        return {**dataclasses.asdict(self), "img_count": self.img_count}

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> tuple[TrainConfig, list[str]]:
        """Build a checked config from loosely typed values.

        Args:
            values: any mapping (a dict, `wandb.config`); missing keys take defaults.

        Returns:
            The config and the sorted keys it did not know (left to the caller
            to report; sweeps often carry extra keys).

        Raises:
            ConfigError: naming every key whose value is unusable.
        """
        known = {f.name: f for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        problems: list[str] = []
        for key, raw in values.items():
            field = known.get(key)
            if field is None:
                continue
            try:
                kwargs[key] = _coerce(raw, field.type)
            except ValueError as exc:
                problems.append(f"{key}: {exc}")
        unknown = sorted(k for k in values if k not in known and k != "img_count")
        if not problems:
            config = cls(**kwargs)
            problems = config._range_problems()
        if problems:
            raise ConfigError("invalid train config: " + "; ".join(problems))
        return config, unknown

    def _range_problems(self) -> list[str]:
        checks = [
            ("epochs", self.epochs >= 1, "must be >= 1"),
            ("batch_size", self.batch_size >= 1, "must be >= 1"),
            ("lr", math.isfinite(self.lr) and self.lr > 0, "must be a finite number > 0"),
            ("l1_size", self.l1_size >= 1, "must be >= 1"),
            ("l2_size", self.l2_size >= 1, "must be >= 1"),
            (
                "conv_kernel",
                self.conv_kernel >= 1 and self.conv_kernel % 2 == 1,
                "must be odd and >= 1 ('same' padding needs an odd kernel)",
            ),
            ("num_batches_to_log", self.num_batches_to_log >= 0, "must be >= 0"),
            ("images_per_batch", self.images_per_batch >= 0, "must be >= 0"),
            ("dataset", self.dataset in DATASETS, f"must be one of {', '.join(DATASETS)}"),
            ("precision", self.precision in PRECISIONS, f"must be one of {', '.join(PRECISIONS)}"),
            ("max_train", self.max_train >= 0, "must be >= 0 (0 = all)"),
            ("max_test", self.max_test >= 0, "must be >= 0 (0 = all)"),
            ("threads", self.threads >= 0, "must be >= 0 (0 = torch's default)"),
            ("log_interval", self.log_interval >= 1, "must be >= 1"),
            ("caption_images", self.caption_images >= 0, "must be >= 0 (0 = off)"),
            ("watch", self.watch in WATCH_MODES, f"must be one of {', '.join(WATCH_MODES)}"),
            ("watch_freq", self.watch_freq >= 1, "must be >= 1"),
            (
                "device",
                self.device in ("auto", "cpu", "cuda") or _is_cuda_index(self.device),
                "must be auto, cpu, cuda or cuda:N",
            ),
        ]
        return [
            f"{key} {message} (got {getattr(self, key)!r})" for key, ok, message in checks if not ok
        ]


def _is_cuda_index(device: str) -> bool:
    prefix, _, index = device.partition(":")
    return prefix == "cuda" and index.isdigit()


TRUE_WORDS = ("true", "yes", "on", "1")
FALSE_WORDS = ("false", "no", "off", "0")


def _coerce(raw: Any, type_name: str) -> Any:
    """Convert one value to the field's type ('int', 'float', 'str' or 'bool'), strictly."""
    if type_name == "str":
        if isinstance(raw, str | Path):
            return str(raw)
        raise ValueError(f"expected a string, got {raw!r}")
    if type_name == "bool":
        # Sweeps send JSON booleans (or 0/1), `--set` sends words.
        if isinstance(raw, bool) or (isinstance(raw, int) and raw in (0, 1)):
            return bool(raw)
        if isinstance(raw, str) and raw.strip().lower() in TRUE_WORDS + FALSE_WORDS:
            return raw.strip().lower() in TRUE_WORDS
        raise ValueError(f"expected true or false, got {raw!r}")
    if isinstance(raw, bool):
        raise ValueError(f"expected a number, got {raw!r}")
    if type_name == "int":
        if isinstance(raw, int):
            return raw
        if isinstance(raw, float) and raw.is_integer():
            return int(raw)
        if isinstance(raw, str):
            try:
                return int(raw.strip())
            except ValueError:
                pass
        raise ValueError(f"expected an integer, got {raw!r}")
    if type_name == "float":
        if isinstance(raw, int | float):
            return float(raw)
        if isinstance(raw, str):
            try:
                return float(raw.strip())
            except ValueError:
                pass
        raise ValueError(f"expected a number, got {raw!r}")
    raise TypeError(f"unsupported field type {type_name}")  # a bug in TrainConfig, not user input
