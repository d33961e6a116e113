"""Ownership seen from STOMP: creation on first use, access keys, and what never leaks."""

from __future__ import annotations

import httpx
import pytest

from buzon.auth import Action, Principal, SecretHasher
from buzon.errors import AccessDenied, ErrorCode
from buzon.server.access_gate import admit, needs_key
from buzon.stomp import Error, Message, Send, Subscribe
from buzon.store import DestinationKind, Role
from tests.server.harness import ADMIN, PASSWORD, Client, running_server
from tests.server.test_messaging import send, subscribe


async def register(http: httpx.AsyncClient, name: str, password: str) -> None:
    response = await http.post("/api/v1/users", json={"username": name, "password": password})
    assert response.status_code == 201, response.text


async def test_without_auto_create_stomp_gets_an_error_naming_the_destination(
    hasher: SecretHasher,
) -> None:
    async with running_server(hasher, auto_create=False) as server:
        for frame in (subscribe("/queue/missing", receipt="r"), send("/queue/missing", b"x", "r")):
            client = await Client.connected(server.stomp_port)
            await client.send(frame)
            error = await client.expect(Error)
            assert error.message == "destination not found"
            assert b"/queue/missing" in error.body
            assert error.receipt_id == "r"
        assert server.broker.statistics().queues == ()


async def test_first_use_creates_a_queue_owned_by_that_user_without_a_key(
    hasher: SecretHasher,
) -> None:
    async with running_server(hasher) as server:
        base = f"http://127.0.0.1:{server.http_port}"
        async with httpx.AsyncClient(base_url=base) as http:
            await register(http, "alice", "alice-password")
            alice = await Client.connected(
                server.stomp_port, login="alice", passcode="alice-password"
            )
            await alice.send(send("/queue/made-by-alice", b"hello", receipt="r"))
            await alice.receipt("r")
            listed = await http.get("/api/v1/queues/made-by-alice", auth=(ADMIN, PASSWORD))
        assert listed.status_code == 200
        info = listed.json()
        assert (info["owner"], info["protected"], info["depth"]) == ("alice", False, 1)


async def test_a_token_from_the_http_login_is_a_stomp_passcode(hasher: SecretHasher) -> None:
    async with running_server(hasher) as server:
        base = f"http://127.0.0.1:{server.http_port}"
        async with httpx.AsyncClient(base_url=base) as http:
            await register(http, "alice", "alice-password")
            session = await http.post(
                "/api/v1/sessions", json={"username": "alice", "password": "alice-password"}
            )
            token = session.json()["token"]
            alice = await Client.connected(server.stomp_port, login="alice", passcode=token)
            await alice.send(send("/queue/by-token", b"hello", receipt="r"))
            await alice.receipt("r")
            # a token stands for its own user only, and not after logout
            other = await Client.open(server.stomp_port, login=ADMIN, passcode=token)
            assert (await other.expect(Error)).message == "authentication failed"
            bearer = {"Authorization": f"Bearer {token}"}
            assert (await http.delete("/api/v1/sessions/current", headers=bearer)).is_success
            late = await Client.open(server.stomp_port, login="alice", passcode=token)
            assert (await late.expect(Error)).message == "authentication failed"
        listed = server.broker.statistics().queues
        assert [(q.name, q.depth) for q in listed] == [("by-token", 1)]


async def test_the_access_key_never_reaches_consumers(hasher: SecretHasher) -> None:
    async with running_server(hasher) as server:
        base = f"http://127.0.0.1:{server.http_port}"
        async with httpx.AsyncClient(base_url=base, auth=(ADMIN, PASSWORD)) as http:
            created = await http.post(
                "/api/v1/queues", json={"name": "vault", "access_key": "open-sesame"}
            )
            assert created.status_code == 201
            await register(http, "bob", "bob-password")
        consumer = await Client.connected(server.stomp_port)
        await consumer.send(subscribe("/queue/vault", receipt="sub"))
        await consumer.receipt("sub")
        bob = await Client.connected(server.stomp_port, login="bob", passcode="bob-password")
        await bob.send(
            Send(
                destination="/queue/vault",
                headers=(("destination", "/queue/vault"), ("access-key", "open-sesame")),
                body=b"for the owner",
                receipt="r",
            )
        )
        await bob.receipt("r")
        message = await consumer.expect(Message)
        assert message.body == b"for the owner"
        assert "open-sesame" not in repr(message.headers)
        # once granted, this connection needs no key for that queue
        await bob.send(send("/queue/vault", b"again", receipt="r2"))
        await bob.receipt("r2")
        assert (await consumer.expect(Message)).body == b"again"
        # a new connection must present it again
        fresh = await Client.connected(server.stomp_port, login="bob", passcode="bob-password")
        await fresh.send(
            Subscribe("/queue/vault", "s", headers=(("destination", "/queue/vault"), ("id", "s")))
        )
        refused = await fresh.expect(Error)
        assert refused.message == "access key required"


