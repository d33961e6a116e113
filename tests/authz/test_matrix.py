"""Who may do what to a protected queue or channel, over HTTP and over STOMP.

Each matrix below is the rule, written once: a row per action, a column per principal, and
in each cell the exact outcome (None: allowed; else the ErrorCode of the refusal, which
fixes the HTTP status or the STOMP ERROR's ``message`` header). Every cell runs as its own
test against one broker shared by the module; each cell has its own users and its own
destination, protected by an access key and owned by a fresh user. A refused cell also
checks that nothing was created, published, delivered or deleted.

STOMP has no list, inspect or delete; creating there is the auto-create of a first SEND.
HTTP consumes by pulling, which channels do not offer.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio

from buzon.auth import SecretHasher
from buzon.errors import ErrorCode
from buzon.server.app import BuzonServer
from buzon.stomp import Command, Connected, Error, Frame, Message, serialize
from tests.conftest import CHEAP_ARGON2
from tests.http.helpers import (
    KEY,
    USER_PASSWORD,
    Auth,
    admin_auth,
    api,
    create,
    error_of,
    inspect,
    new_user,
    publish,
    stomp_send,
    stomp_subscribe,
    unique,
)
from tests.server.harness import ADMIN, PASSWORD, Client, raw_exchange, running_server
from tests.server.harness import error_of as error_frame

pytestmark = pytest.mark.asyncio(loop_scope="module")

WRONG_KEY = "not the key, sorry"
PREFIX = {"queues": "/queue/", "channels": "/topic/"}


class Who(enum.Enum):
    OWNER = "owner"
    RIGHT_KEY = "right-key"
    WRONG_KEY = "wrong-key"
    NO_KEY = "no-key"
    ADMIN = "admin"
    DISABLED = "disabled"
    ANONYMOUS = "anonymous"


class Do(enum.Enum):
    CREATE = "create"
    LIST = "list"
    INSPECT = "inspect"
    PUBLISH = "publish"
    CONSUME = "consume"
    DELETE = "delete"


OK = None
KEY_WRONG = ErrorCode.ACCESS_KEY_WRONG
KEY_REQUIRED = ErrorCode.ACCESS_KEY_REQUIRED
DENIED = ErrorCode.ACCESS_DENIED
NO_LOGIN = ErrorCode.NOT_AUTHENTICATED  # HTTP: no credentials, or a disabled user's token
DISABLED = ErrorCode.ACCOUNT_DISABLED  # STOMP: the right password of a disabled account
LOGIN_FAILED = ErrorCode.AUTH_FAILED  # STOMP: CONNECT without login and passcode
MISSING = ErrorCode.DESTINATION_NOT_FOUND  # STOMP: a key given for what does not exist

Outcome = ErrorCode | None

# fmt: off
HTTP: dict[Do, tuple[Outcome, ...]] = {
    #           owner  right-key  wrong-key  no-key        admin  disabled  anonymous
    Do.CREATE:  (OK,   OK,        OK,        OK,           OK,    NO_LOGIN, NO_LOGIN),
    Do.LIST:    (OK,   OK,        OK,        OK,           OK,    NO_LOGIN, NO_LOGIN),
    Do.INSPECT: (OK,   OK,        OK,        OK,           OK,    NO_LOGIN, NO_LOGIN),
    Do.PUBLISH: (OK,   OK,        KEY_WRONG, KEY_REQUIRED, OK,    NO_LOGIN, NO_LOGIN),
    Do.CONSUME: (OK,   OK,        KEY_WRONG, KEY_REQUIRED, OK,    NO_LOGIN, NO_LOGIN),
    Do.DELETE:  (OK,   DENIED,    DENIED,    DENIED,       OK,    NO_LOGIN, NO_LOGIN),
}
STOMP: dict[Do, tuple[Outcome, ...]] = {
    #           owner  right-key  wrong-key  no-key        admin  disabled  anonymous
    Do.CREATE:  (OK,   MISSING,   MISSING,   OK,           OK,    DISABLED, LOGIN_FAILED),
    Do.PUBLISH: (OK,   OK,        KEY_WRONG, KEY_REQUIRED, OK,    DISABLED, LOGIN_FAILED),
    Do.CONSUME: (OK,   OK,        KEY_WRONG, KEY_REQUIRED, OK,    DISABLED, LOGIN_FAILED),
}
# fmt: on


def cells(matrix: dict[Do, tuple[Outcome, ...]], kinds: dict[Do, list[str]]) -> list[Any]:
    return [
        pytest.param(action, who, kind, outcome, id=f"{action.value}-{who.value}-{kind}")
        for action, row in matrix.items()
        for who, outcome in zip(Who, row, strict=True)
        for kind in kinds.get(action, ["queues", "channels"])
    ]


# One broker for the module. Failed logins count against 127.0.0.1 (50 within 5 minutes)
# and against the empty user name (10): the anonymous and deleted-user cells stay well below.
@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server() -> AsyncIterator[BuzonServer]:
    async with running_server(SecretHasher(**CHEAP_ARGON2)) as server:
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def http(server: BuzonServer) -> AsyncIterator[httpx.AsyncClient]:
    async with api(server.http_port) as client:
        yield client


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def admin(http: httpx.AsyncClient) -> Auth:
    return await admin_auth(http)


@dataclass(frozen=True)
class Arena:
    """One cell's world: a protected destination, its owner, and who acts on it.

    Attributes:
        kind: ``queues`` or ``channels``.
        name: the destination, protected by KEY.
        owner_name: its owner.
        owner: the owner's HTTP credentials.
        actor: the acting user's name (None for nobody).
        password: the acting user's password.
        auth: the acting user's HTTP credentials (a disabled user's token stopped working).
        key: the access key the actor presents, if any.
    """

    kind: str
    name: str
    owner_name: str
    owner: Auth
    actor: str | None
    password: str | None
    auth: Auth
    key: str | None

    @property
    def address(self) -> str:
        return PREFIX[self.kind] + self.name

    @property
    def key_header(self) -> dict[str, str]:
        return {} if self.key is None else {"access_key": self.key}


async def arena(http: httpx.AsyncClient, admin: Auth, kind: str, who: Who) -> Arena:
    owner_name = unique("owner")
    owner = await new_user(http, owner_name)
    name = unique("dest")
    await create(http, owner, kind, name, key=KEY)
    user = unique(who.value)
    actor: str | None = user
    password: str | None = USER_PASSWORD
    key = {Who.RIGHT_KEY: KEY, Who.WRONG_KEY: WRONG_KEY}.get(who)
    if who is Who.OWNER:
        actor, auth = owner_name, owner
    elif who is Who.ADMIN:
        actor, password, auth = ADMIN, PASSWORD, admin
    elif who is Who.ANONYMOUS:
        actor, password, auth = None, None, {}
    else:
        auth = await new_user(http, user)
    if who is Who.DISABLED:
        disabled = await http.patch(f"/users/{user}", json={"disabled": True}, headers=admin)
        assert disabled.status_code == 200
    return Arena(kind, name, owner_name, owner, actor, password, auth, key)


async def numbers(http: httpx.AsyncClient, admin: Auth, a: Arena) -> tuple[int, ...]:
    """(published, delivered, depth, in flight) of the arena's destination."""
    view = await inspect(http, admin, a.kind, a.name)
    return view["published"], view["delivered"], view.get("depth", 0), view.get("in_flight", 0)


