"""Redrive over HTTP: a dead-letter queue's messages moved back, paced, checked, cancelled.

Each test dead-letters real messages the way a failing consumer does (``dead_letters``).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from buzon.auth import SecretHasher
from buzon.errors import ErrorCode
from buzon.server.app import BuzonServer
from buzon.server.redrive import MAX_RUNNING
from buzon.store.sqlite import SQLiteStore
from tests.http.dead_letters import dead_letter, depth, failing_queue, until
from tests.http.helpers import (
    KEY,
    Auth,
    admin_auth,
    api,
    create,
    error_of,
    inspect,
    new_user,
    publish,
    pull,
    unique,
)
from tests.http.scrape import scrape, value
from tests.server.harness import TIMEOUT, running_server


async def start(
    http: httpx.AsyncClient, auth: Auth, dlq: str, key: str | None = None, **body: Any
) -> str:
    headers = dict(auth) if key is None else {**auth, "X-Access-Key": key}
    response = await http.post(f"/queues/{dlq}/redrive", json=body, headers=headers)
    assert response.status_code == 202, response.text
    redrive_id: str = response.json()["id"]
    return redrive_id


async def status_of(http: httpx.AsyncClient, auth: Auth, redrive_id: str) -> dict[str, Any]:
    response = await http.get(f"/redrives/{redrive_id}", headers=auth)
    assert response.status_code == 200, response.text
    status: dict[str, Any] = response.json()
    return status


async def finished(http: httpx.AsyncClient, auth: Auth, redrive_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + TIMEOUT
    while (status := await status_of(http, auth, redrive_id))["state"] == "running":
        assert time.monotonic() < deadline, status
        await asyncio.sleep(0.01)
    return status


async def dead_letters_of_a_new_user(
    http: httpx.AsyncClient, bodies: list[str]
) -> tuple[Auth, str, str]:
    """A new user, their queue failing into its dead-letter queue, ``bodies`` failed there;
    returns the user's credentials and both queue names."""
    auth = await new_user(http, unique("alice"))
    orders, dlq = unique("orders"), unique("dlq")
    await failing_queue(http, auth, orders, dlq)
    await dead_letter(http, auth, orders, dlq, bodies)
    return auth, orders, dlq


async def start_moving(http: httpx.AsyncClient, auth: Auth, dlq: str) -> str:
    """Start a slow redrive of ``dlq`` and return its id once it has moved two messages."""
    redrive_id = await start(http, auth, dlq, rate_per_s=10)
    await until(lambda: _moved(http, auth, redrive_id), 2)
    return redrive_id


async def _moved(http: httpx.AsyncClient, auth: Auth, redrive_id: str) -> int:
    moved: int = (await status_of(http, auth, redrive_id))["moved"]
    return min(moved, 2)


async def test_messages_go_back_to_their_original_queue(
    http: httpx.AsyncClient, admin: Auth
) -> None:
    alice, orders, dlq = await dead_letters_of_a_new_user(http, ["a", "b", "c"])
    # published with an idempotency key: the copy must not be taken for a duplicate
    keyed = unique("keyed")
    await failing_queue(http, alice, keyed, dlq)
    await dead_letter(http, alice, keyed, dlq, ["k"], {"idempotency-key": "order-42"})

    redrive_id = await start(http, alice, dlq, to=None)
    status = await finished(http, alice, redrive_id)

    assert (status["state"], status["moved"], status["total"]) == ("done", 4, 4)
    assert (status["queue"], status["to"], status["error"]) == (dlq, None, None)
    assert await depth(http, alice, dlq) == 0
    back = await pull(http, alice, orders, max=10)
    assert [m["body"] for m in back] == ["a", "b", "c"]  # in their order
    for message in back:
        headers = message["headers"]
        assert headers["x-redrive-count"] == "1"
        assert headers["x-dead-letter-reason"] == "max-deliveries"
        assert headers["x-original-destination"] == f"/queue/{orders}"
        assert headers["job"] == message["body"]  # the publisher's own headers stay
        assert message["redelivered"] is False  # a new message: its deliveries start at 0
    [again] = await pull(http, alice, keyed)
    assert again["body"] == "k"
    assert again["headers"]["x-original-idempotency-key"] == "order-42"
    assert "idempotency-key" not in again["headers"]


