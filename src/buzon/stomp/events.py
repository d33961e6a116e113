"""Typed STOMP 1.2 events: what a connection hands its user, and what the user sends.

Each event is a slotted dataclass holding the fields its command defines; a frame's other
headers travel in ``headers``. Treat them as immutable. Most are frozen; the four made for
every message (SEND, ACK, NACK and MESSAGE) are not, only because a frozen dataclass's
constructor costs several times more (one ``object.__setattr__`` per field).

Client-to-server events come first, then server-to-client ones. The wire format lives
elsewhere (``incoming`` and ``outgoing``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeAlias

from buzon.stomp.frame import Headers

# -- client to server ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Connect:
    """CONNECT or STOMP: the client asks to log in.

    Attributes:
        version: the version the session will speak: the best both sides offer.
        login: the ``login`` header, if any.
        passcode: the ``passcode`` header, if any.
        host: the virtual host asked for, if any.
        accept_version: the versions the client speaks (``("1.0",)`` when it says none).
        heart_beat: the client's ``(cx, cy)`` in ms: it can send every cx and wants to
            receive every cy (0 = not at all).
        headers: every header of the frame, in order.
    """

    version: str
    login: str | None
    passcode: str | None
    host: str | None
    accept_version: tuple[str, ...]
    heart_beat: tuple[int, int]
    headers: Headers


@dataclass(slots=True)
class Send:
    """SEND: publish ``body`` to ``destination``.

    Attributes:
        destination: where to publish.
        headers: every header of the frame as received (or, when sending, extra headers;
            the named fields and ``content-length`` are written from the fields instead).
        body: the message body.
        receipt: the ``receipt`` header, if the client wants a RECEIPT.
        transaction: the transaction this SEND belongs to, if any.
    """

    destination: str
    headers: Headers = ()
    body: bytes = b""
    receipt: str | None = None
    transaction: str | None = None


@dataclass(frozen=True, slots=True)
class Subscribe:
    """SUBSCRIBE: start receiving messages from ``destination``.

    Attributes:
        destination: what to subscribe to.
        id: the client's name for this subscription (unique per connection).
        ack: ``"auto"``, ``"client"`` or ``"client-individual"``.
        headers: every header of the frame as received (extra headers when sending).
        receipt: the ``receipt`` header, if any.
    """

    destination: str
    id: str
    ack: str = "auto"
    headers: Headers = ()
    receipt: str | None = None


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """UNSUBSCRIBE: end the subscription called ``id`` (other headers in ``headers``)."""

    id: str
    receipt: str | None = None
    headers: Headers = ()


@dataclass(slots=True)
class Ack:
    """ACK: the message with ack id ``id`` was handled (optionally inside ``transaction``).

    Attributes:
        id: the ack id from the MESSAGE's ``ack`` header. STOMP 1.1 has no ack id: there
            ``id`` is the ``message-id`` and ``subscription`` is set.
        transaction: the transaction it belongs to, if any.
        receipt: the ``receipt`` header, if any.
        subscription: STOMP 1.1 only: the subscription the message was delivered to.
    """

    id: str
    transaction: str | None = None
    receipt: str | None = None
    subscription: str | None = None


@dataclass(slots=True)
class Nack:
    """NACK: the message was not handled; the broker may redeliver it (fields as
    :class:`Ack`, plus every header of the frame, for what the broker makes of them)."""

    id: str
    transaction: str | None = None
    receipt: str | None = None
    subscription: str | None = None
    headers: Headers = field(default=(), compare=False)


@dataclass(frozen=True, slots=True)
class Begin:
    """BEGIN: open ``transaction``."""

    transaction: str
    receipt: str | None = None


@dataclass(frozen=True, slots=True)
class Commit:
    """COMMIT: apply every SEND and ACK of ``transaction``."""

    transaction: str
    receipt: str | None = None


@dataclass(frozen=True, slots=True)
class Abort:
    """ABORT: drop every SEND and ACK of ``transaction``."""

    transaction: str
    receipt: str | None = None


@dataclass(frozen=True, slots=True)
class Disconnect:
    """DISCONNECT: the client is leaving; with ``receipt`` it waits for a RECEIPT first."""

    receipt: str | None = None


# -- server to client ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Connected:
    """CONNECTED: the server accepted the login.

    Attributes:
        version: the protocol version chosen (buzon speaks ``"1.2"`` only).
        heart_beat: the server's ``(cx, cy)`` in ms.
        server: the ``server`` header (name/version), if any.
        session: the ``session`` header, if any.
        headers: every header of the frame, in order.
    """

    version: str
    heart_beat: tuple[int, int]
    server: str | None
    session: str | None
    headers: Headers


@dataclass(slots=True)
class Message:
    """MESSAGE: a delivery to a subscription.

    Attributes:
        destination: where the message was published.
        message_id: the broker's id for the message.
        subscription: the ``id`` of the subscription it is delivered to.
        ack: the id to ACK or NACK it with, or None in ``auto`` mode.
        headers: the other headers (user headers from the publisher). When sending, user
            headers named like the fields above, ``content-length``, ``receipt``,
            ``transaction`` or ``redelivered`` are dropped so a publisher cannot spoof them.
        body: the message body.
        redelivered: true if the message was delivered before and not acknowledged.
    """

    destination: str
    message_id: str
    subscription: str
    ack: str | None
    headers: Headers
    body: bytes
    redelivered: bool = False


@dataclass(frozen=True, slots=True)
class Receipt:
    """RECEIPT: the server processed the frame whose ``receipt`` header was ``receipt_id``."""

    receipt_id: str


@dataclass(frozen=True, slots=True)
class Error:
    """ERROR: the server refused something and closes the connection.

    Attributes:
        message: the ``message`` header, a short safe text.
        body: details (text, usually).
        receipt_id: the ``receipt`` of the frame that caused the error, if it had one.
        headers: the other headers.
    """

    message: str
    body: bytes = b""
    receipt_id: str | None = None
    headers: Headers = ()


Event: TypeAlias = (
    Connect
    | Send
    | Subscribe
    | Unsubscribe
    | Ack
    | Nack
    | Begin
    | Commit
    | Abort
    | Disconnect
    | Connected
    | Message
    | Receipt
    | Error
)
"""Any STOMP event."""