async def exists(http: httpx.AsyncClient, admin: Auth, kind: str, name: str) -> bool:
    response = await http.get(f"/{kind}/{name}", headers=admin)
    assert response.status_code in (200, 404), response.text
    return response.status_code == 200


# -- HTTP ---------------------------------------------------------------------------------


Happened = Callable[[httpx.AsyncClient, Auth, Arena, str, Any], Awaitable[None]]
"""Checks that an allowed action took effect, given its response body."""


def http_request(action: Do, a: Arena, fresh: str) -> tuple[str, str, dict[str, str] | None]:
    """The method, path and JSON body that do ``action`` in arena ``a``."""
    return {
        Do.CREATE: ("POST", f"/{a.kind}", {"name": fresh}),
        Do.LIST: ("GET", f"/{a.kind}", None),
        Do.INSPECT: ("GET", f"/{a.kind}/{a.name}", None),
        Do.PUBLISH: ("POST", f"/{a.kind}/{a.name}/messages", {"body": "cell"}),
        Do.CONSUME: ("POST", f"/queues/{a.name}/pull", {}),
        Do.DELETE: ("DELETE", f"/{a.kind}/{a.name}", None),
    }[action]


async def created(http: httpx.AsyncClient, admin: Auth, a: Arena, fresh: str, body: Any) -> None:
    assert (body["name"], body["owner"], body["protected"]) == (fresh, a.actor, False)


async def listed(http: httpx.AsyncClient, admin: Auth, a: Arena, fresh: str, body: Any) -> None:
    [shown] = [d for d in body if d["name"] == a.name]
    assert (shown["protected"], shown["owner"]) == (True, a.owner_name)


async def shown(http: httpx.AsyncClient, admin: Auth, a: Arena, fresh: str, body: Any) -> None:
    assert (body["address"], body["protected"], body["owner"]) == (a.address, True, a.owner_name)


async def published(http: httpx.AsyncClient, admin: Auth, a: Arena, fresh: str, body: Any) -> None:
    assert body["message_id"]
    assert (await numbers(http, admin, a))[0] == 1