async def test_an_explicit_target_and_a_limit_move_the_oldest(
    http: httpx.AsyncClient, admin: Auth
) -> None:
    alice, orders, dlq = await dead_letters_of_a_new_user(http, [f"m{i}" for i in range(5)])
    retry = unique("retry")
    await create(http, alice, "queues", retry)

    status = await finished(http, alice, await start(http, alice, dlq, to=retry, limit=2))

    assert (status["state"], status["moved"], status["total"], status["to"]) == (
        "done",
        2,
        2,
        retry,
    )
    assert [m["body"] for m in await pull(http, alice, retry, max=10)] == ["m0", "m1"]
    assert await depth(http, alice, dlq) == 3
    assert await pull(http, alice, orders, max=10) == []


async def test_a_rate_spaces_the_moves_evenly_from_the_start(
    http: httpx.AsyncClient, admin: Auth
) -> None:
    alice, _orders, dlq = await dead_letters_of_a_new_user(http, [f"m{i}" for i in range(10)])

    sent = time.monotonic()
    redrive_id = await start(http, alice, dlq, rate_per_s=20)
    samples = []
    while (status := await status_of(http, alice, redrive_id))["state"] == "running":
        # message k moves no earlier than k/20 s after the start, which is after `sent`
        samples.append((time.monotonic() - sent, status["moved"]))
        await asyncio.sleep(0.02)
    elapsed = time.monotonic() - sent

    assert (status["state"], status["moved"]) == ("done", 10)
    assert elapsed >= 0.45  # the tenth message waits 9/20 s
    for seconds, moved in samples:
        assert moved <= int(seconds * 20) + 1, samples  # never ahead of the pace
    assert any(0 < moved < 10 for _, moved in samples), samples  # progress shows


async def test_a_second_redrive_counts_up(http: httpx.AsyncClient, admin: Auth) -> None:
    alice, orders, dlq = await dead_letters_of_a_new_user(http, ["again"])
    await finished(http, alice, await start(http, alice, dlq))
    # it fails again: one delivery, given back, dead-lettered on the next pull
    [message] = await pull(http, alice, orders)
    await http.post(
        f"/queues/{orders}/nack", json={"receipts": [message["receipt"]]}, headers=alice
    )
    assert await pull(http, alice, orders) == []
    await until(lambda: depth(http, alice, dlq), 1)

    await finished(http, alice, await start(http, alice, dlq))

    [message] = await pull(http, alice, orders)
    assert message["headers"]["x-redrive-count"] == "2"


async def test_only_the_owner_or_an_admin_may_redrive(http: httpx.AsyncClient, admin: Auth) -> None:
    alice, _, dlq = await dead_letters_of_a_new_user(http, ["x"])
    mallory = await new_user(http, unique("mallory"))

    refused = await http.post(f"/queues/{dlq}/redrive", json={}, headers=mallory)
    assert "owner" in error_of(refused, ErrorCode.ACCESS_DENIED)
    assert await depth(http, alice, dlq) == 1

    status = await finished(http, admin, await start(http, admin, dlq))
    assert (status["state"], status["moved"]) == ("done", 1)
    # only who started it, or an admin, sees it; to anyone else it does not exist
    other = await http.get(f"/redrives/{status['id']}", headers=alice)
    error_of(other, ErrorCode.NOT_FOUND)


