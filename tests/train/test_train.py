"""Real training runs on the bundled sample, read back from the offline run folders."""

from __future__ import annotations

import numpy as np
import pytest
import sklearn.metrics
import wandb

from sweepkit.errors import ConfigError
from sweepkit.train import run_training, train
from sweepkit.train.media import TABLE_COLUMNS, table_rows
from tests.helpers.wandb_disk import history, logged_table, logged_tables, run_summary


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, data_dir):
    """One 1-epoch run on the whole sample (4,000 train / 1,000 test digits), as the seed sets it."""
    with pytest.MonkeyPatch.context() as mp:
        root = tmp_path_factory.mktemp("wandb-module")
        mp.setenv("WANDB_MODE", "offline")
        mp.setenv("WANDB_SILENT", "true")
        mp.setenv("WANDB_DIR", str(root))
        mp.setenv("WANDB_DATA_DIR", str(root / "data"))
        mp.delenv("WANDB_PROJECT", raising=False)
        mp.delenv("WANDB_SWEEP_ID", raising=False)
        wandb.teardown()
        return run_training({"epochs": 1, "dataset": "sample", "data_dir": data_dir})


def test_one_epoch_on_the_sample_reaches_90_percent(full_run):
    assert full_run.metrics["acc"] >= 90.0
    assert run_summary(full_run.run_dir)["summary"]["acc"] == pytest.approx(full_run.metrics["acc"])


def test_run_is_finished_with_every_hyperparameter_and_img_count_in_its_config(full_run):
    summary = run_summary(full_run.run_dir)
    assert summary["state"] == "finished" and summary["exit_code"] == 0
    config = summary["config"]
    assert config["lr"] == 0.001 and config["batch_size"] == 32 and config["conv_kernel"] == 5
    assert config["img_count"] == 320
    assert config["dataset"] == "sample"


def test_history_holds_loss_with_epoch_and_step_then_acc_and_test_loss(full_run):
    rows = history(full_run.run_dir)
    losses = [r for r in rows if "loss" in r]
    # 4,000 images / 32 = 125 steps, logged every 50 steps and at the epoch's end.
    assert [r["step"] for r in losses] == [50, 100, 125]
    assert all(isinstance(r["loss"], float) and r["loss"] > 0 for r in losses)
    assert losses[-1]["epoch"] == 1
    evals = [r for r in rows if "acc" in r]
    assert len(evals) == 1 and evals[0]["epoch"] == 1 and evals[0]["test_loss"] > 0


def test_prediction_table_has_the_seeds_exact_columns_and_rows(full_run):
    table = logged_table(full_run.run_dir, "test_predictions")
    assert table["columns"] == TABLE_COLUMNS
    assert table["columns"][:4] == ["id", "image", "guess", "truth"]
    assert len(table["data"]) == 320  # num_batches_to_log 10 x images_per_batch 32
    first = table["data"][0]
    assert first[0] == "0_0"
    assert first[1]["_type"] == "image-file" and first[1]["width"] == 28
    assert first[1]["path"] in table["files"]  # the PNG travels with the table
    assert sum(first[4:]) == pytest.approx(1.0, abs=1e-4)  # softmax scores
    assert first[2] == max(range(10), key=lambda d: first[4 + d])  # guess = argmax score
    ids = {row[0] for row in table["data"]}
    assert {"31_0", "0_9", "31_9"} <= ids


def test_confusion_matrix_counts_every_test_image(full_run):
    matrix = logged_table(full_run.run_dir, "confusion_matrix_table")
    assert matrix["columns"] == ["Actual", "Predicted", "nPredictions"]
    assert sum(row[2] for row in matrix["data"]) == 1000
    correct = sum(row[2] for row in matrix["data"] if row[0] == row[1])
    assert correct / 10 == pytest.approx(full_run.metrics["acc"], abs=0.01)


def test_table_rows_follow_the_seeds_test_batches():
    rows = table_rows(num_test=10000, num_batches=10, images_per_batch=32, test_batch_size=64)
    assert len(rows) == 320
    assert rows[32] == ("0_1", 64)  # batch 1 starts at test image 64
    assert table_rows(num_test=100, num_batches=10, images_per_batch=32, test_batch_size=64)[
        -1
    ] == ("31_1", 95)


def test_bad_value_raises_naming_the_key_and_marks_the_run_failed(wandb_offline):
    with pytest.raises(ConfigError, match="lr"):
        train({"lr": -1.0, "dataset": "sample"})
    (run_dir,) = (wandb_offline / "wandb").glob("offline-run-*")
    summary = run_summary(run_dir)
    assert summary["exit_code"] == 1 and summary["state"] == "failed"


def test_unknown_keys_are_kept_in_the_run_config_and_reported_once(capfd):
    result = run_training(
        {
            "dataset": "sample",
            "max_train": 64,
            "max_test": 64,
            "optimizer": "sgd",
            "num_batches_to_log": 1,
        }
    )
    err = capfd.readouterr().err
    assert err.count("config keys not used by train") == 1 and "optimizer" in err
    assert run_summary(result.run_dir)["config"]["optimizer"] == "sgd"
    assert len(logged_table(result.run_dir, "test_predictions")["data"]) == 32


