"""`sweepkit report` rendered in real headless Chromium, and `sweepkit sync` with W&B's server faked."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sweepkit.backends import backend_for_new_sweep
from sweepkit.sync import plan_sync, sync
from tests.backends import fake_wandb
from tests.test_cli import sweepkit

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SWEEP = {
    "method": "grid",
    "metric": {"name": "acc", "goal": "maximize"},
    "parameters": {
        "lr": {"values": [0.0005, 0.003]},
        "l1_size": {"values": [8, 16]},
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


def test_report_renders_with_every_image_in_chromium(small_sweep, tmp_path):
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (.ci/run installs it)")
    root, sweep_id = small_sweep
    result = sweepkit("report", sweep_id, "--out", str(tmp_path), cwd=root)
    assert result.returncode == 0, result.stderr
    page = Path(result.stdout.strip())
    text = page.read_text()
    for section in (
        "Parameters against the metric",
        "The metric, run by run",
        "confusion matrix",
        "misclassified",
    ):
        assert section in text
    assert "guess " in text and "/ truth " in text  # the misclassified grid has captions
    # Let Chromium load the page and count images that did not decode.
    probe = tmp_path / "probe.html"
    probe.write_text(
        text.replace(
            "</body>",
            "<script>window.onload = () => { const imgs = [...document.images];"
            " document.body.dataset.images = imgs.length;"
            " document.body.dataset.broken = imgs.filter(i => !i.complete || i.naturalWidth === 0).length; }"
            "</script></body>",
        )
    )
    dom = chromium("--dump-dom", "--virtual-time-budget=5000", probe.as_uri())
    images = int(dom.split('data-images="')[1].split('"')[0])
    broken = int(dom.split('data-broken="')[1].split('"')[0])
    assert images >= 10 and broken == 0  # 5 charts and the misclassified digits
    shot = tmp_path / "report.png"
    chromium("--window-size=1200,2600", f"--screenshot={shot}", page.as_uri())
    assert shot.stat().st_size > 50_000


def chromium(*args: str) -> str:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
    user_dir = Path(__import__("tempfile").mkdtemp())
    return subprocess.run(
        [CHROMIUM, *flags, f"--user-data-dir={user_dir}", *args],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout


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
