"""Several brokers in one URL: the SDK connects to the first that accepts and fails over.

The brokers are real ``buzon serve`` processes, each with its own SQLite data directory:
failing over (the next host, resubscribing, the durable name sent again) needs no shared
storage, so each node here has its own queues and what a test publishes on the node it
fails over to is what it receives there.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from buzon.client import (
    ApiError,
    AsyncClient,
    BuzonConnectionError,
    Client,
    LoginRefused,
    ManagementClient,
)
from buzon.client.urls import parse_stomp_url
from buzon.errors import ErrorCode, RequestError
from tests.cli.helpers import free_port
from tests.interop.broker_process import BrokerProcess, broker_process

PASSWORD = "failover-admin-password"
ENV = {"BUZON_ADMIN_PASSWORD": PASSWORD}


@pytest.fixture
def nodes() -> Iterator[list[BrokerProcess]]:
    """Two independent brokers (each its own data directory), killed at the end."""
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(broker_process(env=ENV)) for _ in range(2)]


def listed(*ports: int, password: str = PASSWORD) -> str:
    """A URL naming the admin and several brokers on loopback."""
    return f"stomp://admin:{password}@" + ",".join(f"127.0.0.1:{port}" for port in ports)


def test_a_list_of_brokers_parses_in_order_with_default_ports() -> None:
    url = parse_stomp_url("stomp+ssl://al%40ice:p%3Aw@Node-1:7000,node-2,[::1]:7002,[fe80::2]")
    assert [(a.host, a.port) for a in url.addresses] == [
        ("node-1", 7000),
        ("node-2", 61614),
        ("::1", 7002),
        ("fe80::2", 61614),
    ]
    assert (url.tls, url.login, url.passcode) == (True, "al@ice", "p:w")
    assert url.display == "stomp+ssl://node-1:7000,node-2:61614,[::1]:7002,[fe80::2]:61614"
    single = parse_stomp_url("stomp://h1")
    assert [(a.host, a.port, a.tls) for a in single.addresses] == [("h1", 61613, False)]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("stomp://u:secret@h1:61613,,h2", "stomp://h1:61613,,h2: an empty entry in the list"),
        ("stomp://h1,", "stomp://h1,: an empty entry in the list"),
        ("stomp://h1,h2:port", "'h2:port' has an invalid port (1 to 65535)"),
        ("stomp://h1,h2:70000", "'h2:70000' has an invalid port"),
        ("stomp://h1,::1:7", "'::1:7': put an IPv6 address in brackets, [::1:7]"),
        ("stomp://h1,[::1:7", "'[::1:7' is not [IPv6 address]:port"),
        ("stomp://[nope]:7", "'nope' is not an IPv6 address"),
        ("stomp://u:secret@", "stomp://: no host"),
        ("http://u:secret@h1,h2", "'http://u@h1,h2': use stomp:// or stomp+ssl://"),
    ],
)
def test_a_malformed_list_is_one_clear_error_without_the_password(url: str, reason: str) -> None:
    with pytest.raises(RequestError) as caught:
        AsyncClient(url)
    assert caught.value.code is ErrorCode.BAD_REQUEST
    assert reason in str(caught.value)
    assert "secret" not in str(caught.value)


def test_the_first_broker_down_connects_to_the_next(nodes: list[BrokerProcess]) -> None:
    down = free_port()
    with Client(listed(down, nodes[1].port)) as client:
        assert client.broker == f"127.0.0.1:{nodes[1].port}"
        jobs = client.subscribe("/queue/next", ack="client-individual")
        client.publish("/queue/next", "landed on the second")
        message = jobs.get(timeout=10)
        assert message.text == "landed on the second"
        message.ack()


def test_no_broker_reachable_names_each_one() -> None:
    first, second = free_port(), free_port()
    with pytest.raises(BuzonConnectionError) as caught:
        Client(listed(first, second)).connect()
    message = str(caught.value)
    assert message.startswith(
        f"cannot reach the broker at stomp://127.0.0.1:{first},127.0.0.1:{second}:"
        f" 127.0.0.1:{first}: "
    )
    assert f"; 127.0.0.1:{second}: " in message


async def test_a_refused_login_does_not_fail_over(nodes: list[BrokerProcess]) -> None:
    """A wrong password would be refused everywhere: raised at once, the next one untried."""
    tried: list[asyncio.Protocol] = []

    def accepted() -> asyncio.Protocol:
        tried.append(asyncio.Protocol())
        return tried[-1]

    silent = await asyncio.get_running_loop().create_server(accepted, "127.0.0.1", 0)
    silent_port = silent.sockets[0].getsockname()[1]
    try:
        client = AsyncClient(listed(nodes[0].port, silent_port, password="wrong-password"))
        with pytest.raises(LoginRefused) as refused:
            await client.connect()
    finally:
        silent.close()
        await silent.wait_closed()
    assert refused.value.code is ErrorCode.AUTH_FAILED
    assert str(refused.value).startswith(f"127.0.0.1:{nodes[0].port} refused the login")
    assert tried == []


async def wait_for(condition: Callable[[], bool]) -> None:
    """Poll ``condition`` (a count the client keeps, no event to wait on) for up to 20 s."""
    async with asyncio.timeout(20):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


@pytest.fixture
async def survivor(nodes: list[BrokerProcess]) -> AsyncIterator[AsyncClient]:
    """A client connected straight to the second node, to publish there."""
    async with AsyncClient(listed(nodes[1].port)) as client:
        yield client


async def test_kill_9_of_the_node_fails_over_and_the_consumer_goes_on(
    nodes: list[BrokerProcess], survivor: AsyncClient
) -> None:
    doomed, other = nodes
    # waiting on the second node before the first dies: the first message after failover
    await survivor.publish("/queue/work", "waiting on the second")
    client = AsyncClient(listed(doomed.port, other.port), max_reconnect_delay=0.5)
    await client.connect()
    try:
        assert client.broker == f"127.0.0.1:{doomed.port}"
        work = await client.subscribe("/queue/work", ack="client-individual", prefetch=5)
        news = await client.subscribe("/topic/news", durable="watcher")
        await client.publish("/queue/work", "before")
        unacked = await work.get(timeout=10)
        assert unacked.text == "before"

        doomed.process.send_signal(signal.SIGSTOP)  # it reads nothing more: no receipt
        in_flight = asyncio.create_task(client.publish("/queue/work", "in flight"))
        await asyncio.sleep(0)  # the SEND is written; its receipt cannot come
        killed = time.monotonic()
        doomed.stop(signal.SIGKILL)

        first = await work.get(timeout=20)
        reconnect_seconds = time.monotonic() - killed
        assert (first.text, client.broker) == ("waiting on the second", f"127.0.0.1:{other.port}")
        assert reconnect_seconds < 10, reconnect_seconds

        # the publish that was waiting for its receipt was sent again on the new node with
        # its idempotency key (the frozen node never read it: this is its only copy)
        await in_flight
        # the message from the dead connection is not acked on the new one
        with pytest.raises(BuzonConnectionError):
            await unacked.ack()
        await first.ack(confirm=True)
        resent = await work.get(timeout=10)
        assert resent.text == "in flight"
        await resent.ack(confirm=True)

        # the publish API works on the new node, and the subscriptions receive there
        await client.publish("/queue/work", "after")
        await survivor.publish("/topic/news", "for the watcher")
        assert (await work.get(timeout=10)).text == "after"
        assert (await news.get(timeout=10)).text == "for the watcher"
    finally:
        await client.close()
    with ManagementClient(other.url) as admin:
        admin.login("admin", PASSWORD)
        assert admin.get_queue("work").depth == 1  # "after" was not acked; nothing else
        durable = admin.get_channel("news").durable_subscriptions
        assert [subscription.name for subscription in durable] == ["watcher"]


async def test_resubscribing_keeps_ack_mode_and_prefetch(
    nodes: list[BrokerProcess], survivor: AsyncClient
) -> None:
    """After failover, the prefetch window of 2 still holds on the new node."""
    doomed, other = nodes
    for n in range(4):
        await survivor.publish("/queue/window", str(n))
    async with AsyncClient(listed(doomed.port, other.port), max_reconnect_delay=0.5) as client:
        window = await client.subscribe("/queue/window", ack="client-individual", prefetch=2)
        doomed.stop(signal.SIGKILL)
        await wait_for(lambda: window.buffered == 2)
        with ManagementClient(other.url) as admin:
            admin.login("admin", PASSWORD)
            queue = admin.get_queue("window")
        assert (queue.depth, queue.in_flight, queue.consumers) == (2, 2, 1)
        await (await window.get(timeout=10)).ack(confirm=True)
        await wait_for(lambda: window.buffered == 2)


async def test_a_refusal_on_resubscribe_ends_the_subscription(
    nodes: list[BrokerProcess],
) -> None:
    """The other node has no such queue and the subscription said create=False: it ends
    with the broker's error instead of silently waiting for ever."""
    doomed, other = nodes
    with ManagementClient(doomed.url) as admin:
        admin.login("admin", PASSWORD)
        admin.create_queue("only-here")
    async with AsyncClient(listed(doomed.port, other.port), max_reconnect_delay=0.5) as client:
        sub = await client.subscribe("/queue/only-here", create=False)
        doomed.stop(signal.SIGKILL)
        with pytest.raises(ApiError) as ended:
            await sub.get(timeout=20)
        assert ended.value.code is ErrorCode.DESTINATION_NOT_FOUND


async def test_a_transaction_begun_before_failover_fails_without_ending_the_rest(
    nodes: list[BrokerProcess],
) -> None:
    """The new node never saw the BEGIN: naming the transaction there would get an ERROR,
    which would end the new connection and every subscription with it."""
    doomed, other = nodes
    async with AsyncClient(listed(doomed.port, other.port), max_reconnect_delay=0.5) as client:
        keep = await client.subscribe("/queue/keep")
        async with client.transaction() as tx:
            await tx.publish("/queue/keep", "staged")
            doomed.stop(signal.SIGKILL)
            await wait_for(lambda: client.broker == f"127.0.0.1:{other.port}")
            with pytest.raises(BuzonConnectionError) as gone:
                await tx.publish("/queue/keep", "after failover")
            assert "the connection this transaction began on is gone" in str(gone.value)
            with pytest.raises(BuzonConnectionError):
                await tx.commit()
        await client.publish("/queue/keep", "plain")
        assert (await keep.get(timeout=10)).text == "plain"
        async with client.transaction() as again:
            await again.publish("/queue/keep", "in a new transaction")
        assert (await keep.get(timeout=10)).text == "in a new transaction"
