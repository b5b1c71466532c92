"""What a run shows in the W&B app besides loss and accuracy: the prediction table, captioned
test images, and charts over the whole test set (confusion matrix, ROC and PR curves).

Every chart is a `wandb.plot` custom chart logged into the run's own history, so
each run of a sweep gets its own (the seed's `wandb.sklearn.*` plots pile a sweep's
runs into one panel).
"""

from __future__ import annotations

# wandb.plot.roc_curve and pr_curve import pandas and sklearn.metrics on first use (about a
# second): imported with this module instead, so a process that preloads it pays them once.
import pandas  # noqa: F401
import sklearn.metrics  # noqa: F401
import torch
import wandb

from sweepkit.train.loop import Evaluation
from sweepkit.train.model import NUM_CLASSES

TABLE_COLUMNS = ["id", "image", "guess", "truth", *(f"score_{d}" for d in range(NUM_CLASSES))]
CLASS_NAMES = [str(d) for d in range(NUM_CLASSES)]


def table_rows(
    num_test: int, num_batches: int, images_per_batch: int, test_batch_size: int
) -> list[tuple[str, int]]:
    """Pick the test images the seed puts in its table, as (id, test index) pairs.

    The seed walks the test loader (batches of ``test_batch_size``) and, for
    each of the first ``num_batches`` batches, takes the first
    ``images_per_batch`` images, with ids ``"<index in batch>_<batch>"``.

    >>> table_rows(num_test=10, num_batches=2, images_per_batch=2, test_batch_size=4)
    [('0_0', 0), ('1_0', 1), ('0_1', 4), ('1_1', 5)]
    """
    per_batch = min(images_per_batch, test_batch_size)
    return [
        (f"{i}_{b}", b * test_batch_size + i)
        for b in range(num_batches)
        for i in range(per_batch)
        if b * test_batch_size + i < num_test
    ]


def prediction_table(
    images: torch.Tensor,
    labels: torch.Tensor,
    evaluation: Evaluation,
    rows: list[tuple[str, int]],
) -> wandb.Table:
    """The seed's table: id, image, guess, truth, score_0..score_9 (softmax scores).

    Args:
        images: the uint8 (N, 28, 28) test images, on the CPU.
        labels: the test labels.
        evaluation: the test pass that made the predictions.
        rows: (id, test index) pairs from `table_rows`.
    """
    index = torch.tensor([i for _, i in rows], dtype=torch.long)
    # One bulk conversion to Python numbers instead of a tensor op per cell.
    pixels = images[index].numpy()
    guesses = evaluation.predictions[index].tolist()
    truths = labels[index].tolist()
    scores = evaluation.probabilities[index].tolist()
    data = [
        [row_id, wandb.Image(pixels[k]), guesses[k], truths[k], *scores[k]]
        for k, (row_id, _) in enumerate(rows)
    ]
    return wandb.Table(columns=TABLE_COLUMNS, data=data)


def confusion_matrix(evaluation: Evaluation, labels: torch.Tensor) -> wandb.plot.CustomChart:
    """A per-run confusion matrix chart over the whole test set.

    `wandb.plot.confusion_matrix` is logged into each run's own history, so the
    runs of a sweep each get their own chart; `wandb.sklearn.plot_confusion_matrix`
    would pile every run into one panel.
    """
    return wandb.plot.confusion_matrix(
        preds=evaluation.predictions.tolist(),
        y_true=labels.tolist(),
        class_names=CLASS_NAMES,
    )


def roc_curve(evaluation: Evaluation, labels: torch.Tensor) -> wandb.plot.CustomChart:
    """One ROC curve per class (one-vs-rest) over the whole test set (the seed's `wandb.plots.ROC`)."""
    return wandb.plot.roc_curve(
        labels.numpy(), evaluation.probabilities.numpy(), labels=CLASS_NAMES
    )


def pr_curve(evaluation: Evaluation, labels: torch.Tensor) -> wandb.plot.CustomChart:
    """One precision-recall curve per class over the whole test set (the seed's
    `wandb.plots.precision_recall`)."""
    return wandb.plot.pr_curve(labels.numpy(), evaluation.probabilities.numpy(), labels=CLASS_NAMES)


def captioned_images(
    images: torch.Tensor, labels: torch.Tensor, evaluation: Evaluation, count: int
) -> list[wandb.Image]:
    """The first `count` test images captioned as the second seed does ("Pred: 3 Truth: 5").

    The same images every epoch, so the W&B app's media slider shows each one's guess change.
    """
    guesses = evaluation.predictions[:count].tolist()
    truths = labels[:count].tolist()
    pixels = images[:count].numpy()
    return [
        wandb.Image(pixels[k], caption=f"Pred: {guesses[k]} Truth: {truths[k]}")
        for k in range(len(guesses))
    ]