async def pulled(http: httpx.AsyncClient, admin: Auth, a: Arena, fresh: str, body: Any) -> None:
    assert [m["body"] for m in body["messages"]] == ["waiting"]
    assert await numbers(http, admin, a) == (1, 1, 0, 1)


async def deleted(http: httpx.AsyncClient, admin: Auth, a: Arena, fresh: str, body: Any) -> None:
    assert not await exists(http, admin, a.kind, a.name)


# What each allowed action answers, and how to see that it happened.
ALLOWED: dict[Do, tuple[int, Happened]] = {
    Do.CREATE: (201, created),
    Do.LIST: (200, listed),
    Do.INSPECT: (200, shown),
    Do.PUBLISH: (201, published),
    Do.CONSUME: (200, pulled),
    Do.DELETE: (204, deleted),
}


@pytest.mark.parametrize(
    ("action", "who", "kind", "outcome"), cells(HTTP, {Do.CONSUME: ["queues"]})
)
async def test_http(
    http: httpx.AsyncClient, admin: Auth, action: Do, who: Who, kind: str, outcome: Outcome
) -> None:
    a = await arena(http, admin, kind, who)
    headers = a.auth if a.key is None else {**a.auth, "X-Access-Key": a.key}
    fresh = unique("fresh")
    waiting = 0
    if action is Do.CONSUME:
        await publish(http, a.owner, kind, a.name, "waiting")
        waiting = 1
    method, path, body = http_request(action, a, fresh)
    response = await http.request(method, path, json=body, headers=headers)
    if outcome is None:
        status, happened = ALLOWED[action]
        assert response.status_code == status, response.text
        await happened(http, admin, a, fresh, response.json() if response.content else None)
        return
    detail = error_of(response, outcome)
    if outcome in (KEY_WRONG, KEY_REQUIRED, DENIED):
        assert a.name in detail
    assert not await exists(http, admin, kind, fresh)
    assert await numbers(http, admin, a) == (waiting, 0, waiting, 0)


# -- STOMP --------------------------------------------------------------------------------


def frame(command: Command, *headers: tuple[str, str], body: bytes = b"") -> bytes:
    return serialize(Frame(command, headers, body))


def login_frame(a: Arena) -> bytes:
    credentials = () if a.actor is None else (("login", a.actor), ("passcode", a.password or ""))
    return frame(Command.CONNECT, ("accept-version", "1.2"), ("host", "/"), *credentials)


@pytest.mark.parametrize(("action", "who", "kind", "outcome"), cells(STOMP, {}))
async def test_stomp(
    server: BuzonServer,
    http: httpx.AsyncClient,
    admin: Auth,
    action: Do,
    who: Who,
    kind: str,
    outcome: Outcome,
) -> None:
    a = await arena(http, admin, kind, who)
    fresh = unique("fresh")
    waiting = 0
    if action is Do.CONSUME and kind == "queues":
        await publish(http, a.owner, kind, a.name, "waiting")
        waiting = 1

    if outcome in (DISABLED, LOGIN_FAILED):
        # the action's frame follows CONNECT at once, and must not run when the login fails
        command = {
            Do.CREATE: frame(Command.SEND, ("destination", PREFIX[kind] + fresh), body=b"cell"),
            Do.PUBLISH: frame(Command.SEND, ("destination", a.address), body=b"cell"),
            Do.CONSUME: frame(Command.SUBSCRIBE, ("destination", a.address), ("id", "1")),
        }[action]
        frames, closed = await raw_exchange(server.stomp_port, login_frame(a) + command)
        assert [f.command for f in frames] == [Command.ERROR]
        assert error_frame(frames).get("message") == outcome.message
        assert closed
        assert not await exists(http, admin, kind, fresh)
        assert await numbers(http, admin, a) == (waiting, 0, waiting, 0)
        return

    client = await Client.open(server.stomp_port, login=a.actor, passcode=a.password)
    await client.expect(Connected)
    if action is Do.CREATE:
        await client.send(stomp_send(PREFIX[kind] + fresh, b"cell", receipt="r", **a.key_header))
        if outcome is MISSING:
            # a key for a destination that does not exist: not created (it would be public)
            error = await client.expect(Error)
            assert (error.message, error.receipt_id) == (MISSING.message, "r")
            assert not await exists(http, admin, kind, fresh)
            return
        await client.receipt("r")
        view = await inspect(http, admin, kind, fresh)
        assert (view["owner"], view["protected"], view["published"]) == (a.actor, False, 1)
    elif action is Do.PUBLISH:
        watcher = await Client.connected(
            server.stomp_port, login=a.owner_name, passcode=USER_PASSWORD
        )
        await watcher.send(stomp_subscribe(a.address))
        await watcher.receipt("sub")
        await client.send(stomp_send(a.address, b"cell", receipt="r", **a.key_header))
        if outcome is None:
            await client.receipt("r")
            assert (await watcher.expect(Message)).body == b"cell"
        else:
            await refused(client, outcome, a, "r")
            assert await numbers(http, admin, a) == (0, 0, 0, 0)
        await watcher.close()
    else:
        await client.send(stomp_subscribe(a.address, **a.key_header))
        if outcome is None:
            await client.receipt("sub")
            if kind == "channels":
                await publish(http, a.owner, kind, a.name, "waiting")
            assert (await client.expect(Message)).body == b"waiting"
        else:
            await refused(client, outcome, a, "sub")
            if kind == "channels":
                await publish(http, a.owner, kind, a.name, "waiting")
            assert await numbers(http, admin, a) == (1, 0, waiting, 0)
    await client.close()


