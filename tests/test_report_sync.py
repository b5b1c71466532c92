"""`sweepkit report` rendered in real headless Chromium, and `sweepkit sync` with W&B's server faked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sweepkit.backends import backend_for_id, backend_for_new_sweep
from sweepkit.sync import plan_sync, sync
from tests.helpers import fake_wandb
from tests.helpers.browser import broken_images, chromium, driven_chromium
from tests.helpers.cli import sweepkit
from tests.helpers.wandb_disk import history, logged_tables

SWEEP = {
    "method": "grid",
    "metric": {"name": "acc", "goal": "maximize"},
    "parameters": {
        "lr": {"values": [0.0005, 0.003]},
        "l1_size": {"values": [8, 16]},
        "epochs": {"value": 2},  # two epochs: the report's views across time have data
        "dataset": {"value": "sample"},
        "max_train": {"value": 400},
        "max_test": {"value": 300},
        "log_interval": {"value": 5},
    },
}


@pytest.fixture(scope="module")
def small_sweep(tmp_path_factory):
    """A real local sweep of four real training runs, shared by the tests of this module."""
    root = tmp_path_factory.mktemp("report")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("WANDB_DIR", str(root))
        mp.setenv("WANDB_DATA_DIR", str(root / "wandb-data"))
        backend = backend_for_new_sweep("local")
        sweep_id = backend.create(SWEEP)
        result = backend.agent(sweep_id)
        assert (result.performed, result.failed) == (4, 0)
    return root, sweep_id


@pytest.fixture(scope="module")
def report(small_sweep, tmp_path_factory):
    """`sweepkit report` of the small sweep, and the sweep's runs best first."""
    root, sweep_id = small_sweep
    out = tmp_path_factory.mktemp("report-out")
    result = sweepkit("report", sweep_id, "--out", str(out), cwd=root)
    assert result.returncode == 0, result.stderr
    page = Path(result.stdout.strip())
    info = backend_for_id(sweep_id, root / ".sweepkit" / "sweeps.db").sweep(sweep_id)
    runs = sorted(info.runs, key=lambda r: r.metric, reverse=True)
    return page, runs


def part(text: str, anchor: str) -> str:
    """One section of the report, by its id."""
    start = text.index(f"<section id='{anchor}'>")
    return text[start : text.index("</section>", start)]


def test_report_shows_every_section_with_real_data_and_no_broken_image(report, tmp_path):
    page, runs = report
    text = page.read_text()
    best, worst = runs[0], runs[-1]
    for section in ("Parameters against the metric", "The metric, run by run", "confusion matrix"):
        assert section in text
    assert "guess " in text and "/ truth " in text  # the misclassified grid has captions
    importance = part(text, "importance")
    assert "<td>lr</td>" in importance and "<td>l1_size</td>" in importance
    assert (
        "one value in every run: dataset, epochs, log_interval, max_test, max_train" in importance
    )
    for chart in ("roc", "pr"):
        assert part(text, chart).count("data:image/png;base64") == 1
        assert f"{best.id}: macro-average" not in part(text, chart)  # drawn in the PNG, not text
    # The same images across time: as many changed guesses as the best run's two tables hold.
    first, last = logged_tables(best.location, "test_predictions")
    last_guess = {row[1]["sha256"]: row[2] for row in last["data"]}
    changed = sum(row[2] != last_guess[row[1]["sha256"]] for row in first["data"])
    assert f"{changed} of 160 images" in part(text, "across-time") and changed > 0
    # Top errors over time: the best run's wrong guesses per epoch, as it logged them.
    errors = [r["test_errors"] for r in history(best.location) if "test_errors" in r]
    assert f"{best.id}: {errors[0]} → {errors[1]} (whole test set)" in part(text, "errors")
    compare = part(text, "compare")
    assert f"{best.id} ({best.metric:.4g}) against {worst.id}" in compare
    assert "by guess" in compare
    theirs = {
        r[1]["sha256"]: r[2] for r in logged_tables(worst.location, "test_predictions")[-1]["data"]
    }
    disagree = sum(row[2] != theirs[row[1]["sha256"]] for row in last["data"])
    assert f"Where they disagree: {disagree} of the 160 images both tables hold" in compare
    assert part(text, "table").count('"rows"') == 1

    images, broken = broken_images(page, tmp_path / "probe.html")
    assert images >= 100 and broken == 0  # charts, digits and the table's images all decode
    shot = tmp_path / "report.png"
    chromium("--window-size=1200,2600", f"--screenshot={shot}", page.as_uri())
    assert shot.stat().st_size > 50_000


