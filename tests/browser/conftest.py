"""Headless Chromium for the browser tests (Debian's chromium and chromedriver, Selenium).

Where Chromium is missing the tests skip with the reason, except when
``BUZON_REQUIRE_BROWSER=1`` (CI sets it): then a missing browser is a failure, so CI
cannot pass by skipping them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

HERE = Path(__file__).parent
STOMPJS = HERE / "node_modules" / "@stomp" / "stompjs" / "bundles" / "stomp.umd.min.js"
# Screenshots the tests take, kept for a person to look at after the run.
ARTIFACTS = Path(os.environ.get("BUZON_TEST_ARTIFACTS", HERE.parent.parent / "test-artifacts"))

# The machine has no network beyond loopback: without these, Chromium keeps trying to reach
# its update, sync and safe-browsing services.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
)


def _unavailable(reason: str) -> None:
    if os.environ.get("BUZON_REQUIRE_BROWSER") == "1":
        pytest.fail(f"browser tests required but {reason} (run scripts/browser-deps)")
    pytest.skip(f"{reason} (run scripts/browser-deps)")


def _executable(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        _unavailable(f"{name} is not installed")
        raise AssertionError("unreachable")
    return path


@pytest.fixture(scope="session")
def stompjs() -> Path:
    """The @stomp/stompjs browser bundle installed from tests/browser/package.json."""
    if not STOMPJS.exists():
        _unavailable("@stomp/stompjs is not installed")
    return STOMPJS


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    """A fresh headless Chromium (empty profile) at 1280x800; closed after the test."""
    options = webdriver.ChromeOptions()
    options.binary_location = _executable("chromium")
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument("--window-size=1280,800")
    with tempfile.TemporaryDirectory(prefix="buzon-chromium-") as profile:
        options.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(options=options, service=Service(_executable("chromedriver")))
        try:
            driver.set_page_load_timeout(15)
            yield driver
        finally:
            driver.quit()