@pytest.fixture(scope="module")
def watched_run(tmp_path_factory, data_dir):
    """Two epochs whose prediction table holds the whole (capped) test set, with wandb.watch on.

    128 test images in the seed's test batches of 64 (2 x batch_size 32), 64 per batch: every
    test image is a table row, so the whole-test-set charts can be checked against the table.
    """
    with pytest.MonkeyPatch.context() as mp:
        root = tmp_path_factory.mktemp("wandb-watched")
        mp.setenv("WANDB_MODE", "offline")
        mp.setenv("WANDB_SILENT", "true")
        mp.setenv("WANDB_DIR", str(root))
        mp.setenv("WANDB_DATA_DIR", str(root / "data"))
        wandb.teardown()
        settings = {
            "epochs": 2, "dataset": "sample", "data_dir": data_dir, "max_train": 128,
            "max_test": 128, "num_batches_to_log": 2, "images_per_batch": 64,
            "caption_images": 5, "watch": "all", "watch_freq": 2, "log_interval": 2,
        }  # fmt: skip
        result = run_training(settings)
        wandb.teardown()
        return result


def test_roc_curve_is_one_curve_per_class_over_the_whole_test_set(watched_run):
    table = logged_tables(watched_run.run_dir, "test_predictions")[-1]
    truths = np.array([row[3] for row in table["data"]])
    scores = np.array([row[4:] for row in table["data"]])
    roc = logged_table(watched_run.run_dir, "roc_curve_table")
    assert roc["columns"] == ["class", "fpr", "tpr"]
    assert {row[0] for row in roc["data"]} == {str(d) for d in range(10)}
    for digit in range(10):
        fpr, tpr, _ = sklearn.metrics.roc_curve(truths, scores[:, digit], pos_label=digit)
        # Rates are ratios of counts: the same whatever the float width of the scores.
        expected = sorted(zip(np.round(fpr, 3).tolist(), np.round(tpr, 3).tolist(), strict=True))
        logged = sorted((row[1], row[2]) for row in roc["data"] if row[0] == str(digit))
        assert logged == expected


def test_pr_curve_is_one_curve_per_class_over_the_whole_test_set(watched_run):
    table = logged_tables(watched_run.run_dir, "test_predictions")[-1]
    truths = [row[3] for row in table["data"]]
    scores = [row[4:] for row in table["data"]]
    pr = logged_table(watched_run.run_dir, "pr_curve_table")
    assert pr["columns"] == ["class", "precision", "recall"]
    # wandb's own function on the table's rows (every test image) draws the same curves.
    expected = wandb.plot.pr_curve(truths, scores, labels=[str(d) for d in range(10)])
    logged = sorted(tuple(row) for row in pr["data"])
    assert logged == sorted((row[0], float(row[1]), float(row[2])) for row in expected.table.data)


def test_each_epoch_logs_its_table_wrong_guesses_and_captioned_images(watched_run):
    tables = logged_tables(watched_run.run_dir, "test_predictions")
    rows = history(watched_run.run_dir)
    evals = [r for r in rows if "test_errors" in r]
    assert len(tables) == len(evals) == 2  # one table per epoch, in order
    for table, row in zip(tables, evals, strict=True):
        assert len(table["data"]) == 128
        assert row["test_errors"] == sum(r[2] != r[3] for r in table["data"])
        # The first five test images, captioned as the second seed does.
        by_id = {r[0]: r for r in table["data"]}
        expected = [f"Pred: {by_id[f'{i}_0'][2]} Truth: {by_id[f'{i}_0'][3]}" for i in range(5)]
        assert row["test_images.captions"] == expected
        assert row["test_images.count"] == 5


def test_the_loss_steps_go_on_across_epochs(watched_run):
    """128 images, batch 32: 4 steps an epoch, a loss point every 2. The second epoch's
    steps continue the first's (a step that restarted each epoch would log 2, 4, 2, 4)."""
    losses = [r for r in history(watched_run.run_dir) if "loss" in r]
    assert [r["step"] for r in losses] == [2, 4, 6, 8]
    assert [r["epoch"] for r in losses] == [0.5, 1.0, 1.5, 2.0]


def test_watch_logs_gradient_and_parameter_histograms(watched_run, full_run):
    keys = {k for row in history(watched_run.run_dir) for k in row}
    for layer in ("layer1.0.weight", "layer2.1.bias", "fc.weight"):
        assert f"gradients/{layer}.bins" in keys and f"parameters/{layer}.values" in keys
    # watch: none, the default, logs none.
    assert not any(
        k.startswith(("gradients/", "parameters/")) for r in history(full_run.run_dir) for k in r
    )


def test_the_whole_test_set_charts_are_in_the_run_folder_of_a_default_run(full_run):
    roc = logged_table(full_run.run_dir, "roc_curve_table")
    pr = logged_table(full_run.run_dir, "pr_curve_table")
    assert (
        {row[0] for row in roc["data"]}
        == {row[0] for row in pr["data"]}
        == {str(d) for d in range(10)}
    )
    images = [r for r in history(full_run.run_dir) if "test_images.captions" in r]
    assert len(images) == 1 and len(images[0]["test_images.captions"]) == 16
