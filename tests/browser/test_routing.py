"""The dashboard shows a channel's type and bound queues, and creates typed channels."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.select import Select

from buzon.auth import SecretHasher
from tests.browser.test_dashboard import console_errors, go_to, log_in
from tests.browser.waits import click, fill, text_contains, text_is
from tests.server.harness import ADMIN, PASSWORD, running_server


def routing_journey(browser: webdriver.Chrome, base: str, artifacts: Path) -> None:
    log_in(browser, base)
    go_to(browser, "channels")
    fill(browser, "#channel-name", "logs")
    Select(browser.find_element(By.ID, "channel-type")).select_by_value("topic")
    click(browser, "#channel-create button[type=submit]")
    text_is(browser, '#channel-table tr[data-name="logs"] td.type', "topic")
    text_is(browser, '#channel-table tr[data-name="orders"] td.type', "direct")
    click(browser, '#channel-table tr[data-name="orders"] button')
    text_is(browser, '#channel-detail [data-fact="type"] dd', "direct")
    text_is(browser, '#channel-detail [data-fact="bindings"] dd', "1")
    text_contains(browser, "#channel-detail .bindings li", 'billing, key "paid"')
    fill(browser, "#channel-detail .publish-body", "order 7 is paid")
    fill(browser, "#channel-detail .publish-key", "paid")
    click(browser, "#channel-detail .publish button[type=submit]")
    text_contains(browser, "#notice", 'to orders with key "paid"')
    fill(browser, "#channel-detail .bind-queue", "audit")
    fill(browser, "#channel-detail .bind-key", "refund")
    click(browser, "#channel-detail .bind button[type=submit]")
    text_contains(browser, "#notice", "Bound queue audit")
    text_is(browser, '#channel-detail [data-fact="bindings"] dd', "2")
    browser.save_screenshot(str(artifacts / "channel-bindings.png"))
    click(browser, "#channel-detail .bindings li:first-child button.unbind")  # audit's
    text_contains(browser, "#notice", "Unbound queue audit")
    text_is(browser, '#channel-detail [data-fact="bindings"] dd', "1")
    assert console_errors(browser) == []


async def test_a_channels_type_and_bound_queues_show_in_its_panel(
    browser: webdriver.Chrome, hasher: SecretHasher, artifacts: Path
) -> None:
    async with running_server(hasher) as server:
        base = f"http://127.0.0.1:{server.http_port}"
        async with httpx.AsyncClient(base_url=base + "/api/v1") as http:
            login = await http.post("/sessions", json={"username": ADMIN, "password": PASSWORD})
            auth = {"Authorization": f"Bearer {login.json()['token']}"}
            for path, body in (
                ("/channels", {"name": "orders", "type": "direct"}),
                ("/queues", {"name": "billing"}),
                ("/queues", {"name": "audit"}),
                ("/channels/orders/bindings", {"queue": "billing", "routing_key": "paid"}),
            ):
                response = await http.post(path, json=body, headers=auth)
                assert response.status_code == 201, response.text
            await asyncio.to_thread(routing_journey, browser, base, artifacts)
            made = await http.get("/channels/logs", headers=auth)
            assert made.json()["type"] == "topic"
            listed = await http.get("/channels/orders/bindings", headers=auth)
            assert [b["queue"] for b in listed.json()] == ["billing"]
            routed = await http.post("/queues/billing/pull", json={"max": 5}, headers=auth)
            assert [m["body"] for m in routed.json()["messages"]] == ["order 7 is paid"]
