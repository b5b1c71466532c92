"""Real training runs on the bundled sample, read back from the offline run folders."""

from __future__ import annotations

import pytest
import wandb

from sweepkit.errors import ConfigError
from sweepkit.train import run_training, train
from sweepkit.train.media import TABLE_COLUMNS, table_rows
from tests.wandb_disk import history, logged_table, run_summary


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