async def test_a_protected_target_needs_its_key(http: httpx.AsyncClient, admin: Auth) -> None:
    alice, _, dlq = await dead_letters_of_a_new_user(http, ["p", "q"])
    bob = await new_user(http, unique("bob"))
    vault = unique("vault")
    await create(http, bob, "queues", vault, key=KEY)

    refused = await http.post(f"/queues/{dlq}/redrive", json={"to": vault}, headers=alice)
    assert vault in error_of(refused, ErrorCode.ACCESS_KEY_REQUIRED)
    wrong = await http.post(
        f"/queues/{dlq}/redrive", json={"to": vault}, headers={**alice, "X-Access-Key": "nope nope"}
    )
    error_of(wrong, ErrorCode.ACCESS_KEY_WRONG)
    assert await depth(http, alice, dlq) == 2  # nothing moved
    assert (await inspect(http, bob, "queues", vault))["depth"] == 0

    status = await finished(http, alice, await start(http, alice, dlq, key=KEY, to=vault))

    assert (status["state"], status["moved"]) == ("done", 2)
    assert [m["body"] for m in await pull(http, bob, vault, max=10)] == ["p", "q"]


async def test_a_cancel_stops_it_and_loses_nothing(http: httpx.AsyncClient, admin: Auth) -> None:
    alice, orders, dlq = await dead_letters_of_a_new_user(http, [f"m{i}" for i in range(20)])
    redrive_id = await start_moving(http, alice, dlq)

    response = await http.delete(f"/redrives/{redrive_id}", headers=alice)

    assert response.status_code == 200, response.text
    status = response.json()
    assert status["state"] == "failed"
    assert status["cancelled_by"] is not None
    assert "cancelled" in status["error"]
    assert 2 <= status["moved"] < 20
    await asyncio.sleep(0.3)  # it really stopped
    assert (await status_of(http, alice, redrive_id))["moved"] == status["moved"]
    assert await depth(http, alice, dlq) == 20 - status["moved"]
    assert await depth(http, alice, orders) == status["moved"]


async def test_a_redrive_stops_when_its_starter_is_disabled(
    http: httpx.AsyncClient, admin: Auth
) -> None:
    alice, orders, dlq = await dead_letters_of_a_new_user(http, [f"m{i}" for i in range(20)])
    redrive_id = await start_moving(http, alice, dlq)
    name = (await http.get("/users/me", headers=alice)).json()["username"]

    disabled = await http.patch(f"/users/{name}", json={"disabled": True}, headers=admin)
    assert disabled.status_code == 200, disabled.text
    status = await finished(http, admin, redrive_id)

    assert status["state"] == "failed"
    assert "disabled" in status["error"]
    await asyncio.sleep(0.3)  # it really stopped, and lost nothing
    assert (await status_of(http, admin, redrive_id))["moved"] == status["moved"]
    assert await depth(http, admin, dlq) + await depth(http, admin, orders) == 20


async def test_a_late_dead_letter_of_a_higher_priority_does_not_end_the_run(
    http: httpx.AsyncClient, admin: Auth
) -> None:
    alice = await new_user(http, unique("alice"))
    orders, dlq = unique("orders"), unique("dlq")
    await failing_queue(http, alice, orders, dlq)
    await dead_letter(http, alice, orders, dlq, [f"m{i}" for i in range(10)], {"priority": "0"})
    redrive_id = await start(http, alice, dlq, rate_per_s=20)
    await until(lambda: _moved(http, alice, redrive_id), 2)
    await publish(http, alice, "queues", dlq, "urgent", {"priority": "9"})  # after the start

    status = await finished(http, alice, redrive_id)

    assert (status["state"], status["moved"], status["total"]) == ("done", 10, 10)
    assert [m["body"] for m in await pull(http, alice, dlq, max=10)] == ["urgent"]


async def test_deleting_the_queue_during_a_redrive_fails_it(
    http: httpx.AsyncClient, admin: Auth
) -> None:
    alice, _orders, dlq = await dead_letters_of_a_new_user(http, [f"m{i}" for i in range(10)])
    redrive_id = await start_moving(http, alice, dlq)

    deleted = await http.delete(f"/queues/{dlq}", headers=alice)
    assert deleted.status_code == 204
    status = await finished(http, alice, redrive_id)

    assert status["state"] == "failed"
    assert "deleted" in status["error"]
    assert dlq in status["error"]


async def test_a_missing_original_queue_fails_the_request(
    http: httpx.AsyncClient, admin: Auth
) -> None:
    alice, orders, dlq = await dead_letters_of_a_new_user(http, ["orphan"])
    assert (await http.delete(f"/queues/{orders}", headers=alice)).status_code == 204

    response = await http.post(f"/queues/{dlq}/redrive", json={}, headers=alice)

    assert orders in error_of(response, ErrorCode.DESTINATION_NOT_FOUND)
    assert await depth(http, alice, dlq) == 1


