"""Rights that shrink, against a real ``buzon serve``: dead-letter queues that need the
right to publish there, and open connections that lose what a demotion, a new access key
or a logout took away.

Every user, queue and connection is the test's own; one broker serves the module.
"""

from __future__ import annotations

import itertools
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect
from websockets.typing import Subprotocol

from buzon.client import ApiError, ManagementClient
from buzon.errors import ErrorCode
from buzon.server.app import REVALIDATE_PERIOD
from buzon.stomp import NEED_DATA, Frame, FrameParser
from buzon.store import QueuePolicy
from tests.cli.helpers import Cli
from tests.interop.broker_process import BrokerProcess, broker_process

ADMIN_PASSWORD = "rights-admin-pw"
PASSWORD = "rights password 1"
KEY = "alice's queue key"
NEW_KEY = "alice's next key"
TIMEOUT = 20.0

_names = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_names)}"


@pytest.fixture(scope="module")
def broker() -> Iterator[BrokerProcess]:
    with broker_process(env={"BUZON_ADMIN_PASSWORD": ADMIN_PASSWORD}) as process:
        yield process
        assert process.stop() == 0


def http(broker: BrokerProcess, token: str | None = None) -> httpx.Client:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return httpx.Client(base_url=f"{broker.url}/api/v1", timeout=TIMEOUT, headers=headers)


def token_of(broker: BrokerProcess, name: str, password: str = PASSWORD) -> str:
    with http(broker) as client:
        made = client.post("/sessions", json={"username": name, "password": password})
        assert made.status_code == 201, made.text
        token: str = made.json()["token"]
        return token


def new_user(broker: BrokerProcess, prefix: str, role: str = "user") -> tuple[str, str]:
    """Register a user (an admin creates admins); return their name and a token."""
    name = unique(prefix)
    with http(broker, token_of(broker, "admin", ADMIN_PASSWORD)) as admin:
        made = admin.post("/users", json={"username": name, "password": PASSWORD, "role": role})
        assert made.status_code == 201, made.text
    return name, token_of(broker, name)


def protected_queue(broker: BrokerProcess, token: str, key: str = KEY) -> str:
    name = unique("vault")
    with http(broker, token) as client:
        made = client.post("/queues", json={"name": name, "access_key": key})
        assert made.status_code == 201, made.text
    return name


def error_code(response: httpx.Response) -> str:
    code: str = response.json()["error"]["code"]
    return code


def eventually(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not check():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.05)


class Stomp:
    """One STOMP connection, over TCP or WebSocket, read frame by frame; it closes with
    ``stack``."""

    def __init__(
        self, broker: BrokerProcess, stack: ExitStack, login: str, passcode: str, *, ws: bool
    ) -> None:
        self._ws: ClientConnection | None = None
        self._sock: socket.socket | None = None
        if ws:
            self._ws = stack.enter_context(
                ws_connect(
                    f"ws://{broker.host}:{broker.http_port}/ws",
                    subprotocols=[Subprotocol("v12.stomp")],
                    open_timeout=TIMEOUT,
                )
            )
        else:
            self._sock = stack.enter_context(
                socket.create_connection((broker.host, broker.port), timeout=TIMEOUT)
            )
        self._parser = FrameParser()
        self.send("CONNECT", accept_version="1.2", host="/", login=login, passcode=passcode)
        assert self.next().command.value == "CONNECTED"

    def send(self, command: str, body: str = "", **headers: str) -> None:
        lines = [command, *(f"{name.replace('_', '-')}:{v}" for name, v in headers.items())]
        data = ("\n".join(lines) + "\n\n" + body + "\0").encode()
        if self._ws is not None:
            self._ws.send(data.decode())
        else:
            assert self._sock is not None
            self._sock.sendall(data)

    def next(self) -> Frame:
        """The next frame the broker sends (heart-beats skipped)."""
        while True:
            item = self._parser.next_frame()
            if isinstance(item, Frame):
                return item
            if item is NEED_DATA:
                self._parser.feed(self._read())

    def _read(self) -> bytes:
        if self._ws is not None:
            data = self._ws.recv(timeout=TIMEOUT)
            return data.encode() if isinstance(data, str) else data
        assert self._sock is not None
        data = self._sock.recv(65536)
        assert data, "the broker closed the connection"
        return data

    def closed_by_broker(self) -> bool:
        """Whether the broker closes the connection now (nothing more arrives)."""
        if self._ws is not None:
            with pytest.raises(ConnectionClosed):
                self._ws.recv(timeout=TIMEOUT)
            return True
        assert self._sock is not None
        return self._sock.recv(65536) == b""

    def request(self, command: str, **headers: str) -> Frame:
        """Send a frame with a receipt; return its RECEIPT or the ERROR."""
        self.send(command, receipt="r", **headers)
        while (answer := self.next()).command.value not in ("RECEIPT", "ERROR"):
            pass
        return answer


