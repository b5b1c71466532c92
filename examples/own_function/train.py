"""A function in the shape W&B's tutorials sweep: it reads its parameters from the run's
config and logs its metric. Nothing in it knows sweepkit."""

import wandb


def train() -> None:
    with wandb.init() as run:
        lr, width = run.config["lr"], run.config["width"]
        loss = 1.0
        for epoch in range(5):
            loss *= 1 - min(0.9, lr * width)  # stands in for an epoch of real training
            run.log({"epoch": epoch, "loss": loss})
