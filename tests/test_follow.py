"""Following a run's .wandb log as it grows: every record once, and what the scheduler reads."""

from __future__ import annotations

import json
import math
import random
import subprocess
import time
from pathlib import Path

import pytest
import wandb

from sweepkit.core.records import metric_value
from sweepkit.follow import RunFollower, RunMetrics, TransactionLog, record_kind
from tests.helpers.cli import create, status, sweepkit
from tests.helpers.wandb_disk import run_records, run_summary, write_run


def test_reading_as_the_file_grows_yields_every_record_once_in_order(tmp_path):
    def log(run):
        for step in range(300):
            run.log({"loss": 1.0 / (step + 1)})
            if step == 150:  # a record longer than a 32 KiB block: split into chunks
                run.log({"note": "x" * 100_000})

    source = write_run(tmp_path, log)
    whole = TransactionLog(source).read(at_most=1 << 30)
    data = Path(source).read_bytes()
    growing = tmp_path / "growing.wandb"
    follower = TransactionLog(growing)
    seen, written = [], 0
    rng = random.Random(0)
    with growing.open("wb") as out:
        while written < len(data):
            step = rng.randint(1, 50_000)
            out.write(data[written : written + step])
            out.flush()
            written += step
            seen += follower.read(at_most=rng.choice([40_000, 1 << 20]))
    assert seen == whole
    # wandb's own reader agrees on what is in the file.
    assert len(whole) == len(run_records(source.rsplit("/", 1)[0]))


def test_record_kinds_are_read_from_the_first_bytes(tmp_path):
    from wandb.proto import wandb_internal_pb2 as pb

    source = write_run(tmp_path, lambda run: run.log({"loss": 1.0}))
    for raw in TransactionLog(source).read():
        kind = pb.Record.FromString(raw).WhichOneof("record_type")
        assert record_kind(raw) == (pb.Record.DESCRIPTOR.fields_by_name[kind].number if kind else 0)


def test_the_metric_is_what_the_runs_summary_says(tmp_path):
    def log(run):
        run.define_metric("val_acc", summary="max")
        for value in (0.5, 0.9, 0.1):
            run.log({"val_acc": value, "loss": 1.0})

    metrics = RunMetrics("val_acc", "maximize")
    metrics.add(TransactionLog(write_run(tmp_path, log)).read())
    progress = metrics.progress()
    assert (progress.count, progress.minimum, progress.maximum, progress.last) == (3, 0.1, 0.9, 0.1)
    assert progress.value == 0.9  # the summary's max, not the last point
    assert progress.new_points == [0.5, 0.9, 0.1] and metrics.progress().new_points == []
    assert metrics.exit_code == 0


def test_a_nan_is_no_point_and_leaves_the_summary_without_a_value(tmp_path):
    def log(run):
        for value in (0.5, float("nan"), 0.1, float("inf")):
            run.log({"loss": value})

    metrics = RunMetrics("loss")
    metrics.add(TransactionLog(write_run(tmp_path, log)).read())
    progress = metrics.progress()
    assert (progress.count, progress.minimum, progress.maximum) == (2, 0.1, 0.5)
    assert progress.value is None  # wandb's summary holds the last value logged: inf


def test_a_metric_only_in_the_summary_is_still_the_runs_metric(tmp_path):
    def log(run):
        run.log({"loss": 3.0})
        run.summary["score"] = 7.5

    metrics = RunMetrics("score")
    metrics.add(TransactionLog(write_run(tmp_path, log)).read())
    assert metrics.progress().value == 7.5 and metrics.progress().count == 0


def test_a_second_wandb_init_is_counted_even_if_the_first_run_was_never_seen(tmp_path):
    # A busy agent may first look after the function's first wandb run has come and gone
    # (CI saw it): the count comes from the folders, the metric from the newest.
    for loss in (100.0, 1.0):
        with wandb.init(dir=str(tmp_path), project="follow", id="twice", mode="offline") as run:
            run.log({"loss": loss})
    follower = RunFollower(tmp_path, "twice", "loss", "minimize")
    follower.finish()
    assert follower.problems() == ["it called wandb.init 2 times; the last run's metric counts"]
    assert follower.metrics.progress().value == 1.0


