"""What `sweepkit status` shows a user who cannot open the W&B app, and what it names."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tests.helpers.cli import create, status, sweepkit, write
from tests.helpers.wandb_disk import run_summary

ONE_POINT = "method: grid\nparameters:\n  x: {values: [1.0]}\n"


@pytest.mark.slow
def test_a_failed_runs_error_is_in_the_table_in_json_and_in_full_with_run(workdir):
    sweep_id = create(workdir, ONE_POINT)
    sweepkit("agent", sweep_id, "-f", "tests.sweep_functions:raises", cwd=workdir)

    table = sweepkit("status", sweep_id, cwd=workdir, columns=200)
    assert table.returncode == 0, table.stderr
    assert "RuntimeError: diverged" in table.stdout  # the traceback's last line
    assert "Traceback" not in table.stdout  # only that line in the table

    (run,) = status(workdir, sweep_id)["runs"]
    assert run["error"].startswith("Traceback") and "RuntimeError: diverged" in run["error"]

    full = sweepkit("status", sweep_id, "--run", run["name"], cwd=workdir, columns=200)
    assert full.returncode == 0, full.stderr
    assert (
        "Traceback (most recent call last)" in full.stdout and "raise RuntimeError" in full.stdout
    )
    assert run["id"] in full.stdout and "failed" in full.stdout and "config.x" in full.stdout


@pytest.mark.slow
def test_status_with_no_id_lists_every_sweep_of_the_store(workdir):
    first = create(workdir, "name: first-try\n" + ONE_POINT)
    second = create(workdir, "method: random\nparameters:\n  x: {min: 0.0, max: 1.0}\n")
    sweepkit("agent", first, "-f", "tests.sweep_functions:quadratic", cwd=workdir)

    listing = sweepkit("status", cwd=workdir, columns=200)
    assert listing.returncode == 0, listing.stderr
    lines = {line.split()[1]: line for line in listing.stdout.splitlines() if "local-" in line}
    assert set(lines) == {first, second}
    assert (
        "first-try" in lines[first] and "finished" in lines[first] and "1 finished" in lines[first]
    )
    assert (
        "random" in lines[second] and "running" in lines[second] and "no runs yet" in lines[second]
    )

    as_json = json.loads(sweepkit("status", "--json", cwd=workdir).stdout)
    assert [s["id"] for s in as_json] == [first, second]


def test_status_with_no_store_says_how_to_make_a_sweep(workdir):
    result = sweepkit("status", cwd=workdir)
    assert result.returncode == 0 and "no sweeps in" in result.stdout


def test_runs_have_readable_names_that_wandb_records(workdir):
    sweep_id = create(
        workdir, "name: My Grid\nmethod: grid\nparameters:\n  x: {values: [1.0, 2.0]}\n"
    )
    sweepkit("agent", sweep_id, "-f", "tests.sweep_functions:quadratic", cwd=workdir)
    runs = status(workdir, sweep_id)["runs"]
    assert [r["name"] for r in runs] == ["my-grid-1", "my-grid-2"]
    assert [run_summary(r["location"])["name"] for r in runs] == ["my-grid-1", "my-grid-2"]


@pytest.mark.slow
def test_the_yamls_project_and_entity_are_honoured_and_flags_win(workdir):
    yaml_text = "project: mnist-yaml\nentity: team-yaml\n" + ONE_POINT
    from_yaml = create(workdir, yaml_text)
    sweepkit("agent", from_yaml, "-f", "tests.sweep_functions:quadratic", cwd=workdir)
    (run,) = status(workdir, from_yaml)["runs"]
    assert run_summary(run["location"])["project"] == "mnist-yaml"

    sweep = write(workdir / "flagged.yaml", yaml_text)
    flagged = sweepkit("create", str(sweep), "--project", "mnist-flag", cwd=workdir).stdout.strip()
    sweepkit("agent", flagged, "-f", "tests.sweep_functions:quadratic", cwd=workdir)
    (run,) = status(workdir, flagged)["runs"]
    assert run_summary(run["location"])["project"] == "mnist-flag"


def test_the_sweeps_name_titles_its_status(workdir):
    sweep_id = create(workdir, "name: lr-hunt\n" + ONE_POINT)
    result = sweepkit("status", sweep_id, cwd=workdir, columns=200)
    assert f"lr-hunt ({sweep_id})" in result.stdout
    assert status(workdir, sweep_id)["name"] == "lr-hunt"


def test_watch_redraws_until_the_sweep_ends(workdir):
    sweep_id = create(workdir, ONE_POINT)
    watcher = subprocess.Popen(
        [sys.executable, "-m", "sweepkit", "status", sweep_id, "--watch", "--every", "0.5"],
        cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    # Off a terminal a watch draws only when it ends, so the one thing to see is that it has
    # not ended after several of its periods (and imports): a running sweep keeps it going.
    time.sleep(3)
    assert watcher.poll() is None, watcher.communicate()
    assert sweepkit("cancel", sweep_id, cwd=workdir).returncode == 0
    out, err = watcher.communicate(timeout=30)  # the sweep ended: so does the watch
    assert watcher.returncode == 0, err
    assert "canceled" in out
