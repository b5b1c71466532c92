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


def _agent_pid() -> int:
    """The agent that started this run: the parent of the fork server this run came from."""
    import os

    stat = open(f"/proc/{os.getppid()}/stat").read()  # noqa: SIM115
    return int(stat.rsplit(")", 1)[1].split()[1])


def finishes_then_kills_its_agent() -> None:
    """The run ends cleanly, then its agent dies before it can record that (SIGKILL)."""
    import os
    import signal
    import time

    with wandb.init() as run:
        run.log({"loss": float(run.config["x"])})
    os.kill(_agent_pid(), signal.SIGKILL)
    time.sleep(60)  # the death signal of its agent's fork server ends this


def kills_its_agent_at_x_1() -> None:
    """At x=1 the agent dies mid-run (the run then dies with it); other points log x."""
    import os
    import signal
    import time

    with wandb.init() as run:
        if run.config["x"] == 1.0:
            os.kill(_agent_pid(), signal.SIGKILL)
            time.sleep(60)
        run.log({"loss": float(run.config["x"])})


def exits_zero() -> None:
    """Logs, then sys.exit(0): a function that is done."""
    import sys

    with wandb.init() as run:
        run.log({"loss": 1.0})
    sys.exit(0)


def _start_children() -> list[int]:
    """A child in the run's process group and one that left it (setsid), as data loaders and
    helper daemons do; their pids and the run's own go to ./pids-<x>.txt for the test."""
    import os
    import subprocess

    inside = subprocess.Popen(["sleep", "300"])
    outside = subprocess.Popen(["sleep", "300"], start_new_session=True)
    return [os.getpid(), inside.pid, outside.pid]


def _write_pids(x: float, pids: list[int]) -> None:
    from pathlib import Path

    Path(f"pids-{x:g}.txt").write_text(" ".join(map(str, pids)))


def leaves_children() -> None:
    """Logs, starts two children, and returns without ending them."""
    with wandb.init() as run:
        run.log({"loss": float(run.config["x"])})
        _write_pids(run.config["x"], _start_children())


def clings_on() -> None:
    """Starts children, then swallows every signal it can (a bare except, SIGTERM ignored)."""
    import signal
    import time

    with wandb.init() as run:
        run.log({"loss": float(run.config["x"])})
        pids = _start_children()
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _write_pids(run.config["x"], pids)
        while True:
            try:  # noqa: SIM105 - a bare except that swallows signals is the point
                time.sleep(1)
            except:  # noqa: E722
                pass


def interrupts_itself() -> None:
    """The function raises KeyboardInterrupt (a user's own Ctrl-C handling gone wrong)."""
    with wandb.init() as run:
        run.log({"loss": 1.0})
        raise KeyboardInterrupt


def never_inits() -> None:
    """Does its work without wandb: nothing reaches the sweep."""


def inits_twice() -> None:
    """Two wandb runs in one sweep run: the second's loss (x) is the run's metric."""
    with wandb.init() as run:
        run.log({"loss": 100.0})
    with wandb.init() as run:
        run.log({"loss": float(run.config["x"])})


def logs_nan() -> None:
    """loss is NaN once, a string once, then x."""
    with wandb.init() as run:
        for value in (float("nan"), "diverged", float(run.config["x"])):
            run.log({"loss": value})


def fails_on_odd_x() -> None:
    """Fails at odd x, logs at even x: failures never come twice in a row on a grid 1..n."""
    with wandb.init() as run:
        if int(run.config["x"]) % 2:
            raise RuntimeError(f"odd x={run.config['x']}")
        run.log({"loss": float(run.config["x"])})


def hangs_until_stopped() -> None:
    """Hangs; when stopped, its own clean-up runs (it writes ./cleaned-up), as a training
    script's `finally:` that saves a checkpoint would."""
    import time
    from pathlib import Path

    with wandb.init():
        try:
            while True:
                time.sleep(1)
        finally:
            Path("cleaned-up").write_text("yes")


def runs_until_released() -> None:
    """Logs its loss, then goes on until ./release exists: a run whose end the test decides
    (so that a test never races a run that ends on the clock)."""
    import time
    from pathlib import Path

    with wandb.init() as run:
        run.log({"loss": float(run.config["x"])})
        while not Path("release").exists():
            time.sleep(0.1)


