"""Client-side frames built with pamqp (an independent encoder), and a session driver."""

from __future__ import annotations

from pamqp import base, body, commands, frame, header

from buzon.amqp import AmqpConnection, AmqpLimits, Event, LoginRequested
from buzon.amqp.codec import PROTOCOL_HEADER

Frame = base.Frame | header.ContentHeader | body.ContentBody

PLAIN_OK = commands.Connection.StartOk(
    client_properties={
        "product": "test",
        "capabilities": {"consumer_cancel_notify": True, "connection.blocked": True},
    },
    mechanism="PLAIN",
    response="\x00alice\x00secret",
)


def wire(*frames: tuple[int, Frame]) -> bytes:
    """Frames as a client sends them: ``(channel, frame)`` pairs."""
    return b"".join(frame.marshal(f, ch) for ch, f in frames)


def publish_frames(
    channel: int,
    payload: bytes,
    *,
    routing_key: str = "q",
    props: commands.Basic.Properties | None = None,
    frame_max: int = 131072,
) -> bytes:
    step = frame_max - 8
    parts: list[tuple[int, Frame]] = [
        (channel, commands.Basic.Publish(exchange="", routing_key=routing_key)),
        (channel, header.ContentHeader(0, len(payload), props or commands.Basic.Properties())),
    ]
    parts += [
        (channel, body.ContentBody(payload[i : i + step])) for i in range(0, len(payload), step)
    ]
    return wire(*parts)


def read_frames(data: bytes) -> list[tuple[int, object]]:
    """The server's bytes decoded by pamqp: ``(channel, frame)`` pairs."""
    out: list[tuple[int, object]] = []
    while data:
        used, channel, value = frame.unmarshal(data)
        out.append((channel, value))
        data = data[used:]
    return out


def events(conn: AmqpConnection, data: bytes = b"", now: float = 0.0) -> list[Event]:
    conn.receive_data(data, now)
    found: list[Event] = []
    while (event := conn.next_event()) is not None:
        found.append(event)
    return found


def open_connection(
    limits: AmqpLimits | None = None, heartbeat: int = 0, channel_max: int = 0
) -> AmqpConnection:
    """A connection through the whole handshake, output drained."""
    conn = AmqpConnection(limits)
    (login,) = events(conn, PROTOCOL_HEADER + wire((0, PLAIN_OK)))
    assert isinstance(login, LoginRequested)
    conn.accept_login()
    tune = commands.Connection.TuneOk(channel_max=channel_max, frame_max=0, heartbeat=heartbeat)
    events(conn, wire((0, tune), (0, commands.Connection.Open(virtual_host="/"))))
    conn.data_to_send()
    assert conn.is_open
    return conn


def open_channel(conn: AmqpConnection, channel: int = 1) -> None:
    events(conn, wire((channel, commands.Channel.Open())))
    conn.data_to_send()


def closed_with(conn: AmqpConnection) -> int:
    """The reply code of the connection.close the server sent (its last frame)."""
    frames = read_frames(conn.data_to_send())
    last = frames[-1][1]
    assert isinstance(last, commands.Connection.Close), frames
    return int(last.reply_code or 0)