def test_prediction_table_sorts_filters_and_groups_in_chromium(report, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    page, runs = report
    logged = logged_tables(runs[0].location, "test_predictions")[-1]["data"]
    wrong = [row for row in logged if row[2] != row[3]]
    with driven_chromium() as driver:
        driver.get(page.as_uri())
        count = driver.find_element(By.ID, "pt-count")
        assert count.text == "showing 160 of 160 rows"

        header = driver.find_element(By.CSS_SELECTOR, "#prediction-table th[data-column='score_3']")
        header.click()
        shown = [float(row[7]) for row in shown_rows(driver)]
        assert shown == sorted(shown) and shown[0] == float(f"{min(r[7] for r in logged):.3f}")
        header.click()  # again: descending
        shown = [float(row[7]) for row in shown_rows(driver)]
        assert shown == sorted(shown, reverse=True) and shown[0] == round(
            max(r[7] for r in logged), 3
        )
        assert header.get_attribute("aria-sort") == "descending"

        driver.find_element(By.ID, "pt-wrong").click()
        rows = shown_rows(driver)
        assert len(rows) == len(wrong) and all(row[2] != row[3] for row in rows)
        assert count.text == f"showing {len(wrong)} of 160 rows"
        truth = max({r[3] for r in wrong}, key=lambda t: sum(r[3] == t for r in wrong))
        Select(driver.find_element(By.ID, "pt-truth")).select_by_value(str(truth))
        rows = shown_rows(driver)
        assert len(rows) == sum(r[3] == truth for r in wrong) > 0
        assert all(row[3] == str(truth) and row[2] != row[3] for row in rows)

        Select(driver.find_element(By.ID, "pt-truth")).select_by_value("")
        Select(driver.find_element(By.ID, "pt-group")).select_by_value("guess")
        groups = driver.execute_script(
            "return [...document.querySelectorAll('#prediction-table tbody tr')].map(tr =>"
            " tr.classList.contains('group-row') ? 'G' + tr.dataset.group : tr.cells[2].textContent)"
        )
        headers = [int(g[1:]) for g in groups if g.startswith("G")]
        assert headers == sorted({r[2] for r in wrong})  # one group per guess, in order
        current = None
        for item in groups:  # every row sits under the group of its guess
            if item.startswith("G"):
                current = item[1:]
            else:
                assert item == current
        undecoded = driver.execute_script(
            "return [...document.querySelectorAll('#prediction-table tbody img')]"
            ".filter(i => !i.complete || i.naturalWidth !== 28).length"
        )
        assert undecoded == 0  # every row shows its 28x28 digit
        driver.execute_script("document.getElementById('prediction-table').scrollIntoView()")
        shot = tmp_path / "table.png"
        driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 20_000


def shown_rows(driver) -> list[list[str]]:
    """The text of every cell of the table's data rows, as the page shows them."""
    return driver.execute_script(
        "return [...document.querySelectorAll('#prediction-table tbody tr.data-row')]"
        ".map(tr => [...tr.cells].map(td => td.textContent))"
    )


def test_report_compares_the_runs_asked_for_and_refuses_an_unknown_one(
    small_sweep, report, tmp_path
):
    root, sweep_id = small_sweep
    _, runs = report
    a, b = runs[1], runs[2]
    assert a.name  # named as W&B's agent names runs: --compare takes names too
    result = sweepkit(
        "report", sweep_id, "--out", str(tmp_path), "--compare", a.name, b.id, cwd=root
    )
    assert result.returncode == 0, result.stderr
    compare = part(Path(result.stdout.strip()).read_text(), "compare")
    assert (
        f"{a.id} ({a.metric:.4g}) against {b.id} ({b.metric:.4g}) (as asked with --compare)"
        in compare
    )

    bad = sweepkit(
        "report", sweep_id, "--out", str(tmp_path / "bad"), "--compare", a.id, "nope", cwd=root
    )
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert f"error: --compare: no run nope in sweep {sweep_id}" in bad.stderr and a.id in bad.stderr
    assert not (tmp_path / "bad").exists()  # nothing written


def test_report_of_a_wandb_sweep_reads_the_api(monkeypatch, tmp_path):
    server = fake_wandb.install(monkeypatch)
    backend = backend_for_new_sweep("wandb")
    sweep_id = backend.create({"method": "grid", "metric": {"name": "loss", "goal": "minimize"},
                               "parameters": {"x": {"values": [0.0, 1.0, 2.0]}}})  # fmt: skip
    backend.agent(sweep_id, function="tests.sweep_functions:quadratic", count=3)
    from sweepkit.report import write_report

    page = write_report(backend, sweep_id, tmp_path)
    text = page.read_text()
    assert "run2" in text and "Parameters against the metric" in text  # x=2 is the best run
    assert "logged no confusion matrix" in text  # the fake runs logged no tables: said, not hidden
    assert ("Api.sweep", (sweep_id,), {}) in server.calls


def test_sync_dry_run_lists_the_run_folders_and_marks_nothing(small_sweep):
    root, sweep_id = small_sweep
    result = sweepkit("sync", sweep_id, "--dry-run", cwd=root)
    assert result.returncode == 0, result.stderr
    assert "4 run(s) to upload, 0 already synced" in result.stdout
    assert result.stdout.count("offline-run-") == 4
    assert "prior_runs=<4 run ids>" in result.stdout
    again = sweepkit("sync", sweep_id, "--dry-run", cwd=root)
    assert "4 run(s) to upload" in again.stdout  # a dry run marked nothing


def test_sync_without_credentials_is_one_line_and_marks_nothing(small_sweep, monkeypatch):
    root, sweep_id = small_sweep
    monkeypatch.delenv("WANDB_MODE")
    result = sweepkit("sync", sweep_id, cwd=root)
    assert result.returncode == 1 and "cannot sync without W&B credentials" in result.stderr
    assert "Traceback" not in result.stderr
    assert "4 run(s) to upload" in sweepkit("sync", sweep_id, "--dry-run", cwd=root).stdout


def test_sync_uploads_with_wandb_sync_then_creates_the_sweep_once_per_run(small_sweep, monkeypatch):
    root, sweep_id = small_sweep
    monkeypatch.chdir(root)
    monkeypatch.delenv("WANDB_MODE")
    server = fake_wandb.install(monkeypatch)
    uploads = []

    def fake_wandb_sync(command, **kwargs):  # the process that would talk to the W&B server
        uploads.append(command)
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr("sweepkit.sync.subprocess.run", fake_wandb_sync)
    backend = backend_for_new_sweep("local")
    first = sync(backend, plan_sync(backend, sweep_id), project="proj", entity="ent")
    (command,) = uploads
    assert command[:4] == [sys.executable, "-m", "wandb", "sync"]
    assert command[4:8] == ["--project", "proj", "--entity", "ent"]
    folders = command[8:]
    assert len(folders) == 4 and all(Path(f).is_dir() for f in folders)
    (sweep_call,) = [c for c in server.calls if c[0] == "sweep"]
    assert sweep_call[2] == {"entity": "ent", "project": "proj"}
    assert first == "ent/proj/swp00000"
    run_ids = {r.id for r in backend.sweep(sweep_id).runs}
    assert set(server.prior_runs[-1]) == run_ids

    assert sync(backend, plan_sync(backend, sweep_id), project="proj", entity="ent") is None
    assert len(uploads) == 1  # runs already synced are not sent twice


def test_sync_refuses_a_wandb_sweep_id():
    result = sweepkit("sync", "ent/proj/abc123")
    assert result.returncode == 1 and "sync uploads local sweeps" in result.stderr


def test_runs_logged_on_other_machines_come_from_the_store_and_are_named(small_sweep, tmp_path):
    import json
    import sqlite3

    root, sweep_id = small_sweep
    store = tmp_path / "s.db"  # this machine's view of a shared store: one run ran on node-b
    with (
        sqlite3.connect(root / ".sweepkit" / "sweeps.db") as source,
        sqlite3.connect(store) as copy,
    ):
        source.backup(copy)
        (best,) = copy.execute("SELECT id FROM runs ORDER BY metric_value DESC LIMIT 1").fetchone()
        copy.execute(
            "UPDATE runs SET host = 'node-b', run_dir = '/nodes/b/wandb/offline-run-x' WHERE id = ?",
            (best,),
        )
        copy.execute("UPDATE runs SET synced_at = NULL")  # whatever the sync test did before
    info = json.loads(
        sweepkit("status", sweep_id, "--json", "--store", str(store), cwd=root).stdout
    )
    run = next(r for r in info["runs"] if r["id"] == best)
    assert run["state"] == "finished" and run["metric"] is not None  # from the store
    assert info["best"]["id"] == best

    report = sweepkit(
        "report", sweep_id, "--store", str(store), "--out", str(tmp_path / "r"), cwd=root
    )
    assert report.returncode == 0, report.stderr
    page = (tmp_path / "r" / "report.html").read_text()
    assert page.count("Run folders on other machines") == 1 and f"{best} (node-b)" in page

    plan = sweepkit("sync", sweep_id, "--store", str(store), "--dry-run", cwd=root)
    assert plan.returncode == 0, plan.stderr
    assert "3 run(s) to upload" in plan.stdout and best not in plan.stdout.split("then:")[0]
    assert "1 run(s) not uploaded: their folders are on node-b, not here" in plan.stdout