async def test_redrives_running_at_once_are_bounded(http: httpx.AsyncClient, admin: Auth) -> None:
    # enough that the running ones (each moving one a second) cannot empty the queue while
    # the others start, even on a slow machine
    alice, _, dlq = await dead_letters_of_a_new_user(
        http, [f"m{i}" for i in range(MAX_RUNNING * 5)]
    )
    ids = [await start(http, alice, dlq, rate_per_s=1) for _ in range(MAX_RUNNING)]

    refused = await http.post(f"/queues/{dlq}/redrive", json={"rate_per_s": 1}, headers=alice)

    assert str(MAX_RUNNING) in error_of(refused, ErrorCode.LIMIT_EXCEEDED)
    stopped = await http.delete(f"/redrives/{ids[0]}", headers=alice)
    assert stopped.json()["state"] == "failed"
    await start(http, alice, dlq, rate_per_s=1)  # room again


async def test_unknown_redrives_and_queues_are_404(http: httpx.AsyncClient, admin: Auth) -> None:
    error_of(await http.get("/redrives/no-such-redrive", headers=admin), ErrorCode.NOT_FOUND)
    error_of(await http.delete("/redrives/no-such-redrive", headers=admin), ErrorCode.NOT_FOUND)
    missing = await http.post(f"/queues/{unique('nothing')}/redrive", json={}, headers=admin)
    error_of(missing, ErrorCode.DESTINATION_NOT_FOUND)


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        ("rate_per_s", 0),
        ("rate_per_s", -5),
        ("rate_per_s", 1.5),
        ("rate_per_s", "10"),
        ("limit", 0),
        ("limit", -1),
        ("limit", 2.5),
        ("to", ""),
        ("to", "/queue/jobs"),
        ("to", "two words"),
    ],
)
async def test_bad_values_are_400_naming_the_field(
    http: httpx.AsyncClient, admin: Auth, field: str, bad: object
) -> None:
    dlq = unique("dlq")
    await create(http, admin, "queues", dlq)
    response = await http.post(f"/queues/{dlq}/redrive", json={field: bad}, headers=admin)
    assert error_of(response, ErrorCode.BAD_REQUEST).startswith(f"{field}:")


async def test_redriven_messages_are_counted_per_queue(
    server: BuzonServer, http: httpx.AsyncClient, admin: Auth
) -> None:
    orders, dlq = unique("orders"), unique("dlq")
    await failing_queue(http, admin, orders, dlq)
    await dead_letter(http, admin, orders, dlq, ["one", "two"])
    await finished(http, admin, await start(http, admin, dlq))

    samples = await scrape(server.http_port, admin)

    assert value(samples, "buzon_messages_redriven_total", kind="queue", name=dlq) == 2
    assert value(samples, "buzon_messages_redriven_total", kind="queue", name=orders) == 0


async def test_a_paged_dead_letter_queue_is_redriven_whole(
    hasher: SecretHasher, tmp_path: Path
) -> None:
    """On SQLite with a window of 5 messages in memory, most of the 60 are on disk."""
    store = SQLiteStore(tmp_path)
    async with (
        running_server(hasher, store=store, backlog_window=5) as server,
        api(server.http_port) as http,
    ):
        admin = await admin_auth(http)
        await failing_queue(http, admin, "orders", "orders.dlq")
        bodies = [f"m{i}" for i in range(60)]
        await dead_letter(http, admin, "orders", "orders.dlq", bodies)

        status = await finished(http, admin, await start(http, admin, "orders.dlq"))

        assert (status["state"], status["moved"], status["total"]) == ("done", 60, 60)
        got: list[str] = []
        while len(got) < 60:
            taken = await pull(http, admin, "orders", max=100, wait_ms=1000)
            got += [m["body"] for m in taken]
        assert got == bodies
        assert await depth(http, admin, "orders.dlq") == 0
