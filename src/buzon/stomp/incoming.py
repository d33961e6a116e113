"""Parsed frames to typed events, with STOMP 1.2's per-command header rules.

Each decoder takes a frame's headers and body and returns its event, or raises
:class:`FrameError` (MISSING_HEADER, BAD_HEADER_VALUE, UNSUPPORTED_VERSION). Whether the
command is legal at all in the connection's state is decided in ``states``, not here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Final

from buzon.errors import ErrorCode, FrameError
from buzon.stomp.events import (
    Abort,
    Ack,
    Begin,
    Commit,
    Connect,
    Connected,
    Disconnect,
    Error,
    Event,
    Message,
    Nack,
    Receipt,
    Send,
    Subscribe,
    Unsubscribe,
)
from buzon.stomp.frame import Command, Headers
from buzon.stomp.heartbeat import parse_heart_beat
from buzon.stomp.serializer import MESSAGE_OWN_HEADERS

VERSION: Final = "1.2"
"""The protocol version buzon prefers, and the only one its client role speaks."""

SERVER_VERSIONS: Final = ("1.2", "1.1")
"""Versions the server role accepts, best first. 1.1 differs from 1.2 in what matters here
only in ACK/NACK, which name ``message-id`` and ``subscription`` instead of an ack id;
1.0 (no escaping, no NACK, no heart-beats) is not offered."""

ACK_MODES: Final = frozenset({"auto", "client", "client-individual"})

_ERROR_OWN_HEADERS = frozenset({"message", "receipt-id", "content-length"})

Decoder = Callable[[Headers, bytes], Event]


def header(headers: Headers, name: str) -> str | None:
    """Return the first value of ``name`` in ``headers``, or None."""
    for key, value in headers:
        if key == name:
            return value
    return None


def _first_values(headers: Headers, positions: Mapping[str, int]) -> list[str | None]:
    """The first value of each header named in ``positions``, at its position (or None).

    One pass over the headers instead of one per name: the decoders of SEND, ACK and NACK
    use it, as they run once per message.
    """
    found: list[str | None] = [None] * len(positions)
    for name, value in headers:
        index = positions.get(name)
        if index is not None and found[index] is None:
            found[index] = value
    return found


_SEND_FIELDS: Final = {"destination": 0, "receipt": 1, "transaction": 2}
_SETTLE_FIELDS: Final = {"id": 0, "transaction": 1, "receipt": 2}


def _required(headers: Headers, name: str) -> str:
    value = header(headers, name)
    if value is None:
        raise FrameError(ErrorCode.MISSING_HEADER, f"{name!r} header required")
    return value


def decode_connect(headers: Headers, body: bytes) -> Connect:
    """CONNECT or STOMP; picks the best of :data:`SERVER_VERSIONS` the client offers."""
    accept = header(headers, "accept-version")
    # A client that names no version speaks 1.0 (STOMP 1.2, "Protocol Negotiation").
    versions = tuple(v.strip() for v in accept.split(",")) if accept is not None else ("1.0",)
    chosen = next((v for v in SERVER_VERSIONS if v in versions), None)
    if chosen is None:
        supported = " and ".join(SERVER_VERSIONS)
        raise FrameError(ErrorCode.UNSUPPORTED_VERSION, f"this server speaks STOMP {supported}")
    return Connect(
        version=chosen,
        login=header(headers, "login"),
        passcode=header(headers, "passcode"),
        host=header(headers, "host"),
        accept_version=versions,
        heart_beat=parse_heart_beat(header(headers, "heart-beat")),
        headers=headers,
    )


def decode_send(headers: Headers, body: bytes) -> Send:
    """SEND: needs ``destination``."""
    destination, receipt, transaction = _first_values(headers, _SEND_FIELDS)
    if destination is None:
        raise FrameError(ErrorCode.MISSING_HEADER, "'destination' header required")
    return Send(destination, headers, body, receipt, transaction)


def decode_subscribe(headers: Headers, body: bytes) -> Subscribe:
    """SUBSCRIBE: needs ``destination`` and ``id``; ``ack`` must be a known mode."""
    destination = _required(headers, "destination")
    subscription = _required(headers, "id")
    ack = header(headers, "ack")
    if ack is None:
        ack = "auto"
    elif ack not in ACK_MODES:
        raise FrameError(ErrorCode.BAD_HEADER_VALUE, f"ack mode {ack[:40]!r}")
    return Subscribe(destination, subscription, ack, headers, header(headers, "receipt"))


def decode_unsubscribe(headers: Headers, body: bytes) -> Unsubscribe:
    """UNSUBSCRIBE: needs ``id``."""
    return Unsubscribe(_required(headers, "id"), header(headers, "receipt"), headers)


def _settle_fields(headers: Headers) -> tuple[str, str | None, str | None]:
    """ACK or NACK in 1.2: the ack id (``id``, required), transaction and receipt."""
    ack_id, transaction, receipt = _first_values(headers, _SETTLE_FIELDS)
    if ack_id is None:
        raise FrameError(ErrorCode.MISSING_HEADER, "'id' header required")
    return ack_id, transaction, receipt


def _settle_fields_11(headers: Headers) -> tuple[str, str | None, str | None, str]:
    """ACK or NACK in 1.1: ``message-id``, transaction, receipt and ``subscription``."""
    message_id = _required(headers, "message-id")
    subscription = _required(headers, "subscription")
    return (message_id, header(headers, "transaction"), header(headers, "receipt"), subscription)


def decode_ack(headers: Headers, body: bytes) -> Ack:
    """ACK: needs ``id``."""
    return Ack(*_settle_fields(headers))


def decode_nack(headers: Headers, body: bytes) -> Nack:
    """NACK: needs ``id``; its other headers (``requeue``, ``requeue-delay``, ``error``)
    are kept for the broker."""
    return Nack(*_settle_fields(headers), headers=headers)


def decode_ack_11(headers: Headers, body: bytes) -> Ack:
    """ACK in STOMP 1.1: needs ``message-id`` and ``subscription``."""
    return Ack(*_settle_fields_11(headers))


def decode_nack_11(headers: Headers, body: bytes) -> Nack:
    """NACK in STOMP 1.1: needs ``message-id`` and ``subscription``."""
    return Nack(*_settle_fields_11(headers), headers=headers)


def decode_begin(headers: Headers, body: bytes) -> Begin:
    """BEGIN: needs ``transaction``."""
    return Begin(_required(headers, "transaction"), header(headers, "receipt"))


def decode_commit(headers: Headers, body: bytes) -> Commit:
    """COMMIT: needs ``transaction``."""
    return Commit(_required(headers, "transaction"), header(headers, "receipt"))


def decode_abort(headers: Headers, body: bytes) -> Abort:
    """ABORT: needs ``transaction``."""
    return Abort(_required(headers, "transaction"), header(headers, "receipt"))


def decode_disconnect(headers: Headers, body: bytes) -> Disconnect:
    """DISCONNECT: ``receipt`` optional."""
    return Disconnect(header(headers, "receipt"))


def decode_connected(headers: Headers, body: bytes) -> Connected:
    """CONNECTED: the server must have chosen 1.2."""
    version = header(headers, "version")
    if version != VERSION:
        # A server that names no version speaks 1.0.
        chosen = "1.0" if version is None else version[:20]
        raise FrameError(ErrorCode.UNSUPPORTED_VERSION, f"server chose {chosen!r}")
    return Connected(
        version=VERSION,
        heart_beat=parse_heart_beat(header(headers, "heart-beat")),
        server=header(headers, "server"),
        session=header(headers, "session"),
        headers=headers,
    )


def decode_message(headers: Headers, body: bytes) -> Message:
    """MESSAGE: needs ``destination``, ``message-id`` and ``subscription``."""
    return Message(
        destination=_required(headers, "destination"),
        message_id=_required(headers, "message-id"),
        subscription=_required(headers, "subscription"),
        ack=header(headers, "ack"),
        headers=tuple(h for h in headers if h[0] not in MESSAGE_OWN_HEADERS),
        body=body,
        redelivered=header(headers, "redelivered") == "true",
    )


def decode_receipt(headers: Headers, body: bytes) -> Receipt:
    """RECEIPT: needs ``receipt-id``."""
    return Receipt(_required(headers, "receipt-id"))


def decode_error(headers: Headers, body: bytes) -> Error:
    """ERROR: every header optional."""
    return Error(
        message=header(headers, "message") or "",
        body=body,
        receipt_id=header(headers, "receipt-id"),
        headers=tuple(h for h in headers if h[0] not in _ERROR_OWN_HEADERS),
    )


DECODERS: Final[Mapping[Command, Decoder]] = MappingProxyType(
    {
        Command.CONNECT: decode_connect,
        Command.STOMP: decode_connect,
        Command.SEND: decode_send,
        Command.SUBSCRIBE: decode_subscribe,
        Command.UNSUBSCRIBE: decode_unsubscribe,
        Command.ACK: decode_ack,
        Command.NACK: decode_nack,
        Command.BEGIN: decode_begin,
        Command.COMMIT: decode_commit,
        Command.ABORT: decode_abort,
        Command.DISCONNECT: decode_disconnect,
        Command.CONNECTED: decode_connected,
        Command.MESSAGE: decode_message,
        Command.RECEIPT: decode_receipt,
        Command.ERROR: decode_error,
    }
)
"""The decoder for each command."""