@pytest.fixture
def connections() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


def stomp(
    broker: BrokerProcess,
    stack: ExitStack,
    login: str,
    passcode: str = PASSWORD,
    ws: bool = False,
) -> Stomp:
    return Stomp(broker, stack, login, passcode, ws=ws)


def told_permissions_changed(connection: Stomp) -> str:
    """The detail of the ERROR that closes ``connection`` (after what it received before)."""
    while (error := connection.next()).command.value == "MESSAGE":
        pass
    assert error.command.value == "ERROR"
    assert error.get("code") == ErrorCode.PERMISSIONS_CHANGED.name
    assert error.get("message") == "permissions changed, log in again"
    assert connection.closed_by_broker()
    return error.body.decode()


# -- dead-letter queues ----------------------------------------------------------------------


def dead_letter_policy(target: str) -> dict[str, Any]:
    return {"dead_letter_queue": target, "message_ttl_ms": 1}


def test_naming_someone_elses_protected_queue_as_dead_letter_queue_needs_its_key(
    broker: BrokerProcess, tmp_path: Path
) -> None:
    _, alice = new_user(broker, "alice")
    bob_name, bob = new_user(broker, "bob")
    vault = protected_queue(broker, alice)
    with http(broker, bob) as client:
        refused = client.post("/queues", json={"name": "qb", "policy": dead_letter_policy(vault)})
        assert refused.status_code == 403
        assert error_code(refused) == "ACCESS_KEY_REQUIRED"
        assert f"/queue/{vault}" in refused.json()["error"]["detail"]
        wrong = client.post(
            "/queues",
            json={
                "name": "qb",
                "policy": dead_letter_policy(vault),
                "dead_letter_access_key": "not the key at all",
            },
        )
        assert wrong.status_code == 403
        assert error_code(wrong) == "ACCESS_KEY_WRONG"
        assert client.get("/queues/qb").status_code == 404  # nothing was created

    with ManagementClient(broker.url, token=bob) as sdk, pytest.raises(ApiError) as no_key:
        sdk.create_queue("qb", policy=QueuePolicy(message_ttl_ms=1, dead_letter_queue=vault))
    assert no_key.value.code is ErrorCode.ACCESS_KEY_REQUIRED

    cli = Cli(broker.url, tmp_path)
    cli.login(bob_name, PASSWORD)
    create = ("queue", "create", "qb", "--ttl", "1", "--dead-letter-queue", vault)
    assert f"/queue/{vault}" in cli.fails(*create)
    cli.ok(*create, "--dead-letter-key-stdin", stdin=KEY + "\n")

    with http(broker, bob) as client:
        assert client.post("/queues/qb/messages", json={"body": "late"}).status_code == 201
    with http(broker, alice) as client:
        eventually(lambda: client.get(f"/queues/{vault}").json()["depth"] == 1, "dead-lettered")
        [message] = client.get(f"/queues/{vault}/messages").json()["messages"]
        assert message["headers"]["x-dead-letter-reason"] == "expired"


