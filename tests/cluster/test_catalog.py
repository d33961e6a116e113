"""What every node shares through PostgreSQL: users, tokens, destinations, access keys."""

from __future__ import annotations

import asyncio

import httpx

from buzon.client import ApiError, AsyncClient, Subscription
from tests.cluster.nodes import TIMEOUT, Cluster, api, login, within
from tests.interop.broker_process import BrokerProcess

PASSWORD = "correct horse battery"
OLD_KEY = "old key 1234"
NEW_KEY = "new key 5678"


async def register(http: httpx.AsyncClient, name: str) -> None:
    response = await http.post("/users", json={"username": name, "password": PASSWORD})
    assert response.status_code == 201, response.text


async def carol_keeps_a_vault_for_dave(
    home: BrokerProcess, elsewhere: BrokerProcess
) -> tuple[str, str, str]:
    """Carol and dave register on ``home``, where carol makes the protected queue ``vault``;
    dave logs in twice on ``elsewhere``. Returns carol's token and dave's two."""
    async with api(home) as http:
        await register(http, "carol")
        await register(http, "dave")
        carol = await login(http, "carol", PASSWORD)
    async with api(home, carol) as http:
        created = await http.post("/queues", json={"name": "vault", "access_key": OLD_KEY})
        assert created.status_code == 201, created.text
    async with api(elsewhere) as http:
        return carol, await login(http, "dave", PASSWORD), await login(http, "dave", PASSWORD)


async def test_users_tokens_and_queues_made_on_one_node_hold_on_the_others(
    cluster: Cluster,
) -> None:
    n1, n2, n3 = cluster.start("n1", "n2", "n3")
    async with api(n1) as http:
        await register(http, "carol")
    async with api(n3) as http:
        token = await login(http, "carol", PASSWORD)

    async with api(n2, token) as on_n2:
        created = await on_n2.post("/queues", json={"name": "shared"})
        assert created.status_code == 201, created.text
    async with api(n1, token) as on_n1:

        async def visible() -> bool:
            return (await on_n1.get("/queues/shared")).status_code == 200

        took = await within(1.0, visible, "a queue created on n2 is visible on n1")
    print(f"queue created on n2 visible on n1 after {took:.3f} s")

    async with api(n1) as http:
        revoked = await login(http, "carol", PASSWORD)
    async with api(n2, revoked) as on_n2, api(n1, revoked) as on_n1:
        assert (await on_n2.get("/users/me")).status_code == 200
        assert (await on_n1.delete("/sessions/current")).status_code == 204

        async def refused() -> bool:
            return (await on_n2.get("/users/me")).status_code == 401

        took = await within(1.0, refused, "a token revoked on n1 is refused on n2")
    print(f"token revoked on n1 refused on n2 after {took:.3f} s")


async def test_an_access_key_changed_on_one_node_is_enforced_on_the_others(
    cluster: Cluster,
) -> None:
    """Dave uses carol's queue with its key on n2 (STOMP) and n3 (HTTP); carol changes the
    key on n1: within a second the old key, and what it granted, no longer work anywhere."""
    n1, n2, n3 = cluster.start("n1", "n2", "n3")
    carol, dave, dave_later = await carol_keeps_a_vault_for_dave(n1, n3)

    async def publish(token: str, key: str | None) -> int:
        headers = {} if key is None else {"X-Access-Key": key}
        async with api(n3, token) as on_n3:
            response = await on_n3.post(
                "/queues/vault/messages", json={"body": "hi"}, headers=headers
            )
        return response.status_code

    async def accepted() -> bool:
        return await publish(dave, OLD_KEY) == 201

    await within(TIMEOUT, accepted, "dave publishes with the key on n3")
    async with AsyncClient(
        f"stomp://127.0.0.1:{n2.port}", login="dave", passcode=PASSWORD, reconnect=False
    ) as stomp:
        subscription = await stomp.subscribe("/queue/vault", access_key=OLD_KEY)
        async with api(n1, carol) as http:
            changed = await http.patch("/queues/vault", json={"access_key": NEW_KEY})
            assert changed.status_code == 200, changed.text

        async def old_key_refused() -> bool:
            return await publish(dave_later, OLD_KEY) == 403

        took = await within(1.0, old_key_refused, "the old key is refused on n3")
        print(f"key changed on n1, old key refused on n3 after {took:.3f} s")
        assert await ended(subscription) == "PERMISSIONS_CHANGED"
    assert await publish(dave_later, NEW_KEY) == 201


async def test_a_key_changed_on_one_node_ends_what_the_old_key_granted_on_another(
    cluster: Cluster,
) -> None:
    """(Two nodes.) Dave's token presented the key on n2, which remembers it; carol changes
    the key on n1: that token no longer publishes on n2 with the old key, nor without one."""
    n1, n2 = cluster.start("n1", "n2")
    carol, dave, fresh = await carol_keeps_a_vault_for_dave(n1, n2)
    async with api(n2, dave) as as_dave, api(n2, fresh) as as_fresh:

        async def publish(http: httpx.AsyncClient, key: str | None) -> int:
            headers = {} if key is None else {"X-Access-Key": key}
            response = await http.post(
                "/queues/vault/messages", json={"body": "hi"}, headers=headers
            )
            return response.status_code

        async def accepted() -> bool:
            return await publish(as_dave, OLD_KEY) == 201

        await within(TIMEOUT, accepted, "dave publishes with the key on n2")
        async with api(n1, carol) as http:
            changed = await http.patch("/queues/vault", json={"access_key": NEW_KEY})
            assert changed.status_code == 200, changed.text

        async def old_key_refused() -> bool:
            return await publish(as_fresh, OLD_KEY) == 403

        await within(1.0, old_key_refused, "the old key is refused on n2")
        assert await publish(as_dave, OLD_KEY) == 403
        assert await publish(as_dave, None) == 403


async def ended(subscription: Subscription) -> str:
    """Read until the broker ends ``subscription`` (within a second); its error's code."""
    try:
        async with asyncio.timeout(1.0):
            while True:
                await subscription.get()
    except ApiError as exc:
        return exc.code_name
