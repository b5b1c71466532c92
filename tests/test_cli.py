"""The real `sweepkit` console script, run as a user would."""

from __future__ import annotations

import pytest

from tests.helpers.cli import sweepkit
from tests.helpers.wandb_disk import run_summary


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_train_help_explains_the_settings(flag):
    result = sweepkit("train", flag)
    assert result.returncode == 0
    assert "--set" in result.stdout and "conv_kernel" in result.stdout


def test_train_runs_offline_and_prints_where_the_run_was_saved(
    tmp_path, wandb_offline, monkeypatch
):
    monkeypatch.delenv("WANDB_MODE")  # no credentials either: sweepkit must choose offline itself
    result = sweepkit(
        "train", "--set", "dataset=sample", "--set", "max_train=512", "--set", "max_test=200",
        "--set", "lr=0.002", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "no W&B credentials found: logging offline" in result.stderr
    run_dir = result.stdout.strip().splitlines()[-1].split(" saved to ")[1]
    summary = run_summary(run_dir)
    assert summary["state"] == "finished"
    assert summary["config"]["lr"] == 0.002 and summary["config"]["max_train"] == 512


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "lr=-1"], "lr must be"),
        (["--set", "l1_size=abc"], "l1_size: expected an integer"),
        (["--set", "conv_kernel=4"], "conv_kernel must be odd"),
        (["--set", "lr"], "--set takes KEY=VALUE"),
        (["--set", "dataset=imagenet"], "dataset must be one of"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_no_run_folder(args, message, wandb_offline):
    result = sweepkit("train", *args)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not list(wandb_offline.glob("wandb/*run-*"))  # nothing half-written


def test_debug_shows_the_traceback():
    result = sweepkit("--debug", "train", "--set", "lr=-1")
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_unknown_flag_is_a_usage_error():
    result = sweepkit("train", "--epochs", "3")
    assert result.returncode == 2 and "No such option" in result.stderr


def test_version_names_what_a_bug_report_needs():
    result = sweepkit("--version")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == [
        "sweepkit", "python", "wandb", "sweeps", "numpy", "torch",
    ]  # fmt: skip
    import importlib.metadata

    for package in ("wandb", "sweeps", "numpy", "torch"):
        (line,) = [line for line in lines if line.startswith(package + " ")]
        assert line.split()[1].startswith(importlib.metadata.version(package))  # torch: +cu130
    torch_line = lines[-1]
    assert "CPU build" in torch_line or "CUDA" in torch_line  # and which GPUs it sees