def gated() -> None:
    """Logs loss = x, writes ``started-<x>`` (holding its CUDA_VISIBLE_DEVICES) in
    $SWEEPKIT_TEST_GATES, waits there for ``release-<x>``, then writes ``done-<x>`` and ends:
    a test decides when the run ends."""
    import os
    import time
    from pathlib import Path

    gates = Path(os.environ["SWEEPKIT_TEST_GATES"])
    with wandb.init() as run:
        x = run.config["x"]
        run.log({"loss": float(x)})
        # What it was given to see: Slurm's --gres sets this per task.
        (gates / f".started-{x}").write_text(os.environ.get("CUDA_VISIBLE_DEVICES", "unset"))
        os.replace(gates / f".started-{x}", gates / f"started-{x}")  # whole when it appears
        while not (gates / f"release-{x}").exists():
            time.sleep(0.1)
        (gates / f"done-{x}").touch()


# What `logs_its_own_views` logs, for the tests that read it back.
VIEW_CLASSES = ["cat", "dog", "bird"]
VIEW_TRUTH = [0, 0, 0, 1, 1, 2, 2, 2, 2]
VIEW_GUESS = [0, 0, 1, 1, 2, 2, 2, 0, 2]


def logs_its_own_views() -> None:
    """A user's function as W&B's docs write one: its metric is val_acc (no `loss`), its
    charts under keys of its own (`wandb.plot`'s confusion matrix, ROC and PR curves, and
    `wandb.sklearn`'s confusion matrix under sklearn's own key), a `wandb.Table` and images."""
    import numpy as np

    with wandb.init() as run:
        x = float(run.config["x"])
        for epoch in range(3):
            run.log({"val_acc": x * (epoch + 1) / 10, "train/err": 1.0 - epoch / 4})
        scores = np.full((len(VIEW_TRUTH), 3), 0.1)
        for i, guess in enumerate(VIEW_GUESS):
            scores[i, guess] = 0.8
        run.log({"eval_cm": wandb.plot.confusion_matrix(
            y_true=VIEW_TRUTH, preds=VIEW_GUESS, class_names=VIEW_CLASSES)})  # fmt: skip
        run.log({"eval_roc": wandb.plot.roc_curve(VIEW_TRUTH, scores, labels=VIEW_CLASSES),
                 "eval_pr": wandb.plot.pr_curve(VIEW_TRUTH, scores, labels=VIEW_CLASSES)})  # fmt: skip
        wandb.sklearn.plot_confusion_matrix(VIEW_TRUTH, VIEW_GUESS, labels=VIEW_CLASSES)
        rows = [[i, VIEW_CLASSES[g], VIEW_CLASSES[t],
                 wandb.Image(np.full((8, 8), 20 * i, dtype=np.uint8))]
                for i, (g, t) in enumerate(zip(VIEW_GUESS, VIEW_TRUTH, strict=True)) if g != t]  # fmt: skip
        run.log({"worst_cases": wandb.Table(columns=["id", "guess", "truth", "image"], data=rows)})
        run.log({"examples": [wandb.Image(np.full((6, 6), 40 * i, dtype=np.uint8),
                                          caption=f"example {i}") for i in range(3)]})  # fmt: skip


def logs_until_released() -> None:
    """Logs `loss` (falling from x) every 0.1 s until ./release exists, then ends: a run whose
    curve grows while a test watches it. It logs once at least: a run started after the
    release has a metric too."""
    import time
    from pathlib import Path

    with wandb.init() as run:
        x, step = float(run.config["x"]), 0
        while True:
            run.log({"loss": x / (step + 1)})
            if Path("release").exists():
                break
            step += 1
            time.sleep(0.1)


def logs_a_table_each_epoch() -> None:
    """Logs a table `per_class` at each of 3 epochs, its counts made of x and the epoch
    (x * 100 + epoch * 10 + class): which run and which epoch a row came from shows."""
    with wandb.init() as run:
        x = int(run.config["x"])
        for epoch in range(3):
            rows = [[name, x * 100 + epoch * 10 + c] for c, name in enumerate(VIEW_CLASSES)]
            run.log(
                {"per_class": wandb.Table(columns=["class", "count"], data=rows), "epoch": epoch}
            )
