"""The login and access-key limits of a real ``buzon serve``, from two client addresses.

On Linux every 127.x.y.z is loopback, so a client bound to 127.0.0.2 reaches the broker on
127.0.0.1 as a second source address: the attacker's, beside the victim's 127.0.0.1.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from websockets.sync.client import connect as ws_connect
from websockets.typing import Subprotocol

from buzon.stomp import Frame
from tests.interop.broker_process import BrokerProcess, broker_process
from tests.server.harness import frames_in

ADMIN_PASSWORD = "limits-admin-pw"
PASSWORD = "victim password 1"
KEY = "vault key 0001"
VICTIM, ATTACKER = "127.0.0.1", "127.0.0.2"
TIMEOUT = 20.0
# every failed login is a real argon2id run (~0.1 s, seconds on a loaded 2-core machine)
pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def broker() -> Iterator[BrokerProcess]:
    with broker_process(env={"BUZON_ADMIN_PASSWORD": ADMIN_PASSWORD}) as process:
        assert process.host == "127.0.0.1"
        yield process
        assert process.stop() == 0


def frame(command: str, body: str = "", **headers: str) -> bytes:
    lines = [command, *(f"{name.replace('_', '-')}:{v}" for name, v in headers.items())]
    return ("\n".join(lines) + "\n\n" + body + "\0").encode()


def connect_frame(login: str, passcode: str) -> bytes:
    return frame("CONNECT", accept_version="1.2", host="/", login=login, passcode=passcode)


def over_tcp(broker: BrokerProcess, source: str, *frames: bytes) -> Frame:
    """Send ``frames`` from ``source`` and return the broker's last answer (its ERROR, or the
    frame answering the last one sent)."""
    with socket.create_connection(
        (broker.host, broker.port), timeout=TIMEOUT, source_address=(source, 0)
    ) as sock:
        assert sock.getsockname()[0] == source
        received, answers = b"", list[Frame]()
        for data in frames:
            sock.sendall(data)
            while not answers or answers[-1].command.value not in ("ERROR", *expected(data)):
                chunk = sock.recv(65536)
                assert chunk, f"closed without an answer: {answers!r}"
                received += chunk
                answers = frames_in(received)
            if answers[-1].command.value == "ERROR":
                break
        return answers[-1]


def expected(sent: bytes) -> tuple[str, ...]:
    return ("CONNECTED",) if sent.startswith(b"CONNECT") else ("RECEIPT",)


def over_websocket(broker: BrokerProcess, source: str, login: str, passcode: str) -> Frame:
    sock = socket.create_connection(
        (broker.host, broker.http_port), timeout=TIMEOUT, source_address=(source, 0)
    )
    with ws_connect(
        f"ws://{broker.host}:{broker.http_port}/ws",
        sock=sock,
        subprotocols=[Subprotocol("v12.stomp")],
        open_timeout=TIMEOUT,
    ) as ws:
        ws.send(connect_frame(login, passcode).decode())
        reply = ws.recv(timeout=TIMEOUT)
    [answer] = frames_in(reply.encode() if isinstance(reply, str) else reply)
    return answer


def http(broker: BrokerProcess, source: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"{broker.url}/api/v1",
        timeout=TIMEOUT,
        transport=httpx.HTTPTransport(local_address=source),
    )


def register(broker: BrokerProcess, source: str, name: str) -> None:
    with http(broker, source) as client:
        made = client.post("/users", json={"username": name, "password": PASSWORD})
        assert made.status_code == 201, made.text


def token_of(broker: BrokerProcess, source: str, name: str, password: str = PASSWORD) -> str:
    with http(broker, source) as client:
        session = client.post("/sessions", json={"username": name, "password": password})
        assert session.status_code == 201, session.text
        token: str = session.json()["token"]
        return token


def is_connected(answer: Frame) -> bool:
    return answer.command.value == "CONNECTED"


def refused(answer: Frame, code: str) -> bool:
    return answer.command.value == "ERROR" and answer.get("code") == code


def until_slowed(guess: Callable[[], Frame], wrong: str, at_least: int = 4) -> Frame:
    """Repeat a wrong guess until the broker asks to wait ``at_least`` seconds; shorter
    waits on the way are waited out, so the failures climb the ladder."""
    for _ in range(30):
        answer = guess()
        if refused(answer, wrong):
            continue
        assert refused(answer, "TOO_MANY_ATTEMPTS"), answer
        wait = int(answer.body.decode().removeprefix("retry in ").removesuffix(" s"))
        if wait >= at_least:
            return answer
        time.sleep(wait)
    raise AssertionError(f"never asked to wait {at_least} s")


def test_an_attackers_failures_block_neither_the_victims_password_elsewhere_nor_her_token(
    broker: BrokerProcess,
) -> None:
    register(broker, VICTIM, "victim")
    until_slowed(
        lambda: over_tcp(broker, ATTACKER, connect_frame("victim", "guess")), "AUTH_FAILED"
    )
    # the attack took: from the attacker's address even the right password waits
    assert refused(
        over_tcp(broker, ATTACKER, connect_frame("victim", PASSWORD)), "TOO_MANY_ATTEMPTS"
    )
    # her token is looked up before any limit, even from the attacker's address
    token = token_of(broker, VICTIM, "victim")
    assert is_connected(over_tcp(broker, ATTACKER, connect_frame("victim", token)))
    assert is_connected(over_websocket(broker, ATTACKER, "victim", token))
    # and her password from her own address works on every surface
    assert is_connected(over_tcp(broker, VICTIM, connect_frame("victim", PASSWORD)))
    assert is_connected(over_websocket(broker, VICTIM, "victim", PASSWORD))
    token_of(broker, VICTIM, "victim")


def test_fifty_failures_for_made_up_names_do_not_lock_out_the_admin(
    broker: BrokerProcess,
) -> None:
    def made_up(n: int) -> None:  # over STOMP and HTTP: one limiter
        if n % 2:
            answer = over_tcp(broker, ATTACKER, connect_frame(f"made-up-{n}", "guess"))
            assert refused(answer, "AUTH_FAILED"), answer
        else:
            with http(broker, ATTACKER) as client:
                wrong = {"username": f"made-up-{n}", "password": "guess"}
                failed = client.post("/sessions", json=wrong)
                assert failed.status_code == 401, failed.text

    # a few at a time, as a guesser would (the broker verifies two at once)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(made_up, range(55)))
    # the admin behind the same address never failed there: every surface lets them in
    assert is_connected(over_tcp(broker, ATTACKER, connect_frame("admin", ADMIN_PASSWORD)))
    assert is_connected(over_websocket(broker, ATTACKER, "admin", ADMIN_PASSWORD))
    token_of(broker, ATTACKER, "admin", ADMIN_PASSWORD)


def test_access_key_guesses_are_limited_per_address_not_per_account(
    broker: BrokerProcess,
) -> None:
    admin = token_of(broker, VICTIM, "admin", ADMIN_PASSWORD)
    with http(broker, VICTIM) as client:
        made = client.post(
            "/queues",
            json={"name": "vault", "access_key": KEY},
            headers={"Authorization": f"Bearer {admin}"},
        )
        assert made.status_code == 201, made.text
    for name in ("mallory", "mallory-2", "honest"):
        register(broker, VICTIM if name == "honest" else ATTACKER, name)

    # each logs in with a token, so a guess costs the broker one argon2id run, not two
    tokens = {name: token_of(broker, VICTIM, name) for name in ("mallory", "mallory-2", "honest")}

    def subscribe(source: str, name: str, key: str) -> Frame:
        return over_tcp(
            broker,
            source,
            connect_frame(name, tokens[name]),
            frame("SUBSCRIBE", id="1", destination="/queue/vault", access_key=key, receipt="s"),
        )

    until_slowed(lambda: subscribe(ATTACKER, "mallory", "guess-0000"), "ACCESS_KEY_WRONG")
    # a second account from the same address gets no fresh tries, over STOMP or HTTP
    assert refused(subscribe(ATTACKER, "mallory-2", KEY), "TOO_MANY_ATTEMPTS")
    with http(broker, ATTACKER) as client:
        pulled = client.post(
            "/queues/vault/pull",
            json={},
            auth=("mallory-2", PASSWORD),
            headers={"X-Access-Key": KEY},
        )
        assert pulled.status_code == 429, pulled.text
    # the right key from another address is not held back by the guesser
    assert subscribe(VICTIM, "honest", KEY).command.value == "RECEIPT"
    with http(broker, VICTIM) as client:
        pulled = client.post(
            "/queues/vault/pull",
            json={},
            auth=("honest", PASSWORD),
            headers={"X-Access-Key": KEY},
        )
        assert pulled.status_code == 200, pulled.text
