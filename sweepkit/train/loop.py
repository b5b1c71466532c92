"""The training and evaluation passes: plain PyTorch, no wandb.

Where the time goes (docs/performance.md): the seed's CNN is small, so on a GPU a step
is bound by launches and host syncs, not arithmetic. Hence the data lives on
the device as one tensor and batches are index gathers (no DataLoader, no
per-image PIL transform), the loss is summed on the device and read only at
log points, and the optimizer step is fused where CUDA offers it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where and how tensors run: the device, bf16 autocast, memory format."""

    device: torch.device
    autocast: bool  # bf16 autocast (weights and optimizer state stay fp32)
    memory_format: torch.memory_format

    @classmethod
    def for_device(cls, device: torch.device, precision: str = "auto") -> Placement:
        """Choose the fast settings for a device.

        Args:
            device: where to train.
            precision: "fp32", "bf16", or "auto": bf16 where the hardware does
                it natively (CUDA GPUs from Ampere on; CPUs with AVX512-BF16 or
                AMX, where it is faster at the same accuracy: docs/performance.md),
                fp32 elsewhere.
        """
        cuda = device.type == "cuda"
        if cuda:
            torch.backends.cudnn.benchmark = True  # fixed input shapes: pick the fastest conv once
        autocast = bf16_native(device) if precision == "auto" else precision == "bf16"
        # channels_last feeds oneDNN (CPU) and cuDNN's tensor-core convs their preferred layout.
        return cls(device=device, autocast=autocast, memory_format=torch.channels_last)

    def images(self, uint8_images: torch.Tensor) -> torch.Tensor:
        """uint8 (N, 28, 28) -> float (N, 1, 28, 28) in [0, 1] on the device (the seed's ToTensor)."""
        x = uint8_images.to(self.device, non_blocking=True).unsqueeze(1).float().div_(255)
        return x.contiguous(memory_format=self.memory_format)

    def model(self, model: nn.Module) -> nn.Module:
        return model.to(self.device, memory_format=self.memory_format)

    def autocast_context(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast)


def bf16_native(device: torch.device) -> bool:
    """Whether the device computes bf16 in hardware (emulated bf16 is slower than fp32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return False


def make_optimizer(model: nn.Module, lr: float, device: torch.device) -> torch.optim.Optimizer:
    """Adam as in the seed; fused into one kernel per step on CUDA."""
    return torch.optim.Adam(model.parameters(), lr=lr, fused=device.type == "cuda")


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    placement: Placement,
    batch_size: int,
    generator: torch.Generator,
    log_interval: int,
) -> Iterator[tuple[int, float]]:
    """One pass over the shuffled training set, yielding ``(step, loss)`` every
    `log_interval` steps and at the last: the step of the epoch (from 1) and the mean loss
    since the previous yield. Reading the loss is the one host sync per log point."""
    model.train()
    n = images.shape[0]
    order = torch.randperm(n, device=images.device, generator=generator)
    running = torch.zeros((), device=images.device)
    since_log = 0
    steps = (n + batch_size - 1) // batch_size
    for step in range(1, steps + 1):
        # A batch: an index gather on the device.
        idx = order[(step - 1) * batch_size : step * batch_size]
        x, y = images[idx], labels[idx]
        # Forward, backward, step.
        with placement.autocast_context():
            loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        # The loss stays on the device until a log point.
        running += loss.detach()
        since_log += 1
        if since_log == log_interval or step == steps:
            yield step, running.item() / since_log
            running.zero_()
            since_log = 0


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """The test pass's results, on the CPU."""

    loss: float
    accuracy: float  # percent, as the seed logs it
    probabilities: torch.Tensor  # (N, 10) softmax scores
    predictions: torch.Tensor  # (N,) int64

    @classmethod
    def of(cls, logits: torch.Tensor, labels: torch.Tensor) -> Evaluation:
        loss = F.cross_entropy(logits, labels).item()
        probabilities = logits.softmax(dim=1)
        predictions = probabilities.argmax(dim=1)
        accuracy = 100.0 * (predictions == labels).sum().item() / labels.numel()
        return cls(loss, accuracy, probabilities.cpu(), predictions.cpu())


@torch.no_grad()
def evaluate(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    placement: Placement,
    batch_size: int = 1000,
) -> Evaluation:
    """Score the whole test set in large batches (batch statistics do not matter in eval mode)."""
    model.eval()
    chunks = []
    for start in range(0, images.shape[0], batch_size):
        with placement.autocast_context():
            chunks.append(model(images[start : start + batch_size]).float())
    return Evaluation.of(torch.cat(chunks), labels)
