"""What `wandb.watch` costs per training step: sweepkit's loop with it off and on, side by side.

One process, one real (offline) wandb run, the same ConvNet and images at
batch 32, and `sweepkit.train.loop.train_epoch` logging `loss` every 50 steps
as `sweepkit train` does. Each setting trains its own model (watched once with
its `log` and `log_freq`, as `fit` does). The settings take turns in chunks of
50 steps, round after round, so that drift on a shared machine hits all of
them alike; each setting's time is the sum over its chunks (a median would
drop the chunks where wandb writes its histograms, which are the cost).

    python bench/watch_cost.py                    # CPU, the bundled sample or full MNIST
    python bench/watch_cost.py --device cuda      # on a GPU box

Prints milliseconds per step of each setting and its ratio to `watch: none`.
The default of the `watch` config key is chosen from this figure (docs/performance.md,
Performance): it must not undo the training throughput that
bench/train_throughput.py measures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch
import wandb

from sweepkit.train import loop
from sweepkit.train.config import default_data_dir
from sweepkit.train.data import load_mnist
from sweepkit.train.model import ConvNet

LOG_INTERVAL = 50  # sweepkit's default: the staged histograms land with each `loss` point
# (watch mode, log_freq): off; the frequencies a user might pick; the seed's "all" every 10.
SETTINGS = [
    ("none", 0),
    ("gradients", 1000),
    ("gradients", 100),
    ("all", 100),
    ("all", 10),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=12, help="rounds of one chunk per setting")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--data-dir", default=default_data_dir())
    parser.add_argument("--dataset", default="auto", choices=["auto", "mnist", "sample"])
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 = torch's default")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)

    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("WANDB_DIR", tempfile.mkdtemp(prefix="sweepkit-bench-"))
    run = wandb.init(project="sweepkit-bench")

    data = load_mnist(args.dataset, args.data_dir)
    place = loop.Placement.for_device(device, "auto")
    n = LOG_INTERVAL * args.batch_size  # one chunk: one `loss` point, as in a real run
    x, y = place.images(data.train_images[:n]), data.train_labels[:n].to(device)
    steps = LOG_INTERVAL * args.rounds  # per setting, in all

    trainers = []
    for mode, freq in SETTINGS:
        torch.manual_seed(0)
        model = place.model(ConvNet())
        if mode != "none":
            run.watch(model, log=mode, log_freq=freq)
        optimizer = loop.make_optimizer(model, 1e-3, device)
        generator = torch.Generator(device=device).manual_seed(0)

        def epoch(model=model, optimizer=optimizer, generator=generator, x=x, y=y) -> None:
            for step, loss in loop.train_epoch(
                model, optimizer, x, y, placement=place, batch_size=args.batch_size,
                generator=generator, log_interval=LOG_INTERVAL,
            ):  # fmt: skip
                run.log({"loss": loss, "step": step})

        trainers.append(epoch)

    warm_x, warm_y = x[: 20 * args.batch_size], y[: 20 * args.batch_size]
    for epoch in trainers:  # warm-up: allocator, cuDNN autotuning, wandb's first histograms
        epoch(x=warm_x, y=warm_y)
    seconds: list[list[float]] = [[] for _ in SETTINGS]
    for _ in range(args.rounds):
        for i, epoch in enumerate(trainers):
            start = time.perf_counter()
            epoch()  # the last yield read the loss: the device has synced
            seconds[i].append(time.perf_counter() - start)
    run.finish()

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(
        f"device {name} ({torch.get_num_threads()} threads), {data.source}, batch "
        f"{args.batch_size}, {steps} steps per setting in {args.rounds} chunks of "
        f"{LOG_INTERVAL}, loss every {LOG_INTERVAL} steps"
    )
    off = sum(seconds[0]) / steps
    for (mode, freq), times in zip(SETTINGS, seconds, strict=True):
        per_step = sum(times) / steps
        label = "watch none" if mode == "none" else f"watch {mode}, log_freq {freq}"
        chunks = [t / LOG_INTERVAL * 1e3 for t in times]
        print(
            f"{label:32} {per_step * 1e3:7.3f} ms/step  ratio to none {per_step / off:5.3f}x"
            f"   chunks (ms/step): median {statistics.median(chunks):.2f}, max {max(chunks):.2f}"
        )


if __name__ == "__main__":
    main()
