"""Acting on a page that redraws itself under the test: every look-up happens inside a wait.

The dashboard redraws its tables every 2 seconds and its panels after each action, so an
element found a moment ago may already be detached (StaleElementReferenceException) when the
test clicks or reads it. Each helper here looks its element up and acts on it or reads it in
one attempt, and WebDriverWait retries the whole attempt until it succeeds or time runs out.
Tests never keep a WebElement across two steps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, TypeVar

from selenium import webdriver
from selenium.common.exceptions import (
    ElementClickInterceptedException,
    ElementNotInteractableException,
    NoSuchElementException,
    StaleElementReferenceException,
    TimeoutException,
)
from selenium.webdriver.common.alert import Alert
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

T = TypeVar("T")

# Generous, for a busy machine: a wait whose condition holds returns at once.
WAIT_SECONDS = 20.0
POLL_SECONDS = 0.1
# What a redraw in the middle of an attempt looks like: the attempt is simply made again.
RETRIED = (
    NoSuchElementException,
    StaleElementReferenceException,
    ElementNotInteractableException,
    ElementClickInterceptedException,
)


def until(
    browser: webdriver.Chrome, attempt: Callable[[webdriver.Chrome], Literal[False] | T]
) -> T:
    """The first result of ``attempt`` that is not false, retried while it raises one of
    ``RETRIED``. ``attempt`` must look up every element it touches itself."""
    wait = WebDriverWait(browser, WAIT_SECONDS, POLL_SECONDS, ignored_exceptions=RETRIED)
    return wait.until(attempt)


def _one(browser: webdriver.Chrome, css: str) -> WebElement:
    return browser.find_element(By.CSS_SELECTOR, css)


def visible(browser: webdriver.Chrome, css: str) -> None:
    """Wait until an element matching ``css`` is shown."""
    until(browser, lambda b: _one(b, css).is_displayed())


def displayed(browser: webdriver.Chrome, css: str) -> bool:
    """Whether the element matching ``css`` is shown now (once it exists)."""
    shown: bool = until(browser, lambda b: (_one(b, css).is_displayed(),))[0]
    return shown


def click(browser: webdriver.Chrome, css: str) -> None:
    """Click the element matching ``css`` once it is shown and enabled."""

    def attempt(b: webdriver.Chrome) -> bool:
        target = _one(b, css)
        if not (target.is_displayed() and target.is_enabled()):
            return False
        target.click()
        return True

    until(browser, attempt)


def fill(browser: webdriver.Chrome, css: str, text: str) -> None:
    """Replace what the field matching ``css`` holds with ``text`` (clearing first, so a
    retried attempt does not type twice)."""

    def attempt(b: webdriver.Chrome) -> bool:
        field = _one(b, css)
        field.clear()
        field.send_keys(text)
        return True

    until(browser, attempt)


def texts_of(browser: webdriver.Chrome, css: str) -> list[str]:
    """The texts of every element matching ``css``, read in one go."""
    shown: list[str] = until(
        browser, lambda b: ([found.text for found in b.find_elements(By.CSS_SELECTOR, css)],)
    )[0]
    return shown


def text_is(browser: webdriver.Chrome, css: str, expected: str) -> None:
    """Wait until the element matching ``css`` shows exactly ``expected``."""
    last: str | None = None

    def attempt(b: webdriver.Chrome) -> bool:
        nonlocal last
        last = _one(b, css).text
        return last == expected

    try:
        until(browser, attempt)
    except TimeoutException:
        raise AssertionError(f"{css} shows {last!r}, not {expected!r}") from None


def text_contains(browser: webdriver.Chrome, css: str, part: str) -> None:
    """Wait until the text of the element matching ``css`` contains ``part``."""
    until(browser, lambda b: part in _one(b, css).text)


def gone(browser: webdriver.Chrome, css: str) -> None:
    """Wait until no element matches ``css``."""
    until(browser, lambda b: not b.find_elements(By.CSS_SELECTOR, css))


def accept_confirm(browser: webdriver.Chrome) -> None:
    """Accept the confirm() dialog the last click opened, once it is open."""
    alert: Alert = until(browser, expected_conditions.alert_is_present())
    alert.accept()
