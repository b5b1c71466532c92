"""`train()`: one W&B run of the seed's MNIST CNN, callable by `wandb.agent` or directly."""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Mapping
from typing import Any

import torch
import wandb
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from sweepkit.errors import ConfigError
from sweepkit.log import note
from sweepkit.train import loop, media
from sweepkit.train.config import TrainConfig
from sweepkit.train.data import load_mnist
from sweepkit.train.model import ConvNet

DEFAULT_PROJECT = "sweepkit"


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What `run_training` hands back: the final metrics and where the run was saved."""

    metrics: dict[str, float]
    run_id: str
    run_dir: str  # the wandb run folder (upload an offline one with `wandb sync`)


def train(config: Mapping[str, Any] | None = None) -> dict[str, float]:
    """Train and evaluate the seed's ConvNet in one wandb run.

    Follows W&B's function-agent contract: it calls `wandb.init`, so
    ``wandb.agent(sweep_id, function=train)`` works unchanged (the sweep's
    values override the defaults and ``config``).

    Args:
        config: hyperparameters and settings (see `TrainConfig`); missing keys
            take the seed's defaults, unknown keys are kept in the run config.

    Returns:
        The final metrics: loss (last training interval), acc (test accuracy, %),
        test_loss, epoch, images_per_sec.

    Raises:
        ConfigError: a bad value, naming its key; the wandb run is marked failed.

    >>> train({"epochs": 1, "dataset": "sample", "max_train": 256})["acc"] > 0  # doctest: +SKIP
    True
    """
    return run_training(config).metrics


def run_training(config: Mapping[str, Any] | None = None) -> TrainResult:
    """`train`, also saying which wandb run it was and where its folder is."""
    defaults = dataclasses.asdict(TrainConfig())
    # Under an agent the sweep's project comes from the environment; naming one here would win.
    in_sweep = os.environ.get("WANDB_PROJECT") or os.environ.get("WANDB_SWEEP_ID")
    run = wandb.init(
        config={**defaults, **(config or {})}, project=None if in_sweep else DEFAULT_PROJECT
    )
    try:
        cfg, unknown = TrainConfig.from_mapping(dict(run.config))
        if unknown:
            note(f"config keys not used by train (kept in the run config): {', '.join(unknown)}")
        run.config.update({"img_count": cfg.img_count}, allow_val_change=True)
        metrics = fit(cfg, run)
    except BaseException:
        run.finish(exit_code=1)  # marked failed in the app, not left running
        raise
    run_dir = os.path.dirname(run.dir)  # run.dir is the run folder's files/ subfolder
    run.finish()
    return TrainResult(metrics, run.id, run_dir)


def fit(cfg: TrainConfig, run: wandb.Run) -> dict[str, float]:
    """The training run proper: data, model, epochs of train and test, and what gets logged."""
    device = _device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    place = loop.Placement.for_device(device, cfg.precision)

    data = load_mnist(cfg.dataset, cfg.data_dir)
    train_x, train_y = _cap(data.train_images, data.train_labels, cfg.max_train)
    test_images, test_labels = _cap(data.test_images, data.test_labels, cfg.max_test)
    train_x, train_y = place.images(train_x), train_y.to(device)
    test_x, test_y = place.images(test_images), test_labels.to(device)
    # The seed's test loader used batches of 2 x batch_size; the table ids follow them.
    rows = media.table_rows(
        len(test_y), cfg.num_batches_to_log, cfg.images_per_batch, 2 * cfg.batch_size
    )

    model = place.model(ConvNet(cfg.l1_size, cfg.l2_size, cfg.conv_kernel))
    if cfg.watch != "none":
        # Histograms are staged with commit=False and land with the next `loss` point, so a
        # watch_freq that is a multiple of log_interval keeps every one of them. idx=0: the same
        # chart names in every run (wandb numbers each watch call of a process otherwise).
        run.watch(model, log=cfg.watch, log_freq=cfg.watch_freq, idx=0)
    optimizer = loop.make_optimizer(model, cfg.lr, device)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    steps_per_epoch = -(-len(train_y) // cfg.batch_size)
    run.summary.update({"data_source": data.source, "bf16": place.autocast, "device": str(device)})

    metrics: dict[str, float] = {}
    train_seconds = 0.0
    on_terminal = sys.stderr.isatty()
    with _progress_bar(on_terminal) as progress:
        for epoch in range(cfg.epochs):
            bar = progress.add_task(
                f"epoch {epoch + 1}/{cfg.epochs}", total=steps_per_epoch, loss=float("nan"), acc="-"
            )

            # Train, logging the loss where the loop yields it.
            started = time.perf_counter()
            for step, loss in loop.train_epoch(
                model, optimizer, train_x, train_y,
                placement=place, batch_size=cfg.batch_size, generator=generator,
                log_interval=cfg.log_interval,
            ):  # fmt: skip
                metrics["loss"] = loss
                global_step = epoch * steps_per_epoch + step
                run.log(
                    {"loss": loss, "epoch": epoch + step / steps_per_epoch, "step": global_step}
                )
                progress.update(bar, completed=step, loss=loss)
            epoch_seconds = time.perf_counter() - started  # the last yield read the loss: synced

            # Test.
            train_seconds += epoch_seconds

            evaluation = loop.evaluate(model, test_x, test_y, placement=place)
            metrics.update(acc=evaluation.accuracy, test_loss=evaluation.loss, epoch=epoch + 1)
            progress.update(bar, acc=f"{evaluation.accuracy:.2f}%")
            if not on_terminal:  # logs and wandb's console capture: one plain line per epoch
                print(
                    f"epoch {epoch + 1}/{cfg.epochs}  loss {metrics['loss']:.4f}  "
                    f"acc {evaluation.accuracy:.2f}%  test_loss {evaluation.loss:.4f}  "
                    f"(trained in {epoch_seconds:.1f} s, {len(train_y) / epoch_seconds:,.0f} img/s)",
                    file=sys.stderr,
                    flush=True,
                )
            record: dict[str, Any] = {
                "epoch": epoch + 1,
                "acc": evaluation.accuracy,
                "test_loss": evaluation.loss,
                # Wrong guesses over the whole test set (the first seed's "top errors over time").
                "test_errors": int((evaluation.predictions != test_labels).sum()),
            }
            if rows:
                record["test_predictions"] = media.prediction_table(
                    test_images, test_labels, evaluation, rows
                )
            if cfg.caption_images:
                record["test_images"] = media.captioned_images(
                    test_images, test_labels, evaluation, cfg.caption_images
                )
            run.log(record)

    charts = {"confusion_matrix": media.confusion_matrix(evaluation, test_labels)}
    if cfg.curves:
        charts["roc_curve"] = media.roc_curve(evaluation, test_labels)
        charts["pr_curve"] = media.pr_curve(evaluation, test_labels)
    run.log(charts)
    metrics["images_per_sec"] = cfg.epochs * len(train_y) / train_seconds
    run.summary["images_per_sec"] = metrics["images_per_sec"]
    return metrics


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"device {name!r} asked for, but torch sees no CUDA GPU; use device=cpu or auto"
        )
    if name.startswith("cuda:") and int(name[5:]) >= torch.cuda.device_count():
        raise ConfigError(
            f"device {name!r} does not exist: torch sees {torch.cuda.device_count()} GPU(s)"
        )
    return torch.device(name)


def _cap(
    images: torch.Tensor, labels: torch.Tensor, limit: int
) -> tuple[torch.Tensor, torch.Tensor]:
    return (images[:limit], labels[:limit]) if limit else (images, labels)


def _progress_bar(on_terminal: bool) -> Progress:
    """One bar per epoch on a terminal (loss as it trains, acc once tested); off elsewhere,
    where `fit` prints one line per epoch instead."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}  acc {task.fields[acc]}"),
        TimeRemainingColumn(),
        disable=not on_terminal,
        transient=False,
    )