async def test_an_access_key_for_a_missing_destination_does_not_create_it(
    hasher: SecretHasher,
) -> None:
    async with running_server(hasher) as server:
        client = await Client.connected(server.stomp_port)
        await client.send(
            Send(
                destination="/queue/typo",
                headers=(("destination", "/queue/typo"), ("access-key", "some-key-1")),
                body=b"x",
                receipt="r",
            )
        )
        error = await client.expect(Error)
        assert error.message == "destination not found"
        assert b"access key" in error.body
        assert server.broker.statistics().queues == ()


async def test_a_key_that_changed_while_it_was_checked_grants_nothing(
    hasher: SecretHasher,
) -> None:
    """A key check takes an argon2 hash's time; a new key set meanwhile must not be
    overtaken by a grant for the old one (the change already ended the old key's users)."""
    async with running_server(hasher) as server:
        resources = server.context.resources
        owner = Principal("id-owner", "owner", Role.USER)
        guest = Principal("id-guest", "guest", Role.USER)
        await resources.create(owner, DestinationKind.QUEUE, "vault", "old-key-123")
        checked = resources.target(DestinationKind.QUEUE, "vault").record  # as a check saw it
        await resources.update(owner, DestinationKind.QUEUE, "vault", access_key="new-key-456")
        with pytest.raises(AccessDenied) as refused:
            await resources.check_key(guest, checked, "old-key-123", "127.0.0.1")
        assert refused.value.code is ErrorCode.ACCESS_KEY_WRONG
        assert "changed" in refused.value.detail
        live = resources.target(DestinationKind.QUEUE, "vault").record
        await resources.check_key(guest, live, "new-key-456", "127.0.0.1")  # the new one works


async def test_the_access_gate_checks_a_key_once_per_holder_and_remembers_the_grant(
    hasher: SecretHasher,
) -> None:
    """One gate for every front end: a holder needs the key until it passed the gate once;
    a wrong key grants nothing; the owner never needs one."""
    async with running_server(hasher) as server:
        resources = server.context.resources
        owner = Principal("id-owner", "owner", Role.USER)
        guest = Principal("id-guest", "guest", Role.USER)
        await resources.create(owner, DestinationKind.QUEUE, "vault", "right-key-1")
        record = resources.target(DestinationKind.QUEUE, "vault").record
        session = server.broker.open_session(NullSink(), guest)
        assert not needs_key(owner, Action.PUBLISH, record, session)
        assert needs_key(guest, Action.CONSUME, record, session)
        with pytest.raises(AccessDenied) as wrong:
            await admit(resources, guest, record, "wrong-key-1", "127.0.0.1", session)
        assert wrong.value.code is ErrorCode.ACCESS_KEY_WRONG
        assert needs_key(guest, Action.PUBLISH, record, session)
        await admit(resources, guest, record, "right-key-1", "127.0.0.1", session)
        assert not needs_key(guest, Action.PUBLISH, record, session)
        session.publish("/queue/vault", (), b"let in")  # the engine sees the grant
        session.close()


class NullSink:
    """A sink for a session that receives nothing."""

    def deliver(
        self, subscription_id: str, message: object, ack_id: str | None, redelivered: bool
    ) -> None:
        raise AssertionError("no subscription")

    def close_session(self, code: ErrorCode, detail: str) -> None:
        raise AssertionError(detail)