def test_metric_names_reach_into_nested_summaries():
    assert metric_value({"val": {"acc": 0.7}}, "val.acc") == 0.7
    assert metric_value({"val_acc": {"min": 0.2, "max": 0.9}}, "val_acc", "minimize") == 0.2
    assert metric_value({"val_acc": "high"}, "val_acc") is None


@pytest.mark.slow
def test_status_target_and_scheduler_use_the_summary_metric(workdir):
    sweep_id = create(
        workdir,
        "method: grid\nmetric: {name: val_acc, goal: maximize, target: 0.85}\n"
        "parameters:\n  x: {values: [1.0, 2.0, 3.0]}\n",
    )
    result = sweepkit("agent", sweep_id, "-f", "tests.sweep_functions:best_of_epochs", cwd=workdir)
    assert result.returncode == 0, result.stderr
    info = status(workdir, sweep_id)
    # The first run's val_acc is its max, 0.9, past the target: no other run started.
    assert [r["metric"] for r in info["runs"]] == [0.9]
    assert info["state"] == "finished"


@pytest.mark.slow
def test_a_summary_only_metric_and_a_run_never_finished_reach_status(workdir):
    summary = create(
        workdir, "method: grid\nmetric: {name: score}\nparameters:\n  x: {values: [1.5]}\n"
    )
    sweepkit("agent", summary, "-f", "tests.sweep_functions:summary_only", cwd=workdir)
    assert [r["metric"] for r in status(workdir, summary)["runs"]] == [3.0]

    unfinished = create(
        workdir, "method: grid\nmetric: {name: loss}\nparameters:\n  x: {values: [4.0]}\n"
    )
    result = sweepkit(
        "agent", unfinished, "-f", "tests.sweep_functions:never_finishes", cwd=workdir
    )
    assert "finished: loss=4" in result.stderr
    (run,) = status(workdir, unfinished)["runs"]
    assert run["metric"] == 4.0 and run["state"] == "finished"
    # wandb's own record of the run says it finished, as under W&B's function agent.
    logged = run_summary(run["location"])
    assert logged["state"] == "finished" and logged["exit_code"] == 0


@pytest.mark.slow
def test_a_run_logging_200k_steps_keeps_beating_while_another_agent_waits(workdir):
    sweep_id = create(
        workdir, "method: grid\nmetric: {name: loss}\nparameters:\n  steps: {value: 200000}\n"
    )
    command = ["sweepkit", "agent", sweep_id, "-f", "tests.sweep_functions:many_steps"]
    first = subprocess.Popen(command, cwd=workdir, stderr=subprocess.PIPE, text=True)
    while not status(workdir, sweep_id)["runs"]:  # the run is claimed: a second agent now waits
        assert first.poll() is None, first.communicate()
        time.sleep(0.5)
    second = subprocess.Popen(
        [*command, "--crash-grace", "10"], cwd=workdir, stderr=subprocess.PIPE, text=True
    )
    _, second_err = second.communicate(timeout=600)
    _, first_err = first.communicate(timeout=600)
    assert first.returncode == 0 and second.returncode == 0, first_err + second_err
    (run,) = status(workdir, sweep_id)["runs"]  # run once, never taken for crashed
    assert run["state"] == "finished" and run["metric"] == pytest.approx(1 / 200_000)


def test_the_metric_read_from_bytes_is_the_one_protobuf_reads(tmp_path):
    from wandb.proto import wandb_internal_pb2 as pb

    from sweepkit.follow import _UNREAD, HISTORY, _item_prefix, _logged_value

    def log(run):
        for step, value in enumerate([0.5, float("nan"), -3.25e-7, 1e300, 7, "text"]):
            run.log({"loss": value, "loss_2": step, "nested": {"loss": 1.0}})

    prefix = _item_prefix("loss")
    read = 0
    for raw in TransactionLog(write_run(tmp_path, log)).read():
        if record_kind(raw) != HISTORY:
            continue
        (item,) = [i for i in pb.Record.FromString(raw).history.item if i.nested_key == ["loss"]]
        fast = _logged_value(raw, prefix)
        if fast is not _UNREAD:
            read += 1
            expected = json.loads(item.value_json)
            if isinstance(expected, float | int) and math.isfinite(expected):
                assert fast == expected
            else:
                assert fast is None
    assert read == 6  # every record read without parsing it