async def refused(client: Client, outcome: ErrorCode, a: Arena, receipt: str) -> None:
    """Assert the broker answered the last frame with ERROR ``outcome`` and hung up."""
    error = await client.expect(Error)
    assert error.message == outcome.message
    assert error.receipt_id == receipt
    assert a.name in error.body.decode()
    with pytest.raises(ConnectionError):
        await client.next_event()


# -- connections that lose their right to exist -------------------------------------------


@pytest.mark.parametrize("how", ["disable", "delete"])
async def test_blocking_a_user_ends_their_stomp_connections(
    server: BuzonServer, http: httpx.AsyncClient, admin: Auth, how: str
) -> None:
    name = unique("doomed")
    await new_user(http, name)
    queue = unique("work")
    doomed = [
        await Client.connected(server.stomp_port, login=name, passcode=USER_PASSWORD)
        for _ in range(2)
    ]
    await doomed[0].send(stomp_subscribe(f"/queue/{queue}", ack="client-individual"))
    await doomed[0].receipt("sub")
    await publish(http, admin, "queues", queue, "unfinished")
    assert (await doomed[0].expect(Message)).body == b"unfinished"
    bystander = await Client.connected(server.stomp_port)

    if how == "disable":
        response = await http.patch(f"/users/{name}", json={"disabled": True}, headers=admin)
    else:
        response = await http.delete(f"/users/{name}", headers=admin)
    assert response.is_success

    for client in doomed:
        error = await client.expect(Error)
        assert error.message == ErrorCode.ACCOUNT_DISABLED.message
        assert error.body == b"the account was disabled or deleted"
        with pytest.raises(ConnectionError):
            await client.next_event()
    await bystander.send(stomp_subscribe(f"/queue/{queue}"))
    await bystander.receipt("sub")
    again = await bystander.expect(Message)
    assert (again.body, again.redelivered) == (b"unfinished", True)
    refused = ErrorCode.ACCOUNT_DISABLED if how == "disable" else ErrorCode.AUTH_FAILED
    login = frame(
        Command.CONNECT,
        ("accept-version", "1.2"),
        ("host", "/"),
        ("login", name),
        ("passcode", USER_PASSWORD),
    )
    frames, closed = await raw_exchange(server.stomp_port, login)
    assert error_frame(frames).get("message") == refused.message
    assert closed
    await bystander.close()


@pytest.mark.parametrize("kind", ["queues", "channels"])
async def test_deleting_a_destination_ends_its_subscribers_only(
    server: BuzonServer, http: httpx.AsyncClient, admin: Auth, kind: str
) -> None:
    owner = unique("owner")
    owner_auth = await new_user(http, owner)
    doomed_name, other_name = unique("doomed"), unique("other")
    await create(http, owner_auth, kind, doomed_name)
    await create(http, owner_auth, kind, other_name)
    doomed_address, other_address = PREFIX[kind] + doomed_name, PREFIX[kind] + other_name
    subscribers = []
    for login, passcode in ((owner, USER_PASSWORD), (ADMIN, PASSWORD)):
        client = await Client.connected(server.stomp_port, login=login, passcode=passcode)
        await client.send(stomp_subscribe(doomed_address))
        await client.receipt("sub")
        subscribers.append(client)
    elsewhere = await Client.connected(server.stomp_port)
    await elsewhere.send(stomp_subscribe(other_address))
    await elsewhere.receipt("sub")
    publisher = await Client.connected(server.stomp_port, login=owner, passcode=USER_PASSWORD)

    assert (await http.delete(f"/{kind}/{doomed_name}", headers=owner_auth)).status_code == 204

    for client in subscribers:
        error = await client.expect(Error)
        assert error.message == ErrorCode.DESTINATION_DELETED.message
        assert error.body == f"{doomed_address} was deleted".encode()
        with pytest.raises(ConnectionError):
            await client.next_event()
    await publisher.send(stomp_send(other_address, b"after", receipt="after"))
    await publisher.receipt("after")
    assert (await elsewhere.expect(Message)).body == b"after"
    await publisher.close()
    await elsewhere.close()
