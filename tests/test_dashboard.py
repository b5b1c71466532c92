"""`sweepkit dashboard`: the store's sweeps, live in a real headless Chromium, while a real
agent works; what it serves, and to whom.

The server is the console script in a process of its own (as a user starts it); the page
is driven through chromium-driver. Every wait is on the page's own state (a row, a count
of points, a state), never on the clock.
"""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from sweepkit.backends.local import LocalBackend
from tests.helpers.browser import driven_chromium
from tests.helpers.cli import create
from tests.helpers.grids import GRID_2_YAML

DEADLINE_S = 120.0


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Dashboard:
    """`sweepkit dashboard` in a process of its own; its URL is the line it prints."""

    def __init__(self, workdir: Path, *args: str) -> None:
        self.process = subprocess.Popen(
            ["sweepkit", "dashboard", "--port", str(free_port()), *args], cwd=workdir,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.url = self.process.stdout.readline().strip()
        assert self.url.startswith("http://"), self.process.stderr.read()
        self.base = self.url.split("#")[0].split("?")[0]
        self._wait_until_it_answers()

    def _wait_until_it_answers(self) -> None:
        deadline = time.monotonic() + DEADLINE_S
        while True:
            try:
                urllib.request.urlopen(self.url.split("#")[0], timeout=2).read()
                return
            except (urllib.error.URLError, ConnectionError):
                assert self.process.poll() is None, self.process.stderr.read()
                assert time.monotonic() < deadline, "the dashboard never answered"
                time.sleep(0.1)

    def stop(self) -> None:
        self.process.terminate()
        self.process.communicate(timeout=30)


def set_control(driver, css: str, value: str, event: str = "change") -> None:
    """Set the input or select at `css` as a user does, in one step of the page's own: the
    page redraws a run every 2 s, which a WebDriver element may not outlive between steps."""
    assert driver.execute_script(
        "const c = document.querySelector(arguments[0]); if (!c) return false;"
        " c.value = arguments[1]; c.dispatchEvent(new Event(arguments[2], {bubbles: true}));"
        " return true", css, value, event)  # fmt: skip


def wait_for(driver, script: str, what: str):
    """Run `script` in the page until it returns something truthy (what it returned)."""
    deadline = time.monotonic() + DEADLINE_S
    while not (found := driver.execute_script(script)):
        assert time.monotonic() < deadline, f"the page never showed {what}"
        time.sleep(0.1)
    return found


@pytest.mark.slow
def test_the_page_follows_a_sweep_as_an_agent_works_it_without_a_reload(workdir):
    sweep_id = create(workdir, GRID_2_YAML)
    dashboard = Dashboard(workdir)
    agent = None
    try:
        with driven_chromium() as driver:
            driver.get(f"{dashboard.base}#/sweep/{sweep_id}")
            wait_for(driver, "return document.body.dataset.refreshed", "its first refresh")
            assert "this sweep has 0." in driver.find_element("id", "view").text
            driver.execute_script("window.openedOnce = true")  # gone if the page reloads
            assert (
                driver.execute_script("return document.querySelectorAll('tr[data-run]').length")
                == 0
            )
            # An agent starts after the page was opened: its run appears in place.
            agent = subprocess.Popen(
                ["sweepkit", "agent", sweep_id, "-f", "tests.sweep_functions:logs_until_released"],
                cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            run_id = wait_for(
                driver, "const r = document.querySelector('tr[data-run][data-state=running]');"
                " return r && r.dataset.run", "a running run")  # fmt: skip
            # On the sweep page, its loss curve grows among the sweep's curves.
            line = ("const l = document.querySelector('figure[data-chart=metric-curves]"
                    f" polyline[data-run=\"{run_id}\"]'); return l && Number(l.dataset.points)")  # fmt: skip
            first = wait_for(driver, line, "the running run's curve on the sweep page")
            wait_for(driver, f"{line.rsplit('return', 1)[0]} return l && Number(l.dataset.points) > {first} + 3",
                     "that curve growing")  # fmt: skip
            first_step = driver.execute_script(
                "return document.querySelector('figure[data-chart=metric-curves] svg text').textContent")  # fmt: skip
            assert first_step == "0"  # the page kept every point: the curve still starts at step 0
            # Its page: the loss curve grows while the run logs.
            driver.execute_script(f"location.hash = '#/sweep/{sweep_id}/run/{run_id}'")
            script = ("const f = document.querySelector('figure[data-key=loss]');"
                      " return f && Number(f.dataset.points)")  # fmt: skip
            first = wait_for(driver, script, "the run's loss")
            wait_for(driver, f"{script.rsplit('return', 1)[0]} return f && Number(f.dataset.points) > {first} + 3",
                     "the loss curve growing")  # fmt: skip
            (workdir / "release").touch()
            driver.execute_script(f"location.hash = '#/sweep/{sweep_id}'")
            wait_for(driver, "const rows = [...document.querySelectorAll('tr[data-run]')];"
                     " return rows.length === 2 && rows.every(r => r.dataset.state === 'finished')",
                     "both runs finished")  # fmt: skip
            assert driver.execute_script("return window.openedOnce") is True  # never reloaded
            # The sweep views followed: a line per run across the x and loss axes, the run
            # with the larger x crossing the x axis higher; importance asked again.
            lines = driver.execute_script(
                "return [...document.querySelectorAll('figure[data-chart=parallel-coordinates]"
                " polyline')].map(l => [l.dataset.run, l.getAttribute('points').split(' ')])")  # fmt: skip
            x_of = {r.id: r.config["x"] for r in LocalBackend().sweep(sweep_id).runs}
            assert sorted(run for run, _ in lines) == sorted(x_of)
            heights = {run: float(points[0].split(",")[1]) for run, points in lines}
            low, high = sorted(x_of, key=x_of.get)
            assert heights[high] < heights[low]  # SVG's y grows downwards
            wait_for(driver, "return document.querySelector('#view').textContent"
                     ".includes('finished runs with the metric; this sweep has 2')",
                     "the importance of both finished runs")  # fmt: skip
            assert driver.find_element("id", "problem").text == ""
        assert agent.wait(timeout=120) == 0, agent.stderr.read()
    finally:
        if agent is not None and agent.poll() is None:
            agent.kill()
        dashboard.stop()


@pytest.mark.slow
def test_a_runs_page_shows_its_charts_and_its_table_sorts_filters_and_groups(workdir):
    sweep_id = create(workdir, "method: grid\nmetric: {name: val_acc, goal: maximize}\n"
                               "parameters:\n  x: {values: [2.0]}\n")  # fmt: skip
    done = subprocess.run(
        ["sweepkit", "agent", sweep_id, "-f", "tests.sweep_functions:logs_its_own_views"],
        cwd=workdir, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    dashboard = Dashboard(workdir, sweep_id)
    try:
        with driven_chromium() as driver:
            driver.get(dashboard.url)
            run_id = wait_for(driver, "const r = document.querySelector('tr[data-run]');"
                              " return r && r.dataset.run", "the run")  # fmt: skip
            driver.execute_script(f"location.hash = '#/sweep/{sweep_id}/run/{run_id}'")
            wait_for(driver, "return document.querySelector('figure[data-key=eval_cm] table')",
                     "the confusion matrix")  # fmt: skip
            cells = driver.execute_script(
                "return [...document.querySelectorAll('figure[data-key=eval_cm] tr')]"
                ".map(tr => [...tr.children].map(c => c.textContent))")  # fmt: skip
            assert cells == [["actual \\ predicted", "bird", "cat", "dog"],
                             ["bird", "3", "1", "0"], ["cat", "0", "2", "1"],
                             ["dog", "1", "0", "1"]]  # fmt: skip
            for key in ("eval_roc", "eval_pr", "confusion_matrix"):
                assert driver.execute_script(
                    f"return !!document.querySelector('figure[data-key={key}]')"
                )
            table = "document.querySelector('div.logged[data-key=worst_cases]')"
            ids = (f"return [...{table}.querySelectorAll('tbody tr')].map(r => r.dataset.group"
                   " ? 'G ' + r.dataset.group : r.children[0].textContent)")  # fmt: skip
            assert driver.execute_script(ids) == ["2", "4", "7"]
            for _ in range(2):  # the second click: descending
                driver.execute_script(f"{table}.querySelector('th[data-column=id]').click()")
            assert driver.execute_script(ids) == ["7", "4", "2"]
            set_control(driver, "div.logged input[data-filter]", "bird", "input")
            assert driver.execute_script(ids) == ["7", "4"]  # the rows whose truth or guess is bird
            set_control(driver, "div.logged input[data-filter]", "", "input")
            set_control(driver, "div.logged select[id$=-group]", "truth")
            # Each row under its truth: 7 (a bird taken for a cat), 2 (a cat), 4 (a dog).
            assert driver.execute_script(ids) == ["G bird", "7", "G cat", "2", "G dog", "4"]
            refreshed = driver.execute_script("return Number(document.body.dataset.refreshed)")
            wait_for(driver, f"return Number(document.body.dataset.refreshed) > {refreshed}",
                     "a refresh")  # fmt: skip
            assert driver.execute_script(ids) == ["G bird", "7", "G cat", "2", "G dog", "4"]  # kept
            images = driver.execute_script(
                "return [...document.querySelectorAll('img')].map(i => i.complete && i.naturalWidth > 0)"
            )
            assert images and all(images)  # the table's and the run's images all load
    finally:
        dashboard.stop()


def test_off_loopback_every_request_needs_the_token_and_the_page_hides_the_password(
    tmp_path, monkeypatch
):
    from starlette.testclient import TestClient

    from sweepkit.dashboard.app import make_app

    monkeypatch.setenv("SWEEPKIT_STORE_PATIENCE", "0")  # as `serve` sets it, shorter
    store = "postgresql://sk:hunter2@127.0.0.1:1/sweeps"
    client = TestClient(make_app(lambda: LocalBackend(store), token="t0k"))
    assert client.get("/").status_code == 403
    assert client.get("/api/sweeps").status_code == 403
    assert client.get("/api/sweeps?token=wrong").status_code == 403
    page = client.get("/?token=t0k")
    assert page.status_code == 200 and "sk:***@" in page.text and "hunter2" not in page.text
    down = client.get("/api/sweeps?token=t0k")  # no server on port 1: one line, not a crash
    assert down.status_code == 503 and "hunter2" not in down.text
    assert (
        client.get("/file?path=/etc/passwd&token=t0k").status_code == 404
    )  # no file a page was not shown


def test_a_run_refresh_carries_only_the_points_the_page_lacks(workdir):
    from sweepkit.dashboard.data import RunFiles

    sweep_id = create(workdir, "method: grid\nmetric: {name: loss, goal: minimize}\n"
                               "parameters:\n  x: {values: [2.0]}\n")  # fmt: skip
    done = subprocess.run(["sweepkit", "agent", sweep_id, "-f", "tests.sweep_functions:quadratic"],
                          cwd=workdir, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    backend, files = LocalBackend(), RunFiles()
    (run,) = backend.sweep(sweep_id).runs
    whole = files.run(backend, sweep_id, run.id)["logged"]["scalars"]
    assert [v for _, v in whole["loss"]] == [2.0, 1.5, 1 + 1 / 3]  # (2 - 3)^2 + 1 / (step + 1)
    again = files.run(backend, sweep_id, run.id, since={"loss": 3, "epoch": 3})["logged"]
    assert again["scalars"] == {"loss": [], "epoch": []}
    assert files.run(backend, sweep_id, run.id, since={"loss": 2})["logged"]["scalars"]["loss"] == [
        [2, 1 + 1 / 3]
    ]


def test_a_run_page_shows_the_last_epoch_of_a_prediction_table_under_its_key(tmp_path):
    import json

    from sweepkit.views.details import latest_of
    from sweepkit.views.logged import RunContents, TableVersion
    from sweepkit.views.predictions import NEEDED

    contents = RunContents(scalars={"loss": [(0, 2.0), (1, 1.0)]})
    for epoch, guess in enumerate([3, 7]):  # the run changed its mind at its second epoch
        staged = tmp_path / f"epoch{epoch}.table.json"
        row = [41, None, guess, 7, *[0.1] * 10]
        staged.write_text(json.dumps({"columns": NEEDED, "data": [row]}))
        path = f"media/table/epoch{epoch}.table.json"
        contents.tables.setdefault("predictions", []).append(
            TableVersion(epoch, path, {path: staged})
        )
    shown = latest_of(contents).tables["predictions"]
    assert shown.columns == NEEDED
    assert [dict(zip(shown.columns, r, strict=True))["guess"] for r in shown.data] == [7]


TABLE_EACH_EPOCH = "method: grid\nparameters:\n  x: {values: [1, 2]}\n"


def per_class_runs(workdir: Path) -> tuple[str, dict[int, str]]:
    """A sweep of two runs, x=1 and x=2, each logging `per_class` at three epochs; its id and
    the runs' ids by x."""
    sweep_id = create(workdir, TABLE_EACH_EPOCH)
    done = subprocess.run(
        ["sweepkit", "agent", sweep_id, "-f", "tests.sweep_functions:logs_a_table_each_epoch"],
        cwd=workdir, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return sweep_id, {r.config["x"]: r.id for r in LocalBackend().sweep(sweep_id).runs}


def test_a_table_can_be_read_at_any_of_its_versions_and_from_another_run(workdir):
    from sweepkit.dashboard.data import RunFiles

    sweep_id, by_x = per_class_runs(workdir)
    backend, files = LocalBackend(), RunFiles()
    shown = files.run(backend, sweep_id, by_x[1])
    assert shown["others"] == [[by_x[2], next(r.name for r in backend.sweep(sweep_id).runs
                                             if r.id == by_x[2])]]  # fmt: skip
    steps = shown["logged"]["table_steps"]["per_class"]
    assert len(steps) == 3 and steps == sorted(steps)
    assert shown["logged"]["tables"]["per_class"]["rows"] == [
        ["cat", 120],
        ["dog", 121],
        ["bird", 122],
    ]
    first = files.table(backend, sweep_id, by_x[1], "per_class", 0)
    assert (first["version"], first["step"]) == (0, steps[0])
    assert first["rows"] == [["cat", 100], ["dog", 101], ["bird", 102]]
    other = files.table(backend, sweep_id, by_x[2], "per_class")
    assert other["version"] == 2 and other["rows"] == [["cat", 220], ["dog", 221], ["bird", 222]]
    with pytest.raises(KeyError, match="logged no version 3 of a table per_class"):
        files.table(backend, sweep_id, by_x[1], "per_class", 3)


@pytest.mark.slow
def test_a_table_is_compared_side_by_side_with_an_earlier_epoch_and_another_run(workdir):
    sweep_id, by_x = per_class_runs(workdir)
    dashboard = Dashboard(workdir, sweep_id)
    counts = ("return [...document.querySelectorAll('div.logged[data-key=per_class]')]"
              ".map(t => [...t.querySelectorAll('tbody tr')].map(r => Number(r.cells[1].textContent)))")  # fmt: skip
    try:
        with driven_chromium() as driver:
            driver.get(f"{dashboard.base}#/sweep/{sweep_id}/run/{by_x[1]}")
            assert wait_for(driver, counts, "the table") == [[120, 121, 122]]
            choose = "select[data-compare=per_class]"
            set_control(driver, choose, "v0")
            assert wait_for(driver, f"const c = (() => {{ {counts} }})(); return c.length === 2 && c",
                            "the first epoch beside the last") == [[120, 121, 122], [100, 101, 102]]  # fmt: skip
            set_control(driver, choose, f"r{by_x[2]}")
            assert wait_for(driver, f"const c = (() => {{ {counts} }})(); return c[1] && c[1][0] === 220 && c",
                            "the other run's table") == [[120, 121, 122], [220, 221, 222]]  # fmt: skip
            # Sorting the other side by count, descending, survives the refreshes.
            for _ in range(2):
                driver.execute_script(
                    "document.querySelector('div.logged.compared th[data-column=count]').click()"
                )
            refreshed = driver.execute_script("return Number(document.body.dataset.refreshed)")
            wait_for(
                driver, f"return Number(document.body.dataset.refreshed) > {refreshed}", "a refresh"
            )
            assert driver.execute_script(counts) == [[120, 121, 122], [222, 221, 220]]
    finally:
        dashboard.stop()


def test_the_sweep_page_draws_the_metric_by_step_of_its_best_runs_new_points_only(workdir):
    from sweepkit.dashboard.data import RunFiles
    from tests.helpers.grids import GRID_3_YAML

    sweep_id = create(workdir, GRID_3_YAML)
    done = subprocess.run(["sweepkit", "agent", sweep_id, "-f", "tests.sweep_functions:quadratic"],
                          cwd=workdir, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    backend, files = LocalBackend(), RunFiles()
    by_x = {r.config["x"]: r.id for r in backend.sweep(sweep_id).runs}
    shown = files.curves(backend.sweep(sweep_id))
    assert shown["metric"] == "loss"
    assert [r["id"] for r in shown["runs"]] == [by_x[3.0], by_x[2.0], by_x[1.0]]  # best first
    loss = {x: [(x - 3) ** 2 + 1 / (step + 1) for step in range(3)] for x in by_x}
    for run, x in zip(shown["runs"], (3.0, 2.0, 1.0), strict=True):
        assert [s for s, _ in run["points"]] == [0, 1, 2]
        assert [v for _, v in run["points"]] == pytest.approx(loss[x])
    again = files.curves(backend.sweep(sweep_id), since={by_x[3.0]: 2, by_x[2.0]: 3})
    assert [len(r["points"]) for r in again["runs"]] == [1, 0, 3]
    assert again["runs"][0]["points"] == [[2, pytest.approx(loss[3.0][2])]]


def test_it_listens_on_loopback_unless_told_and_then_asks_for_the_printed_token(workdir):
    import json
    import re

    sweep_id = create(workdir, GRID_2_YAML)
    local = Dashboard(workdir)
    try:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/#/", local.url)  # no token on loopback
        listed = json.loads(urllib.request.urlopen(f"{local.base}api/sweeps", timeout=30).read())
        assert [s["id"] for s in listed] == [sweep_id]
    finally:
        local.stop()
    shared = Dashboard(workdir, "--host", "0.0.0.0")
    try:
        found = re.fullmatch(r"http://0\.0\.0\.0:\d+/\?token=([\w-]{16,})#/", shared.url)
        assert found, shared.url
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{shared.base}api/sweeps", timeout=30)
        assert refused.value.code == 403
        asked = f"{shared.base}api/sweeps?token={found.group(1)}"
        assert json.loads(urllib.request.urlopen(asked, timeout=30).read())[0]["id"] == sweep_id
    finally:
        shared.stop()
