"""Headless Chromium for the report's tests: Debian's `chromium` run directly (to dump a
page's DOM or take a screenshot) and driven through `chromium-driver` with Selenium."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
# No network, no first-run work, and a fresh profile each time: the page must stand alone.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


def _cannot_run(why: str) -> None:
    """Skip a browser test here; in CI (SWEEPKIT_REQUIRE_BROWSER=1) a browser test that cannot
    run is a failure, not a skip."""
    if os.environ.get("SWEEPKIT_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{why}, and CI requires the browser tests to run")
    pytest.skip(why)


def chromium(*args: str) -> str:
    """Run headless Chromium with `args`; its stdout (the DOM with --dump-dom)."""
    if CHROMIUM is None:
        _cannot_run("chromium is not installed (.ci/run installs it)")
    user_dir = tempfile.mkdtemp()
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={user_dir}", *args],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout


@contextlib.contextmanager
def driven_chromium(width: int = 1200, height: int = 1600) -> Iterator[object]:
    """A Selenium WebDriver on headless Chromium (the system's browser and driver)."""
    if CHROMIUM is None or CHROMEDRIVER is None:
        _cannot_run("chromium and chromium-driver are not installed (.ci/run installs them)")
    try:
        from selenium import webdriver
    except ImportError:
        _cannot_run("selenium is not installed (the dev extra has it)")
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never look for a browser online
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [
        *FLAGS,
        f"--user-data-dir={tempfile.mkdtemp()}",
        f"--window-size={width},{height}",
    ]:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def broken_images(page: Path, probe: Path) -> tuple[int, int]:
    """(images, images that did not decode) once Chromium has loaded `page`."""
    probe.write_text(
        page.read_text().replace(
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
    return images, broken
