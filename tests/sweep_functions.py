"""Functions and programs that sweep tests run: real wandb runs that do almost no work."""

from __future__ import annotations

import wandb


def quadratic() -> None:
    """Logs loss = (x - 3)^2 three times, as a training run logs its metric per epoch."""
    with wandb.init() as run:
        x = float(run.config.get("x", 0.0))
        for step in range(3):
            run.log({"loss": (x - 3) ** 2 + 1.0 / (step + 1), "epoch": step})


def raises() -> None:
    with wandb.init():
        raise RuntimeError("diverged")


not_callable = 42


def slow_curve() -> None:
    """Logs a flat loss curve at `x`, one point per 0.4 s, as a long training run would."""
    import time

    with wandb.init() as run:
        for epoch in range(8):
            run.log({"loss": float(run.config["x"]), "epoch": epoch})
            time.sleep(0.4)


def hangs() -> None:
    """A run that never ends on its own (a deadlocked data loader, say)."""
    import time

    with wandb.init():
        while True:
            time.sleep(1)


def prints() -> None:
    """A run that prints, as training scripts do."""
    with wandb.init() as run:
        print(f"hello from x={run.config['x']}")
        run.log({"loss": 1.0})


def summary_only() -> None:
    """A metric set only in the run's summary, never logged."""
    with wandb.init() as run:
        run.summary["score"] = 2 * float(run.config["x"])


def best_of_epochs() -> None:
    """val_acc 0.5, 0.9, 0.1 with define_metric(summary="max"): the run's val_acc is 0.9."""
    with wandb.init() as run:
        run.define_metric("val_acc", summary="max")
        for value in (0.5, 0.9, 0.1):
            run.log({"val_acc": value})


def never_finishes() -> None:
    """The tutorial shape: wandb.init, log, return (wandb.finish is the agent's job)."""
    run = wandb.init()
    run.log({"loss": float(run.config["x"])})


def many_steps() -> None:
    """Logs `loss` every step for `steps` steps, as a long fine-tune does."""
    with wandb.init() as run:
        for step in range(int(run.config["steps"])):
            run.log({"loss": 1.0 / (step + 1)})