def dead_letter_refused(broker: BrokerProcess, queue: str) -> float:
    with http(broker, token_of(broker, "admin", ADMIN_PASSWORD)) as admin:
        text = admin.get(f"{broker.url}/metrics").text
    prefix = f'buzon_messages_dead_letter_refused_total{{kind="queue",name="{queue}"}} '
    values = [
        float(line.removeprefix(prefix)) for line in text.splitlines() if line.startswith(prefix)
    ]
    return values[0] if values else 0.0


def test_after_its_key_changes_dead_letters_are_dropped_and_counted_until_it_is_given_again(
    broker: BrokerProcess,
) -> None:
    _, alice = new_user(broker, "alice")
    _, bob = new_user(broker, "bob")
    vault = protected_queue(broker, alice)
    source = unique("source")
    with http(broker, bob) as client:
        made = client.post(
            "/queues",
            json={
                "name": source,
                "policy": dead_letter_policy(vault),
                "dead_letter_access_key": KEY,
            },
        )
        assert made.status_code == 201, made.text
    with http(broker, alice) as client:
        rotated = client.patch(f"/queues/{vault}", json={"access_key": NEW_KEY})
        assert rotated.status_code == 200, rotated.text
        assert rotated.json()["protected"] is True
    with http(broker, bob) as client:
        assert client.post(f"/queues/{source}/messages", json={"body": "x"}).status_code == 201
    eventually(lambda: dead_letter_refused(broker, source) == 1, "a refused dead letter counted")
    with http(broker, alice) as client:
        assert client.get(f"/queues/{vault}").json()["depth"] == 0  # never delivered

    with http(broker, bob) as client:
        old = client.patch(f"/queues/{source}", json={"dead_letter_access_key": KEY})
        assert (old.status_code, error_code(old)) == (403, "ACCESS_KEY_WRONG")
        again = client.patch(f"/queues/{source}", json={"dead_letter_access_key": NEW_KEY})
        assert again.status_code == 200, again.text
        assert client.post(f"/queues/{source}/messages", json={"body": "y"}).status_code == 201
    with http(broker, alice) as client:
        eventually(lambda: client.get(f"/queues/{vault}").json()["depth"] == 1, "dead-lettered")
        stranger = client.patch(f"/queues/{source}", json={"access_key": "mine now, ha"})
        assert (stranger.status_code, error_code(stranger)) == (403, "ACCESS_DENIED")


# -- open connections ------------------------------------------------------------------------


def test_a_demoted_admins_open_connections_are_closed_and_their_leases_given_back(
    broker: BrokerProcess, connections: ExitStack
) -> None:
    _, alice = new_user(broker, "alice")
    boss_name, boss = new_user(broker, "boss", role="admin")
    vault = protected_queue(broker, alice)
    with http(broker, alice) as client:
        assert client.post(f"/queues/{vault}/messages", json={"body": "secret"}).status_code == 201
    with http(broker, boss) as client:  # an HTTP pull, leased by the admin
        pulled = client.post(f"/queues/{vault}/pull", json={"max": 1, "lease_ms": 600_000})
    assert [m["body"] for m in pulled.json()["messages"]] == ["secret"], pulled.text
    tcp = stomp(broker, connections, boss_name)
    ws = stomp(broker, connections, boss_name, ws=True)
    for connection, sub in ((tcp, "t"), (ws, "w")):
        subscribed = connection.request("SUBSCRIBE", id=sub, destination=f"/queue/{vault}")
        assert subscribed.command.value == "RECEIPT"

    with http(broker, token_of(broker, "admin", ADMIN_PASSWORD)) as admin:
        demoted = admin.patch(f"/users/{boss_name}", json={"role": "user"})
        assert demoted.status_code == 200, demoted.text

    for connection in (tcp, ws):
        assert "no longer an admin" in told_permissions_changed(connection)
    again = stomp(broker, connections, boss_name)
    refused = again.request("SUBSCRIBE", id="s", destination=f"/queue/{vault}")
    assert (refused.command.value, refused.get("code")) == ("ERROR", "ACCESS_KEY_REQUIRED")
    with http(broker, alice) as client:  # the lease was given back at once
        back = client.post(f"/queues/{vault}/pull", json={"max": 1})
        assert [m["body"] for m in back.json()["messages"]] == ["secret"], back.text


