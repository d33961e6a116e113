"""The web dashboard in headless Chromium, against a real broker.

Each test serves a fresh broker on the test's event loop and drives the browser from a
worker thread (Selenium blocks), the way a person would: log in through the form, create,
publish, watch numbers change, peek, close a connection, manage users, on a laptop screen
and a phone. Screenshots go to the artifacts directory for a person to look at.

After each journey the browser's console must be clean: no script error and no
Content-Security-Policy violation (Chromium logs those as errors).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from selenium import webdriver
from selenium.webdriver.common.by import By

from buzon.auth import SecretHasher
from buzon.errors import ErrorCode
from buzon.stomp import Error, Message, Send, Subscribe
from tests.browser.waits import (
    accept_confirm,
    click,
    displayed,
    fill,
    gone,
    text_contains,
    text_is,
    until,
    visible,
)
from tests.http.dead_letters import dead_letter, failing_queue
from tests.http.helpers import USER_PASSWORD, admin_auth, pull
from tests.server.harness import ADMIN, PASSWORD, Client, running_server

# Markup a publisher might send: shown as these characters, it can neither run nor format.
HOSTILE_BODY = '<script>window.pwned = 1</script><b>bold?</b><img src=x onerror="window.pwned = 2">'
HOSTILE_HEADER = "<i>italic?</i>"


def log_in(
    browser: webdriver.Chrome, base: str, user: str = ADMIN, password: str = PASSWORD
) -> None:
    browser.get(base + "/")
    fill(browser, "#login-user", user)
    fill(browser, "#login-password", password)
    click(browser, "#login-form button[type=submit]")
    # the name shows in the nav, which is folded away on a phone: read it, seen or not
    until(browser, lambda b: b.find_element(By.ID, "who").get_attribute("textContent") == user)
    assert password not in browser.current_url


def go_to(browser: webdriver.Chrome, view: str) -> None:
    if not displayed(browser, "#nav"):  # phone width: open the menu
        click(browser, "#menu-toggle")
    click(browser, f'#nav a[data-view="{view}"]')
    visible(browser, f"#view-{view}")


def console_errors(browser: webdriver.Chrome) -> list[str]:
    """Script errors and policy violations logged since the last call."""
    entries = browser.get_log("browser")  # type: ignore[no-untyped-call]  # untyped in selenium
    return [entry["message"] for entry in entries if entry["level"] == "SEVERE"]


def fits_the_width(browser: webdriver.Chrome) -> bool:
    return bool(
        browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    )


def queue_journey(browser: webdriver.Chrome, base: str, artifacts: Path) -> None:
    log_in(browser, base)
    text_is(browser, '[data-stat="queues"] dd', "0")
    go_to(browser, "queues")
    fill(browser, "#queue-name", "jobs")
    click(browser, "#queue-create button[type=submit]")
    text_is(browser, '#queue-table tr[data-name="jobs"] td.depth', "0")
    text_is(browser, "#queue-detail .detail-name", "jobs")

    fill(browser, "#queue-detail .publish-body", HOSTILE_BODY)
    fill(browser, "#queue-detail .publish-headers", f"x-note: {HOSTILE_HEADER}")
    click(browser, "#queue-detail .publish button")
    text_is(browser, '#queue-table tr[data-name="jobs"] td.depth', "1")
    text_is(browser, '#queue-detail [data-fact="depth"] dd', "1")

    click(browser, "#queue-detail .peek button")
    text_is(browser, "#queue-detail .message .body", HOSTILE_BODY)
    text_is(browser, "#queue-detail .message-headers dd", HOSTILE_HEADER)
    assert (
        browser.find_elements(By.CSS_SELECTOR, "#queue-detail .message b, .message i, .message img")
        == []
    )
    assert browser.execute_script("return window.pwned") is None
    # peeking consumed nothing
    text_is(browser, '#queue-table tr[data-name="jobs"] td.depth', "1")
    browser.execute_script(
        "document.querySelector('#queue-detail .message .body').scrollIntoView({block: 'nearest'})"
    )
    browser.save_screenshot(str(artifacts / "dashboard-queues.png"))

    go_to(browser, "overview")
    text_is(browser, '[data-stat="queues"] dd', "1")
    # an admin sees the cluster's nodes: this broker alone, on its in-memory store
    text_is(browser, "#node-table tr[data-name] td.status", "alive")
    visible(browser, "#rate-chart")
    browser.save_screenshot(str(artifacts / "dashboard-overview.png"))
    assert fits_the_width(browser)
    assert console_errors(browser) == []


async def test_log_in_create_a_queue_publish_and_watch_its_depth(
    browser: webdriver.Chrome, hasher: SecretHasher, artifacts: Path
) -> None:
    async with running_server(hasher) as server:
        base = f"http://127.0.0.1:{server.http_port}"
        await asyncio.to_thread(queue_journey, browser, base, artifacts)
        [waiting] = server.broker.statistics().queues
        assert (waiting.name, waiting.depth) == ("jobs", 1)


def admin_journey(browser: webdriver.Chrome, base: str, artifacts: Path) -> None:
    log_in(browser, base)
    go_to(browser, "connections")
    row = "#connection-table tbody tr[data-id]"
    text_is(browser, f"{row} td:nth-child(2)", "alice")
    click(browser, f"{row} button.close")
    accept_confirm(browser)
    text_is(browser, "#connection-table td.empty", "No open connections.")

    go_to(browser, "users")
    text_is(browser, '#user-table tr[data-name="alice"] td:nth-child(3)', "active")
    text_is(browser, f'#user-table tr[data-name="{ADMIN}"] td:nth-child(3)', "active")
    click(browser, '#user-table tr[data-name="alice"] button.toggle')
    accept_confirm(browser)
    text_is(browser, '#user-table tr[data-name="alice"] td:nth-child(3)', "disabled")
    browser.save_screenshot(str(artifacts / "dashboard-users.png"))
    assert console_errors(browser) == []


async def test_an_admin_closes_a_connection_and_disables_a_user(
    browser: webdriver.Chrome, hasher: SecretHasher, artifacts: Path
) -> None:
    async with running_server(hasher) as server:
        base = f"http://127.0.0.1:{server.http_port}"
        async with httpx.AsyncClient(base_url=base + "/api/v1") as http:
            registered = await http.post(
                "/users", json={"username": "alice", "password": USER_PASSWORD}
            )
            assert registered.status_code == 201
        alice = await Client.connected(server.stomp_port, login="alice", passcode=USER_PASSWORD)
        await asyncio.to_thread(admin_journey, browser, base, artifacts)
        error = await alice.expect(Error)
        assert error.message == ErrorCode.CONNECTION_CLOSED_BY_ADMIN.message
        late = await Client.open(server.stomp_port, login="alice", passcode=USER_PASSWORD)
        assert (await late.expect(Error)).message in (
            ErrorCode.ACCOUNT_DISABLED.message,
            ErrorCode.AUTH_FAILED.message,
        )


def phone_journey(browser: webdriver.Chrome, base: str, artifacts: Path) -> str:
    browser.set_window_size(390, 844)
    log_in(browser, base)
    text_is(browser, '[data-stat="queues"] dd', "1")
    assert not displayed(browser, "#nav")  # folded into the menu
    assert fits_the_width(browser)
    go_to(browser, "queues")
    click(browser, '#queue-table tr[data-name="a-queue-with-a-long-name-for-a-phone"] button')
    visible(browser, "#queue-detail .publish-body")
    assert fits_the_width(browser)  # the table scrolls inside its card, the page does not
    browser.save_screenshot(str(artifacts / "dashboard-phone.png"))

    token: str = browser.execute_script("return sessionStorage.getItem('buzon.token')")
    go_to(browser, "overview")
    assert console_errors(browser) == []
    if not displayed(browser, "#logout"):
        click(browser, "#menu-toggle")
    click(browser, "#logout")
    visible(browser, "#login-form")
    assert browser.execute_script("return sessionStorage.getItem('buzon.token')") is None
    # A refresh already on its way when logging out revoked the token is answered 401, and
    # Chromium logs that response as an error: expected then, and nothing else is.
    unauthorized = "the server responded with a status of 401"
    assert [error for error in console_errors(browser) if unauthorized not in error] == []
    return token


async def test_on_a_phone_and_logging_out_revokes_the_token(
    browser: webdriver.Chrome, hasher: SecretHasher, artifacts: Path
) -> None:
    async with running_server(hasher) as server:
        base = f"http://127.0.0.1:{server.http_port}"
        async with httpx.AsyncClient(base_url=base + "/api/v1") as http:
            login = await http.post("/sessions", json={"username": ADMIN, "password": PASSWORD})
            auth = {"Authorization": f"Bearer {login.json()['token']}"}
            created = await http.post(
                "/queues", json={"name": "a-queue-with-a-long-name-for-a-phone"}, headers=auth
            )
            assert created.status_code == 201
            token = await asyncio.to_thread(phone_journey, browser, base, artifacts)
            after = await http.get("/users/me", headers={"Authorization": f"Bearer {token}"})
            assert after.status_code == 401


def purge_and_delete_journey(browser: webdriver.Chrome, base: str) -> None:
    log_in(browser, base)
    go_to(browser, "queues")
    click(browser, '#queue-table tr[data-name="backlog"] button')
    text_is(browser, '#queue-detail [data-fact="depth"] dd', "3")
    click(browser, "#queue-detail button.purge")
    accept_confirm(browser)
    text_is(browser, '#queue-table tr[data-name="backlog"] td.depth', "0")
    click(browser, "#queue-detail button.delete")
    accept_confirm(browser)
    gone(browser, '#queue-table tr[data-name="backlog"]')

    go_to(browser, "channels")
    # the subscriber's SUBSCRIBE created it; it shows with that subscriber
    text_is(browser, '#channel-table tr[data-name="news"] td.subscribers', "1")
    click(browser, '#channel-table tr[data-name="news"] button')
    text_is(browser, "#channel-detail .detail-name", "news")
    fill(browser, "#channel-detail .publish-body", "extra, extra")
    click(browser, "#channel-detail .publish button")
    text_contains(browser, "#notice", "Published")
    click(browser, "#channel-detail button.delete")
    accept_confirm(browser)
    gone(browser, '#channel-table tr[data-name="news"]')
    assert console_errors(browser) == []


async def test_purge_and_delete_a_queue_and_use_a_channel(
    browser: webdriver.Chrome, hasher: SecretHasher
) -> None:
    async with running_server(hasher) as server:
        base = f"http://127.0.0.1:{server.http_port}"
        subscriber = await Client.connected(server.stomp_port)
        await subscriber.send(Subscribe("/topic/news", "s1", receipt="sub"))
        await subscriber.receipt("sub")
        publisher = await Client.connected(server.stomp_port)
        for n in range(3):
            await publisher.send(Send("/queue/backlog", (), b"job %d" % n, f"r{n}"))
            await publisher.receipt(f"r{n}")
        await asyncio.to_thread(purge_and_delete_journey, browser, base)
        message = await subscriber.expect(Message)
        assert message.body == b"extra, extra"  # published from the page
        stats = server.broker.statistics()
        assert [q.name for q in stats.queues] == []
        assert [c.name for c in stats.channels] == []


def names_the_forms_accept(browser: webdriver.Chrome, base: str) -> dict[str, bool]:
    log_in(browser, base)
    go_to(browser, "queues")
    verdicts = {}
    for name in ("..", ".", "v1..v2", ".hidden"):
        verdicts[name] = all(
            browser.execute_script(
                "const field = document.querySelector(arguments[0]);"
                "field.value = arguments[1]; return field.checkValidity();",
                selector,
                name,
            )
            for selector in ("#queue-name", "#queue-dlq", "#channel-name")
        )
    return verdicts


async def test_the_forms_refuse_names_made_only_of_dots(
    browser: webdriver.Chrome, hasher: SecretHasher
) -> None:
    async with running_server(hasher) as server:
        base = f"http://127.0.0.1:{server.http_port}"
        verdicts = await asyncio.to_thread(names_the_forms_accept, browser, base)
        assert verdicts == {"..": False, ".": False, "v1..v2": True, ".hidden": True}


def redrive_journey(browser: webdriver.Chrome, base: str, artifacts: Path) -> None:
    log_in(browser, base)
    go_to(browser, "queues")
    click(browser, '#queue-table tr[data-name="orders"] button')
    text_is(browser, "#queue-detail .detail-name", "orders")
    assert browser.find_elements(By.CSS_SELECTOR, "#queue-detail button.redrive") == []

    click(browser, '#queue-table tr[data-name="orders.dlq"] button')
    text_is(browser, '#queue-detail [data-fact="depth"] dd', "3")
    click(browser, "#queue-detail button.redrive")
    accept_confirm(browser)
    text_contains(browser, "#notice", "Moved 3 messages from orders.dlq back")
    text_is(browser, "#queue-detail .redrive-status", "3 of 3 moved")
    text_is(browser, '#queue-table tr[data-name="orders.dlq"] td.depth', "0")
    text_is(browser, '#queue-table tr[data-name="orders"] td.depth', "3")
    browser.save_screenshot(str(artifacts / "dashboard-redrive.png"))
    assert console_errors(browser) == []


async def test_a_dead_letter_queue_is_redriven_from_its_panel(
    browser: webdriver.Chrome, hasher: SecretHasher, artifacts: Path
) -> None:
    async with running_server(hasher) as server:
        base = f"http://127.0.0.1:{server.http_port}"
        async with httpx.AsyncClient(base_url=base + "/api/v1", timeout=10) as http:
            auth = await admin_auth(http)
            await failing_queue(http, auth, "orders", "orders.dlq")
            await dead_letter(http, auth, "orders", "orders.dlq", ["a", "b", "c"])
            await asyncio.to_thread(redrive_journey, browser, base, artifacts)
            back = await pull(http, auth, "orders", max=10)
        assert [m["headers"]["x-redrive-count"] for m in back] == ["1", "1", "1"]
