"""A queue's scheduled messages in the dashboard, in headless Chromium against a real
broker: the count, the list with its live countdown, "Deliver now" and "Cancel"."""

from __future__ import annotations

import asyncio
from pathlib import Path

from selenium import webdriver

from buzon.auth import SecretHasher
from tests.browser.test_dashboard import console_errors, go_to, log_in
from tests.browser.waits import (
    accept_confirm,
    click,
    fill,
    text_contains,
    text_is,
    texts_of,
    until,
)
from tests.http.helpers import admin_auth, api
from tests.server.harness import running_server

COUNTDOWN = "#queue-detail .scheduled-message .countdown"


def scheduled_journey(browser: webdriver.Chrome, base: str, artifacts: Path) -> None:
    log_in(browser, base)
    go_to(browser, "queues")
    text_is(browser, '#queue-table tr[data-name="later"] td.scheduled', "1")
    text_is(browser, '#queue-table tr[data-name="later"] td.depth', "0")
    click(browser, '#queue-table tr[data-name="later"] button')
    text_is(browser, '#queue-detail [data-fact="scheduled"] dd', "1")
    # the publish form holds a message back for as long as it is told
    fill(browser, "#queue-detail .publish-body", "soon")
    fill(browser, "#queue-detail .publish-delay", "30")
    click(browser, "#queue-detail .publish button")
    text_contains(browser, "#notice", "to be delivered in 30 s")
    text_is(browser, '#queue-detail [data-fact="scheduled"] dd', "2")
    until(browser, lambda b: len(texts_of(b, COUNTDOWN)) == 2)
    assert texts_of(browser, "#queue-detail .scheduled-message .body") == ["soon", "later"]
    # the countdown runs: "30 s" becomes "29 s" and on, without a reload
    first = texts_of(browser, COUNTDOWN)[0]
    assert first.endswith(" s"), first
    until(browser, lambda b: texts_of(b, COUNTDOWN)[0] not in ("", first))
    browser.execute_script(
        "document.querySelector('#queue-detail .scheduled').scrollIntoView({block: 'nearest'})"
    )
    browser.save_screenshot(str(artifacts / "dashboard-scheduled.png"))

    click(browser, "#queue-detail .scheduled-message button.deliver-now")
    text_contains(browser, "#notice", "Delivered")
    text_is(browser, '#queue-table tr[data-name="later"] td.depth', "1")
    text_is(browser, '#queue-detail [data-fact="scheduled"] dd', "1")
    until(browser, lambda b: texts_of(b, "#queue-detail .scheduled-message .body") == ["later"])

    click(browser, "#queue-detail .scheduled-message button.cancel-scheduled")
    accept_confirm(browser)
    text_contains(browser, "#notice", "Cancelled")
    text_is(browser, "#queue-detail .scheduled-list li", "No message is scheduled.")
    text_is(browser, '#queue-table tr[data-name="later"] td.scheduled', "0")
    assert console_errors(browser) == []


async def test_the_owner_watches_delivers_now_and_cancels_scheduled_messages(
    browser: webdriver.Chrome, hasher: SecretHasher, artifacts: Path
) -> None:
    async with running_server(hasher) as server, api(server.http_port) as http:
        auth = await admin_auth(http)
        created = await http.post("/queues", json={"name": "later"}, headers=auth)
        assert created.status_code == 201
        sent = await http.post(
            "/queues/later/messages", json={"body": "later", "delay_ms": 600_000}, headers=auth
        )
        assert sent.status_code == 201, sent.text
        base = f"http://127.0.0.1:{server.http_port}"
        await asyncio.to_thread(scheduled_journey, browser, base, artifacts)
        (queue,) = server.broker.statistics().queues
        assert (queue.depth, queue.scheduled) == (1, 0)
        pulled = await http.post("/queues/later/pull", json={}, headers=auth)
        assert [m["body"] for m in pulled.json()["messages"]] == ["soon"]
