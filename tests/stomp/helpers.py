"""Shared helpers for the sans-IO STOMP tests: chunked feeding and a connection pair."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from buzon.errors import ErrorCode, FrameError
from buzon.stomp import (
    DEFAULT_LIMITS,
    NEED_DATA,
    Connect,
    Connected,
    ConnState,
    Event,
    Frame,
    FrameParser,
    Heartbeat,
    Message,
    ParserLimits,
    Role,
    StompConnection,
)
from buzon.stomp.serializer import message_chunks

Item = Frame | Heartbeat | ErrorCode


@dataclass
class ParseResult:
    """What a parser made of a byte stream fed in some chunks."""

    items: list[Item] = field(default_factory=list)
    failed_after: int | None = None  # bytes fed when the error was raised
    max_buffered: int = 0  # the most bytes the parser held at once


class HeadByHeadParser(FrameParser):
    """The parser without its one-pass path for plain heads: the reference it must match."""

    __slots__ = ()

    def _plain_head(self) -> None:
        return None


def parse_chunks(
    chunks: list[bytes],
    limits: ParserLimits = DEFAULT_LIMITS,
    make: Callable[[ParserLimits], FrameParser] = FrameParser,
) -> ParseResult:
    """Feed ``chunks`` one by one, draining frames after each; stop at the first error."""
    parser = make(limits)
    result = ParseResult()
    fed = 0
    for chunk in chunks:
        parser.feed(chunk)
        fed += len(chunk)
        result.max_buffered = max(result.max_buffered, parser.buffered)
        try:
            while (item := parser.next_frame()) is not NEED_DATA:
                result.items.append(item)
        except FrameError as exc:
            result.items.append(exc.code)
            result.failed_after = fed
            return result
    return result


def chunkings(data: bytes) -> Iterator[tuple[str, list[bytes]]]:
    """Every way the table tests feed ``data``: whole, byte by byte, every 2-way split."""
    yield "whole", [data]
    yield "bytewise", [data[i : i + 1] for i in range(len(data))]
    for cut in range(1, len(data)):
        yield f"split at {cut}", [data[:cut], data[cut:]]


def parse_every_way(data: bytes, limits: ParserLimits = DEFAULT_LIMITS) -> list[Item]:
    """Parse ``data`` every way of :func:`chunkings`; assert they agree; return the items."""
    expected: list[Item] | None = None
    for how, chunks in chunkings(data):
        items = parse_chunks(chunks, limits).items
        if expected is None:
            expected = items
        assert items == expected, f"{how} gives {items!r}, whole gives {expected!r}"
    assert expected is not None
    return expected


def state_of(conn: StompConnection) -> ConnState:
    """Read the state through a call, so mypy does not keep an earlier narrowing."""
    return conn.state


class ConnectionPair:
    """A client and a server connection wired together in memory, with a manual clock."""

    def __init__(
        self,
        *,
        client_heart_beat: tuple[int, int] = (0, 0),
        server_heart_beat: tuple[int, int] = (0, 0),
        grace: float = 2.0,
    ) -> None:
        self.now = 0.0
        self.client = StompConnection(Role.CLIENT, heart_beat=client_heart_beat)
        self.server = StompConnection(
            Role.SERVER, heart_beat=server_heart_beat, heartbeat_grace=grace
        )

    def peer(self, conn: StompConnection) -> StompConnection:
        return self.server if conn is self.client else self.client

    def flush(self, conn: StompConnection) -> bytes:
        """Move ``conn``'s output to its peer; return the bytes moved."""
        data = conn.data_to_send()
        self.peer(conn).receive_data(data, self.now)
        return data

    def events(self, conn: StompConnection) -> list[Event]:
        """Flush the peer's output to ``conn`` and return every event ``conn`` can read."""
        self.flush(self.peer(conn))
        found: list[Event] = []
        while (event := conn.next_event()) is not None:
            found.append(event)
        return found

    def login(self) -> tuple[Connect, Connected]:
        """CONNECT from the client, accept on the server, CONNECTED back."""
        self.client.connect(login="user", passcode="secret", host="/")
        (connect,) = self.events(self.server)
        assert isinstance(connect, Connect)
        self.server.accept(session="s-1", server="buzon/test")
        (connected,) = self.events(self.client)
        assert isinstance(connected, Connected)
        return connect, connected


def raw_server(data: bytes, *, login: bool = True) -> StompConnection:
    """A server fed ``data`` (after a CONNECT and accept when ``login``), events drained."""
    server = StompConnection(Role.SERVER, heart_beat=(0, 0))
    if login:
        server.receive_data(b"CONNECT\naccept-version:1.2\nhost:/\n\n\0", 0.0)
        assert isinstance(server.next_event(), Connect)
        server.accept(session="s", server="t")
        server.data_to_send()
    server.receive_data(data, 0.0)
    return server


def error_frame(data: bytes) -> Frame:
    """The one ERROR frame in ``data`` (what a server sent)."""
    parser = FrameParser()
    parser.feed(data)
    frames = []
    while (item := parser.next_frame()) is not NEED_DATA:
        assert isinstance(item, Frame)
        frames.append(item)
    assert [f.command.value for f in frames] == ["ERROR"], frames
    return frames[0]


def chunks_of(message: Message) -> tuple[bytes, ...]:
    """What the fast MESSAGE encoder returns for ``message``."""
    return message_chunks(
        message.destination,
        message.message_id,
        message.subscription,
        message.ack,
        message.headers,
        message.body,
        message.redelivered,
    )


def message_bytes(message: Message) -> bytes:
    """What the fast MESSAGE encoder writes for ``message``."""
    return b"".join(chunks_of(message))
