"""Training throughput: the seed notebook's loop against sweepkit's, side by side in one process.

Both train the same ConvNet on the same MNIST images at the same batch size and
log to a real (offline) wandb run. The seed loop is the Tables quickstart's: a
DataLoader with a per-image `ToTensor`, `num_workers=2`, and `wandb.log({"loss":
loss})` on every step. sweepkit's is `sweepkit.train.loop.train_epoch`, as
`sweepkit train` runs it. Rounds alternate the two so drift on a shared machine
hits both; the median round counts.

    python bench/train_throughput.py                 # CPU, batch 32
    python bench/train_throughput.py --device cuda   # on a GPU box

Prints images/s of each and the ratio (target: >= 2.0x on a 2-core CPU; on an
H100, sweepkit >= 100,000 images/s at batch 32).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F
import torchvision
import torchvision.transforms as T
import wandb

from sweepkit.train import loop
from sweepkit.train.config import default_data_dir
from sweepkit.train.data import load_mnist
from sweepkit.train.model import ConvNet


def seed_convnet() -> torch.nn.Module:
    """The seed's layer order (ReLU before the pool); sweepkit pools first, same function."""
    model = ConvNet()
    for layer in (model.layer1, model.layer2):
        layer[2], layer[3] = torch.nn.ReLU(), torch.nn.MaxPool2d(kernel_size=2, stride=2)
    return model


def torchvision_root(source: str, data_dir: str) -> str:
    return data_dir if source == "mnist" else os.path.join(data_dir, "sweepkit-mnist-sample")


def seed_epoch(model, optimizer, loader, device, run) -> None:
    """The quickstart's training step, unchanged but for the model/optimizer passed in."""
    model.train()
    for images, labels in loader:
        images = images.to(device)
        labels = labels.to(device)
        outputs = model(images)
        loss = F.cross_entropy(outputs, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        run.log({"loss": loss})


def sweepkit_epoch(model, optimizer, x, y, place, generator, batch_size, run) -> None:
    for step, loss in loop.train_epoch(
        model, optimizer, x, y, placement=place, batch_size=batch_size,
        generator=generator, log_interval=50,
    ):  # fmt: skip
        run.log({"loss": loss, "step": step})


def timed(fn, device: torch.device) -> float:
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating rounds; the median counts"
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--data-dir", default=default_data_dir())
    parser.add_argument("--dataset", default="auto", choices=["auto", "mnist", "sample"])
    parser.add_argument(
        "--precision", default="auto", choices=["auto", "fp32", "bf16"],
        help="sweepkit's precision (the seed loop is always fp32); auto is what `sweepkit train` uses",
    )  # fmt: skip
    args = parser.parse_args()
    device = torch.device(args.device)

    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("WANDB_DIR", tempfile.mkdtemp(prefix="sweepkit-bench-"))
    run = wandb.init(project="sweepkit-bench")

    data = load_mnist(args.dataset, args.data_dir)
    n = len(data.train_labels)
    dataset = torchvision.datasets.MNIST(
        torchvision_root(data.source, args.data_dir), train=True, transform=T.ToTensor()
    )
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=args.batch_size, shuffle=True,
        pin_memory=device.type == "cuda", num_workers=2,
    )  # fmt: skip
    place = loop.Placement.for_device(device, args.precision)
    x, y = place.images(data.train_images), data.train_labels.to(device)
    generator = torch.Generator(device=device).manual_seed(0)

    torch.manual_seed(0)
    seed_model = seed_convnet().to(device)
    seed_opt = torch.optim.Adam(seed_model.parameters(), lr=1e-3)
    torch.manual_seed(0)
    ours_model = place.model(ConvNet())
    ours_opt = loop.make_optimizer(ours_model, 1e-3, device)

    def run_seed() -> None:
        seed_epoch(seed_model, seed_opt, loader, device, run)

    def run_ours() -> None:
        sweepkit_epoch(ours_model, ours_opt, x, y, place, generator, args.batch_size, run)

    run_seed(), run_ours()  # warm-up: allocator, cuDNN autotuning, first worker start
    seed_rates, our_rates = [], []
    for _ in range(args.rounds):
        seed_rates.append(n / timed(run_seed, device))
        our_rates.append(n / timed(run_ours, device))
    run.finish()

    seed_rate, our_rate = statistics.median(seed_rates), statistics.median(our_rates)
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"cpu x{torch.get_num_threads()} threads"
    )
    precision = "bf16 autocast" if place.autocast else "fp32"
    print(
        f"device {name}, {data.source} ({n} train images), batch {args.batch_size}, {args.rounds} rounds"
    )
    print(f"seed loop: fp32, DataLoader + ToTensor, 2 workers; sweepkit loop: {precision}")
    print(
        f"seed loop     {seed_rate:10,.0f} images/s   rounds: {', '.join(f'{r:,.0f}' for r in seed_rates)}"
    )
    print(
        f"sweepkit loop {our_rate:10,.0f} images/s   rounds: {', '.join(f'{r:,.0f}' for r in our_rates)}"
    )
    print(f"ratio sweepkit/seed: {our_rate / seed_rate:.2f}x")


if __name__ == "__main__":
    main()