def test_a_new_access_key_drops_the_grant_of_open_connections_and_http_tokens(
    broker: BrokerProcess, connections: ExitStack
) -> None:
    _, alice = new_user(broker, "alice")
    carol_name, carol = new_user(broker, "carol")
    vault = protected_queue(broker, alice)
    publisher = stomp(broker, connections, carol_name)
    sent = publisher.request("SEND", destination=f"/queue/{vault}", access_key=KEY)
    assert sent.command.value == "RECEIPT"
    reader = stomp(broker, connections, carol_name, ws=True)
    read = reader.request("SUBSCRIBE", id="s", destination=f"/queue/{vault}", access_key=KEY)
    assert read.command.value == "RECEIPT"
    with http(broker, carol) as client:  # a token remembers the key it presented once
        url = f"/queues/{vault}/messages"
        assert (
            client.post(url, json={"body": "1"}, headers={"X-Access-Key": KEY}).status_code == 201
        )
        assert client.post(url, json={"body": "2"}).status_code == 201

    with http(broker, alice) as client:
        assert client.patch(f"/queues/{vault}", json={"access_key": NEW_KEY}).status_code == 200

    for connection in (publisher, reader):
        assert f"/queue/{vault}" in told_permissions_changed(connection)
    with http(broker, carol) as client:
        forgotten = client.post(f"/queues/{vault}/messages", json={"body": "3"})
        assert (forgotten.status_code, error_code(forgotten)) == (403, "ACCESS_KEY_REQUIRED")
    again = stomp(broker, connections, carol_name)
    old_key = again.request("SEND", destination=f"/queue/{vault}", access_key=KEY)
    assert (old_key.command.value, old_key.get("code")) == ("ERROR", "ACCESS_KEY_WRONG")


def test_logging_out_closes_the_connections_that_logged_in_with_that_token(
    broker: BrokerProcess, connections: ExitStack
) -> None:
    dave_name, dave = new_user(broker, "dave")
    other_token = token_of(broker, dave_name)
    with_token = stomp(broker, connections, dave_name, dave, ws=True)
    with_other = stomp(broker, connections, dave_name, other_token)
    with http(broker, dave) as client:
        assert client.delete("/sessions/current").status_code == 204
    assert "revoked" in told_permissions_changed(with_token)
    assert (
        with_other.request("SUBSCRIBE", id="s", destination="/queue/a").command.value == "RECEIPT"
    )


def test_a_password_set_offline_closes_the_connections_of_the_old_login(
    tmp_path: Path, connections: ExitStack
) -> None:
    data = tmp_path / "data"
    env = {"BUZON_ADMIN_PASSWORD": ADMIN_PASSWORD}
    with broker_process("--data-dir", str(data), env=env) as broker:
        erin_name, erin = new_user(broker, "erin")
        by_password = stomp(broker, connections, erin_name)
        by_token = stomp(broker, connections, erin_name, erin, ws=True)
        changed = subprocess.run(
            [sys.executable, "-m", "buzon", "user", "set-password", erin_name, "--data-dir", data],
            input="a brand new password\n",
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert changed.returncode == 0, changed.stderr
        for connection in (by_password, by_token):
            assert "password changed" in told_permissions_changed(connection)
        after = stomp(broker, connections, erin_name, "a brand new password")
        time.sleep(REVALIDATE_PERIOD + 1)  # a later check leaves the new login alone
        subscribed = after.request("SUBSCRIBE", id="s", destination="/queue/a")
        assert subscribed.command.value == "RECEIPT"
        assert broker.stop() == 0
