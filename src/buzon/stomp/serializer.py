"""STOMP 1.2 frames to bytes.

:func:`serialize` writes any :class:`Frame`. :func:`message_chunks` is the hot path used
for every delivery: it builds a MESSAGE head as one string, encodes it once, and leaves the
body out, so the connection's output join copies the body exactly once.
"""

from __future__ import annotations

from buzon.stomp.escaping import UNESCAPED_COMMANDS, check_unescaped, escape
from buzon.stomp.events import Message
from buzon.stomp.frame import Command, Frame, Headers

# Headers a MESSAGE gets from its fields or from the frame itself; user headers with these
# names are dropped so a publisher cannot spoof them.
MESSAGE_OWN_HEADERS = frozenset(
    {
        "destination",
        "message-id",
        "subscription",
        "ack",
        "content-length",
        "receipt",
        "transaction",
        "redelivered",
    }
)


def serialize(frame: Frame) -> bytes:
    """Encode one frame.

    Header names and values are escaped, except in CONNECT and CONNECTED. Any
    ``content-length`` header of the frame is dropped, and the true one is written last
    when the body is not empty, so a body with NUL bytes always survives.

    Args:
        frame: the frame to write.

    Returns:
        The frame's bytes, NUL included.

    Raises:
        LocalProtocolError: a CONNECT or CONNECTED header contains a character that cannot
            be written unescaped (``\\r``, ``\\n``, or ``:`` in a name).
    """
    lines = [frame.command.value]
    escaped = frame.command not in UNESCAPED_COMMANDS
    for name, value in frame.headers:
        if name == "content-length":
            continue
        if escaped:
            lines.append(f"{escape(name)}:{escape(value)}")
        else:
            check_unescaped(name, value)
            lines.append(f"{name}:{value}")
    body = frame.body
    if body:
        lines.append(f"content-length:{len(body)}")
    lines.append("\n")
    return b"".join(("\n".join(lines).encode(), body, b"\0"))


def message_frame(message: Message) -> Frame:
    """The MESSAGE frame for a delivery.

    Args:
        message: the delivery.

    Returns:
        A frame with ``subscription``, ``message-id``, ``destination``, then ``ack`` (when
        not None), ``redelivered:true`` (when redelivered), then the user headers except
        :data:`MESSAGE_OWN_HEADERS`.
    """
    headers = [
        ("subscription", message.subscription),
        ("message-id", message.message_id),
        ("destination", message.destination),
    ]
    if message.ack is not None:
        headers.append(("ack", message.ack))
    if message.redelivered:
        headers.append(("redelivered", "true"))
    headers += [pair for pair in message.headers if pair[0] not in MESSAGE_OWN_HEADERS]
    return Frame(Command.MESSAGE, tuple(headers), message.body)


def message_chunks(
    destination: str,
    message_id: str,
    subscription: str,
    ack: str | None,
    headers: Headers,
    body: bytes,
    redelivered: bool,
) -> tuple[bytes, ...]:
    """Encode a delivery as :func:`serialize` would encode its :func:`message_frame`, faster.

    Runs once per delivered message, so it takes the fields rather than a
    :class:`~buzon.stomp.events.Message`. Rather than escaping each name and value (a call
    each), the head is built unescaped and checked as a whole: with no backslash, no
    ``\\r``, and exactly one colon per header line and one ``\\n`` per line, nothing needed
    escaping. Otherwise the general serialiser does it.

    Returns:
        The head, the body and the closing NUL; the caller joins them with the rest of its
        output, so the body is copied once.
    """
    lines = [
        f"MESSAGE\nsubscription:{subscription}\nmessage-id:{message_id}\ndestination:{destination}"
    ]
    if ack is not None:
        lines.append(f"ack:{ack}")
    if redelivered:
        lines.append("redelivered:true")
    for name, value in headers:
        if name not in MESSAGE_OWN_HEADERS:
            lines.append(f"{name}:{value}")
    if body:
        lines.append(f"content-length:{len(body)}")
    lines.append("\n")
    head = "\n".join(lines)
    header_lines = len(lines) + 1  # lines[0] holds three; the last entry is the blank line
    if (
        head.count(":") == header_lines
        and head.count("\n") == header_lines + 2
        and "\\" not in head
        and "\r" not in head
    ):
        return (head.encode(), body, b"\0")
    event = Message(destination, message_id, subscription, ack, headers, body, redelivered)
    return (serialize(message_frame(event)),)
