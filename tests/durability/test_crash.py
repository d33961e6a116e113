"""Crash safety with real processes: kill -9, restarts, a full disk.

Each test runs ``buzon serve`` on a data directory, drives it with the SDK, records what
the clients were told in a :class:`Ledger`, and checks the invariants of ``ledger``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pika
import pytest

from buzon.client import ApiError, AsyncClient, BuzonConnectionError
from buzon.errors import ErrorCode
from buzon.store.sqlite import DATABASE_FILE
from tests.durability.ledger import Ledger, summary, violations
from tests.interop.amqp.clients import consume_until
from tests.interop.broker_process import BrokerProcess, broker_process

PASSWORD = "durability-pass-1"
Q = "/queue/safe"


# a window of a few messages makes the broker page all the time (a backlog bigger than RAM)
TINY_WINDOW = ("--backlog-window", "3")


@contextlib.contextmanager
def broker(data_dir: Path, *args: str) -> Iterator[BrokerProcess]:
    with broker_process(
        "--data-dir", str(data_dir), *args, env={"BUZON_ADMIN_PASSWORD": PASSWORD}
    ) as process:
        yield process


def amqp_publisher(process: BrokerProcess) -> pika.BlockingConnection:
    """The admin over AMQP 0-9-1 (pika announces that it understands connection.blocked)."""
    credentials = pika.PlainCredentials("admin", PASSWORD)
    where = pika.ConnectionParameters(process.host, process.amqp_port, "/", credentials)
    return pika.BlockingConnection(where)


def client(process: BrokerProcess) -> AsyncClient:
    url = f"stomp://admin:{PASSWORD}@{process.host}:{process.port}"
    return AsyncClient(url, reconnect=False, timeout=5, heart_beat=(0, 0))


def integrity(data_dir: Path) -> str:
    with sqlite3.connect(data_dir / DATABASE_FILE) as database:
        result: str = database.execute("PRAGMA integrity_check").fetchone()[0]
    return result


async def produce(process: BrokerProcess, ledger: Ledger, name: str, count: int) -> None:
    """Publish with a receipt each, 32 in flight, until done or the broker is gone."""
    async with client(process) as producer:
        window = asyncio.Semaphore(32)
        gone = asyncio.Event()

        async def one(body: str) -> None:
            try:
                await producer.publish(Q, body)
                ledger.confirmed.add(body)
                ledger.tick()
            except ApiError as refusal:
                if refusal.code is ErrorCode.SERVER_SHUTDOWN:
                    gone.set()  # not confirmed either way: it may or may not come back
                else:
                    ledger.refused.add(body)
            except BuzonConnectionError:
                gone.set()
            finally:
                window.release()

        tasks = []
        for n in range(count):
            await window.acquire()
            if gone.is_set():
                break
            body = f"{name}-{n}"
            ledger.published.append(body)
            tasks.append(asyncio.ensure_future(one(body)))
        await asyncio.gather(*tasks, return_exceptions=True)


async def consume(process: BrokerProcess, ledger: Ledger, idle: float) -> None:
    """Take and ack (with receipt) until nothing arrives for ``idle`` seconds."""
    async with client(process) as consumer:
        sub = await consumer.subscribe(Q, ack="client-individual", prefetch=20)
        while True:
            try:
                message = await sub.get(timeout=idle)
            except TimeoutError:
                return
            index = ledger.delivered(message.text, message.redelivered)
            await message.ack(confirm=True)
            ledger.acked.append((index, message.text))
            ledger.tick()


async def until_broken(*work: asyncio.Future[None] | asyncio.Task[None]) -> None:
    """Wait for clients whose broker went away (killed, or stopped with ERROR)."""
    results = await asyncio.gather(*work, return_exceptions=True)
    for result in results:
        if isinstance(result, BuzonConnectionError):
            continue
        if isinstance(result, ApiError) and result.code is ErrorCode.SERVER_SHUTDOWN:
            continue
        if isinstance(result, BaseException):
            raise result


async def kill_9_once(
    process: BrokerProcess,
    ledger: Ledger,
    ready: Callable[[], bool],
    *work: asyncio.Future[None],
) -> None:
    """Kill the broker with SIGKILL as soon as ``ready`` holds for the ledger, then wait
    for the clients doing ``work`` to notice."""
    reached = asyncio.Event()
    ledger.on_progress = ready
    ledger.progressed = reached
    await asyncio.wait_for(reached.wait(), 30)
    process.process.send_signal(signal.SIGKILL)
    process.process.wait(10)
    await until_broken(*work)


@pytest.mark.parametrize("window", [(), TINY_WINDOW], ids=["default-window", "tiny-window"])
async def test_kill_9_during_publishing_and_acking_loses_nothing_confirmed(
    tmp_path: Path, window: tuple[str, ...]
) -> None:
    ledger = Ledger()
    with broker(tmp_path, *window) as process:
        producing = asyncio.ensure_future(produce(process, ledger, "p", 5_000))
        consuming = asyncio.ensure_future(consume(process, ledger, idle=5))
        await kill_9_once(
            process,
            ledger,
            lambda: len(ledger.confirmed) >= 1_000 and len(ledger.acked) >= 200,
            producing,
            consuming,
        )
    assert integrity(tmp_path) == "ok"
    with broker(tmp_path, *window) as process:
        await consume(process, ledger, idle=1)
    assert violations(ledger) == [], summary(ledger)
    assert summary(ledger)["lost"] == 0
    assert ledger.confirmed  # the run did confirm messages before the kill


async def test_kill_9_while_a_paged_backlog_fills_and_while_it_drains(tmp_path: Path) -> None:
    """No consumer while 3,000 messages go in (all but 3 of them only on disk); kill -9
    during the fill, then again while it drains; the rest comes out in order."""
    ledger = Ledger()
    with broker(tmp_path, *TINY_WINDOW) as process:
        producing = asyncio.ensure_future(produce(process, ledger, "p", 3_000))
        await kill_9_once(process, ledger, lambda: len(ledger.confirmed) >= 1_500, producing)
    with broker(tmp_path, *TINY_WINDOW) as process:
        consuming = asyncio.ensure_future(consume(process, ledger, idle=5))
        await kill_9_once(process, ledger, lambda: len(ledger.acked) >= 500, consuming)
    assert integrity(tmp_path) == "ok"
    with broker(tmp_path, *TINY_WINDOW) as process:
        await consume(process, ledger, idle=1)
    assert violations(ledger) == [], summary(ledger)
    assert summary(ledger)["lost"] == 0
    first_time = [body for body, again in ledger.deliveries if not again]
    assert first_time == sorted(first_time, key=lambda body: int(body.split("-")[1]))


@pytest.mark.parametrize("window", [(), TINY_WINDOW], ids=["default-window", "tiny-window"])
async def test_a_clean_restart_keeps_everything_confirmed_in_order(
    tmp_path: Path, window: tuple[str, ...]
) -> None:
    ledger = Ledger()
    with broker(tmp_path, *window) as process:
        await produce(process, ledger, "p", 300)
        assert process.stop(signal.SIGTERM) == 0
    assert integrity(tmp_path) == "ok"
    with broker(tmp_path, *window) as process:
        await consume(process, ledger, idle=1)
    assert violations(ledger) == [], summary(ledger)
    assert [body for body, _ in ledger.deliveries] == ledger.published
    assert not any(redelivered for _, redelivered in ledger.deliveries)


async def publish_until_refused(producer: AsyncClient, ledger: Ledger, body: str) -> ApiError:
    """Publish big messages until the broker refuses one; return the refusal."""
    for n in range(200):
        name = f"big-{n}"
        ledger.published.append(name)
        try:
            await producer.publish(Q, name + body)
        except ApiError as error:
            ledger.refused.add(name)
            return error
        ledger.confirmed.add(name)
    raise AssertionError("the disk never filled up")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB filesystem of its own (tmpfs), so 'disk full' is real."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],  # noqa: S607
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)  # noqa: S607


async def test_a_full_disk_refuses_publishes_keeps_serving_and_loses_nothing(
    small_disk: Path,
) -> None:
    data_dir = small_disk / "data"
    filler = small_disk / "filler"
    ledger = Ledger()
    body = "x" * 32_768
    with broker(data_dir) as process:
        filler.write_bytes(b"\0" * (os.statvfs(small_disk).f_bavail * 4096 - 1_500_000))
        async with client(process) as producer:
            refusal = await publish_until_refused(producer, ledger, body)
            assert refusal.code is ErrorCode.STORAGE_FULL
        # the broker keeps serving: logins and reads work while the disk is full
        async with client(process) as reader:
            sub = await reader.subscribe(Q, ack="client-individual", prefetch=1)
            first = await sub.get(timeout=5)
            assert first.text.startswith("big-0")
            ledger.delivered("big-0", first.redelivered)  # not acked: it goes back
        filler.unlink()  # room again: publishing works again
        async with client(process) as producer:
            ledger.published.append("after")
            await producer.publish(Q, "after")
            ledger.confirmed.add("after")
    with broker(data_dir) as process:
        async with client(process) as consumer:
            sub = await consumer.subscribe(Q, ack="client-individual")
            while True:
                try:
                    message = await sub.get(timeout=1)
                except TimeoutError:
                    break
                text = message.text
                name = text if text == "after" else text[: -len(body)]
                ledger.delivered(name, message.redelivered)
                await message.ack()
    problems = violations(ledger)
    assert problems == [], summary(ledger)
    assert integrity(data_dir) == "ok"


def admin_token(http: httpx.Client) -> str:
    made = http.post("/sessions", json={"username": "admin", "password": PASSWORD})
    token: str = made.json()["token"]
    return token


def http_publish(process: BrokerProcess, body: str) -> httpx.Response:
    with httpx.Client(base_url=f"{process.url}/api/v1", timeout=5) as http:
        return http.post(
            "/queues/safe/messages",
            json={"body": body},
            headers={"Authorization": f"Bearer {admin_token(http)}"},
        )


def scrape_metrics(process: BrokerProcess) -> str:
    with httpx.Client(base_url=f"{process.url}/api/v1", timeout=5) as http:
        token = admin_token(http)
    with httpx.Client(base_url=process.url, timeout=5) as http:
        return http.get("/metrics", headers={"Authorization": f"Bearer {token}"}).text


async def publish_until(process: BrokerProcess, ledger: Ledger, refused: bool) -> ApiError | None:
    """Publish (one connection each: an ERROR closes it) until the broker refuses, or
    accepts, as asked; within ten seconds."""
    deadline = asyncio.get_running_loop().time() + 10
    for _ in range(1_000):
        assert asyncio.get_running_loop().time() < deadline, "the broker never changed its mind"
        name = f"{'try' if refused else 'ok'}-{len(ledger.published)}"
        ledger.published.append(name)
        async with client(process) as producer:
            try:
                await producer.publish(Q, name)
            except ApiError as error:
                ledger.refused.add(name)
                if refused:
                    return error
            else:
                ledger.confirmed.add(name)
                if not refused:
                    return None
        await asyncio.sleep(0.1)
    raise AssertionError("unreachable")


async def test_under_the_free_disk_floor_persistent_publishes_wait_for_space_to_return(
    small_disk: Path,
) -> None:
    data_dir = small_disk / "data"
    filler = small_disk / "filler"
    ledger = Ledger()
    with broker(data_dir, "--min-free-disk", "2000000", "--amqp-port", "0") as process:
        await publish_until(process, ledger, refused=False)
        amqp = amqp_publisher(process)  # an AMQP client is told to wait, and when to go on
        notices: list[str] = []
        amqp.add_on_connection_blocked_callback(lambda _, frame: notices.append("blocked"))
        amqp.add_on_connection_unblocked_callback(lambda _, frame: notices.append("unblocked"))
        free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
        filler.write_bytes(b"\0" * (free - 1_000_000))  # 1 MB left: under the 2 MB floor
        refusal = await publish_until(process, ledger, refused=True)
        assert refusal is not None
        assert refusal.code is ErrorCode.STORAGE_FULL
        consume_until(amqp, lambda: notices == ["blocked"])
        refused = http_publish(process, "over http")
        assert refused.status_code == 507
        assert refused.json()["error"]["code"] == "STORAGE_FULL"
        assert "buzon_storage_full 1.0" in scrape_metrics(process)
        async with client(process) as producer:  # what needs no disk still goes through
            await producer.publish("/queue/memo", "transient", persistent=False)
        filler.unlink()
        await publish_until(process, ledger, refused=False)  # resumes by itself
        consume_until(amqp, lambda: notices == ["blocked", "unblocked"])
        amqp.close()
        assert process.stop(signal.SIGTERM) == 0
    with broker(data_dir) as process:
        await consume(process, ledger, idle=1)
    assert violations(ledger) == [], summary(ledger)
    assert summary(ledger)["lost"] == 0
