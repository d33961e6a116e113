"""A real broker on 127.0.0.1:0 and a small STOMP client on the sans-IO core, for tests."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections import deque
from collections.abc import AsyncIterator
from typing import Any, TypeVar

from buzon.auth import SecretHasher
from buzon.server.app import BuzonServer
from buzon.server.config import Settings
from buzon.stomp import (
    NEED_DATA,
    Error,
    Frame,
    FrameParser,
    Message,
    Receipt,
    Role,
    StompConnection,
)
from buzon.store import MemoryStore, Store

ADMIN = "admin"
PASSWORD = "test-password-123"
TIMEOUT = 5.0

E = TypeVar("E")

# Clients opened by tests; ``running_server`` closes whatever is left when it stops.
_open_clients: list[Client] = []


@contextlib.asynccontextmanager
async def running_server(
    hasher: SecretHasher, store: Store | None = None, **overrides: Any
) -> AsyncIterator[BuzonServer]:
    """A broker on free loopback ports (STOMP and HTTP) with the admin ADMIN/PASSWORD,
    on ``store`` (a fresh MemoryStore by default)."""
    settings = dataclasses.replace(
        Settings(
            stomp_port=0,
            http_port=0,
            amqp_port=0,
            amqps_port=0,
            admin_user=ADMIN,
            admin_password=PASSWORD,
        ),
        **overrides,
    )
    server = BuzonServer(settings, store=store or MemoryStore(), hasher=hasher)
    await server.start()
    try:
        yield server
    finally:
        # Clients leave first, so the broker's shutdown does not wait for them.
        loop = asyncio.get_running_loop()
        while _open_clients:
            client = _open_clients.pop()
            if client.loop is loop:  # one another test left behind has nothing to close here
                await client.close()
        await server.stop(grace=1.0)


class Client:
    """A test client: explicit events in, typed events out, real socket underneath."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.conn = StompConnection(Role.CLIENT, heart_beat=(0, 0))
        self.loop = asyncio.get_running_loop()
        # events read while waiting for something else (see ``receipt``), returned first
        self.stash: deque[Any] = deque()
        _open_clients.append(self)

    @classmethod
    async def open(
        cls,
        port: int,
        login: str | None = ADMIN,
        passcode: str | None = PASSWORD,
        heart_beat: tuple[int, int] = (0, 0),
    ) -> Client:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = cls(reader, writer)
        client.conn = StompConnection(Role.CLIENT, heart_beat=heart_beat)
        client.conn.connect(login=login, passcode=passcode, host="/")
        await client.flush()
        return client

    @classmethod
    async def connected(cls, port: int, **kwargs: Any) -> Client:
        from buzon.stomp import Connected

        client = await cls.open(port, **kwargs)
        await client.expect(Connected)
        return client

    async def flush(self) -> None:
        self.writer.write(self.conn.data_to_send())
        await self.writer.drain()

    async def send(self, *events: Any) -> None:
        for event in events:
            self.conn.send(event)
        await self.flush()

    async def next_event(self, within: float = TIMEOUT) -> Any:
        if self.stash:
            return self.stash.popleft()
        async with asyncio.timeout(within):
            while True:
                event = self.conn.next_event()
                if event is not None:
                    return event
                data = await self.reader.read(65536)
                if not data:
                    self.conn.receive_eof()
                    event = self.conn.next_event()
                    if event is None:
                        raise ConnectionError("closed by the broker")
                    return event
                self.conn.receive_data(data, self.loop.time())

    async def expect(self, kind: type[E], within: float = TIMEOUT) -> E:
        event = await self.next_event(within)
        if not isinstance(event, kind):
            raise AssertionError(f"expected {kind.__name__}, got {event!r}")
        return event

    async def receipt(self, receipt_id: str, within: float = TIMEOUT) -> Receipt:
        """Wait for a RECEIPT; deliveries that come first (a queue's backlog, handed out
        while the SUBSCRIBE is processed) are kept for :meth:`next_event`."""
        held: list[Any] = []
        while True:
            event = await self.next_event(within)
            if isinstance(event, Receipt) and event.receipt_id == receipt_id:
                self.stash.extend(held)
                return event
            if not isinstance(event, Message):
                raise AssertionError(f"expected RECEIPT {receipt_id!r}, got {event!r}")
            held.append(event)

    async def events(self, count: int, within: float = TIMEOUT) -> list[Any]:
        return [await self.next_event(within) for _ in range(count)]

    async def nothing_within(self, seconds: float) -> bool:
        """True when no event arrives for ``seconds``."""
        try:
            await self.next_event(seconds)
        except TimeoutError:
            return True
        return False

    async def close(self) -> None:
        if self in _open_clients:
            _open_clients.remove(self)
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


async def raw_exchange(port: int, data: bytes, within: float = TIMEOUT) -> tuple[list[Frame], bool]:
    """Send raw bytes, read until the broker closes; return its frames and whether it closed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    received = b""
    closed = False
    try:
        async with asyncio.timeout(within):
            while chunk := await reader.read(65536):
                received += chunk
            closed = True
    except TimeoutError:
        closed = False
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return frames_in(received), closed


def frames_in(data: bytes) -> list[Frame]:
    """The complete frames in ``data`` (what a broker sent), heart-beats left out."""
    parser = FrameParser()
    parser.feed(data)
    frames: list[Frame] = []
    while (item := parser.next_frame()) is not NEED_DATA:
        if isinstance(item, Frame):
            frames.append(item)
    return frames


def error_of(frames: list[Frame]) -> Frame:
    errors = [f for f in frames if f.command.value == "ERROR"]
    assert errors, f"no ERROR frame in {frames!r}"
    return errors[-1]


__all__ = [
    "ADMIN",
    "PASSWORD",
    "Client",
    "Error",
    "error_of",
    "frames_in",
    "raw_exchange",
    "running_server",
]
