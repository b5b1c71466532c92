"""The reaper: a run whose agent died is finished from its own log, or crashed and offered again."""

from __future__ import annotations

from pathlib import Path

import pytest

from sweepkit.backends.store import open_store
from sweepkit.core.lifecycle import Ending, RunState
from sweepkit.runner.reaper import LostRun, judge_lost_run, reap
from tests.helpers.logged import logged
from tests.helpers.wandb_disk import write_run

LOST = "no heartbeat for 5 s: its agent died"


def log_acc(run):
    run.define_metric("acc", summary="min,max")
    for value in (0.2, 0.9, 0.5):
        run.log({"acc": value})


def lost_run(root: Path, exit_code: int) -> tuple[str, str]:
    """A real wandb run that ended with `exit_code` under `root`: (its id, its folder)."""
    path = Path(write_run(root, log_acc, exit_code))
    return path.stem.removeprefix("run-"), str(path.parent)


@pytest.mark.parametrize("where", [None, "", "nosuch"])
def test_a_run_with_no_folder_to_read_is_crashed(tmp_path, where):
    wandb_dir = str(tmp_path / where) if where else where
    assert judge_lost_run(wandb_dir, "abc", "acc", "maximize", 5.0) == LostRun(
        Ending(RunState.CRASHED, LOST), None, None
    )


@pytest.mark.parametrize(("goal", "value"), [("maximize", 0.9), ("minimize", 0.2)])
def test_a_run_whose_log_has_a_clean_exit_is_finished_with_its_metric(tmp_path, goal, value):
    run_id, run_dir = lost_run(tmp_path, exit_code=0)
    verdict = judge_lost_run(str(tmp_path), run_id, "acc", goal, 5.0)
    assert (verdict.ending, verdict.run_dir) == (Ending(RunState.FINISHED), run_dir)
    progress = verdict.progress
    assert (progress.count, progress.minimum, progress.maximum, progress.last) == (3, 0.2, 0.9, 0.5)
    assert progress.value == value  # the summary aggregate the goal asks for


def test_a_run_that_exited_non_zero_is_crashed_with_what_it_logged(tmp_path):
    run_id, run_dir = lost_run(tmp_path, exit_code=1)
    verdict = judge_lost_run(str(tmp_path), run_id, "acc", "maximize", 2.5)
    assert (verdict.ending, verdict.run_dir) == (
        Ending(RunState.CRASHED, "no heartbeat for 2.5 s: its agent died"), run_dir,
    )  # fmt: skip
    assert verdict.progress.count == 3
    # Without a sweep metric there is no progress to read; a run never started has no folder.
    assert judge_lost_run(str(tmp_path), run_id, None, "maximize", 5).progress is None
    never_started = judge_lost_run(str(tmp_path), "other", "acc", "maximize", 5)
    assert (never_started.ending, never_started.run_dir) == (Ending(RunState.CRASHED, LOST), None)
    assert never_started.progress.count == 0


@pytest.mark.parametrize(("goal", "value"), [("maximize", 0.9), ("minimize", 0.2), (None, 0.2)])
def test_the_reaper_finishes_a_lost_run_from_its_log_with_the_sweeps_metric(
    store_location, tmp_path, goal, value
):
    store = open_store(store_location)
    metric = {"name": "acc", "goal": goal} if goal else {"name": "acc"}
    sweep_id = store.create_sweep(
        {"method": "grid", "metric": metric, "parameters": {"x": {"values": [1, 2]}}}
    )
    run = store.claim_run(sweep_id, wandb_dir=tmp_path)
    run_dir = str(Path(write_run(tmp_path, log_acc, 0, run_id=run.id)).parent)
    assert reap(store, sweep_id, crash_grace_s=0.0) == [(run.id, "finished")]
    (stored,) = store.runs(sweep_id)
    assert (stored.state, stored.run_dir, stored.error) == ("finished", run_dir, None)
    assert (stored.metric_count, stored.metric_value) == (3, value)  # as the goal reads it


def test_a_run_whose_agent_beats_while_the_reaper_reads_its_log_is_left_running(
    store_location, monkeypatch
):
    import sweepkit.runner.reaper as reaper

    store = open_store(store_location)
    sweep_id = store.create_sweep({"method": "grid", "parameters": {"x": {"values": [1, 2]}}})
    run = store.claim_run(sweep_id)
    judge = reaper.judge_lost_run

    def judged_while_it_beats(*args):
        verdict = judge(*args)
        store.heartbeat(sweep_id, run.id)  # its agent was only stalled: it beats meanwhile
        return verdict

    monkeypatch.setattr(reaper, "judge_lost_run", judged_while_it_beats)
    assert reap(store, sweep_id, crash_grace_s=0.0) == []
    assert store.runs(sweep_id)[0].state == "running"


def test_a_run_is_recorded_once_even_if_the_reaper_and_its_agent_race(store_location):
    store = open_store(store_location)
    sweep_id = store.create_sweep({"method": "grid", "parameters": {"x": {"values": [1, 2]}}})
    run = store.claim_run(sweep_id)
    assert reap(store, sweep_id, crash_grace_s=0.0) == [(run.id, "crashed")]  # no folder: crashed
    assert not store.finish_run(  # its agent, back too late, records nothing over it
        sweep_id, run.id, state="finished", progress=logged([1.0]), summary={}, run_dir=None
    )
    assert reap(store, sweep_id, crash_grace_s=0.0) == []


def test_run_cap_counts_points_not_their_retries(store_location):
    store = open_store(store_location)
    sweep_id = store.create_sweep(
        {"method": "random", "run_cap": 3, "parameters": {"x": {"min": 0.0, "max": 1.0}}}
    )
    crashed = store.claim_run(sweep_id)
    reap(store, sweep_id, crash_grace_s=0.0)
    claimed = []
    while (run := store.claim_run(sweep_id)) is not None:
        claimed.append(run.config)
        store.finish_run(
            sweep_id, run.id, state="finished", progress=None, summary={}, run_dir=None
        )
    assert claimed[0] == crashed.config  # the crashed point again, first
    assert len(claimed) == 3  # then two more points: three in all
