"""STOMP client frames as engine commands, for one logged-in connection.

Each handler turns one event into one :class:`buzon.broker.Session` call and returns the
receipt id the frame asked for; the connection sends that RECEIPT once the frame's writes
are durable. Engine refusals (``BrokerError``, ``AuthError``) propagate to the caller,
which turns them into an ERROR frame.

Durable channel subscriptions: SUBSCRIBE with ``subscription-name`` (or ``durable:true``,
the ``id`` being the name) attaches to the user's durable subscription; UNSUBSCRIBE with
``durable:true`` deletes it, a plain UNSUBSCRIBE or a disconnect keeps it collecting.

Access keys: a SEND or SUBSCRIBE that carries ``access-key`` for a protected destination
this session was not granted yet must pass the access gate (``access_gate``: an argon2id
check off the event loop). :func:`key_to_check` says so before the handler runs; the
connection then holds the frame, has the gate check the key and grant it to the session,
and handles the frame. Without a key the engine refuses with ACCESS_KEY_REQUIRED.

Ack deadlines: SUBSCRIBE may carry ``ack-timeout-ms`` (see ``broker.deadlines``). A SEND to
``/buzon/extend`` publishes nothing: it extends the ack deadline of the delivery its ``ack``
header names (or ``message-id`` and ``subscription``, as a STOMP 1.1 ACK does), by
``extend-ms`` or the subscription's ack timeout from now. Plain SEND frames, so unmodified
STOMP clients can keep a lease; a delivery that already lapsed or is unknown is left alone
and the RECEIPT still comes (an ERROR would end the connection).

Creation on first use: a SEND or SUBSCRIBE to a missing destination creates it when the
broker's ``auto_create`` is on, unless the frame says ``auto-create:false`` (see
:func:`may_create`); then it gets an ERROR with DESTINATION_NOT_FOUND, and a client that
must not create by mistake (the ``buzon`` command) is not racing anyone's ``create``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from buzon.auth import Action
from buzon.broker import (
    RELEASE,
    AckMode,
    Broker,
    Disposition,
    Headers,
    Outcome,
    Session,
    parse_destination,
)
from buzon.broker.addresses import EXTEND_ADDRESS
from buzon.broker.deadlines import ACK_TIMEOUT_HEADER
from buzon.errors import BrokerError, ErrorCode
from buzon.server.access_gate import needs_key
from buzon.server.publish_headers import OPTION_HEADERS, milliseconds, split_publish
from buzon.stomp import (
    Abort,
    Ack,
    Begin,
    Commit,
    Disconnect,
    Nack,
    Send,
    Subscribe,
    Unsubscribe,
    header,
)
from buzon.store import DestinationRecord

ACCESS_KEY_HEADER = "access-key"
AUTO_CREATE_HEADER = "auto-create"

# Headers a publisher may not set on the copies consumers receive: they belong to the
# frame (routing, receipts, transactions, length), to the broker (ids, redelivery), or
# are secret (the access key).
RESERVED_HEADERS = frozenset(
    {
        "destination",
        "receipt",
        "transaction",
        "content-length",
        "message-id",
        "subscription",
        "ack",
        "redelivered",
        "prefetch-count",
        ACCESS_KEY_HEADER,
        AUTO_CREATE_HEADER,
    }
)
_WATCHED = RESERVED_HEADERS | OPTION_HEADERS  # what a SEND's one pass looks at


def parse_prefetch(value: str | None) -> int | None:
    """Read ``prefetch-count``: plain ASCII digits, or absent."""
    if value is None:
        return None
    if not (value.isascii() and value.isdigit()):
        raise BrokerError(ErrorCode.BAD_HEADER_VALUE, "prefetch-count must be a positive integer")
    return int(value)


def parse_ms(name: str, value: str | None) -> int | None:
    """Read a header of milliseconds: plain ASCII digits, at least 1, or absent."""
    if value is None:
        return None
    if not (value.isascii() and value.isdigit() and len(value) <= 15 and int(value) >= 1):
        raise BrokerError(ErrorCode.BAD_HEADER_VALUE, f"{name} must be a positive integer (ms)")
    return int(value)


def may_create(event: Send | Subscribe) -> bool:
    """Read ``auto-create``: ``false`` makes a missing destination an error for this frame
    (DESTINATION_NOT_FOUND) even where the broker creates on first use; ``true`` or no
    header leaves it to the broker's setting.
    """
    value = header(event.headers, AUTO_CREATE_HEADER)
    if value is None or value == "true":
        return True
    if value == "false":
        return False
    raise BrokerError(ErrorCode.BAD_HEADER_VALUE, "auto-create must be true or false")


def durable_name(event: Subscribe) -> str | None:
    """The durable subscription a SUBSCRIBE asks for: ``subscription-name``, or its ``id``
    with ``durable:true``; None for an ordinary subscription."""
    name = header(event.headers, "subscription-name")
    if name is None and header(event.headers, "durable") == "true":
        name = event.id
    return name


def key_to_check(
    event: Send | Subscribe, session: Session, broker: Broker
) -> tuple[DestinationRecord, str] | None:
    """The destination and presented key to verify before ``event`` can run, if any.

    None when the frame carries no key, the principal needs no key for that destination,
    or this session was granted it already.

    Raises:
        BrokerError: DESTINATION_NOT_FOUND when a key is given for a destination that does
            not exist: creating it on first use would make it public, which is surely not
            what someone presenting a key meant (a mistyped name, say).
    """
    key = header(event.headers, ACCESS_KEY_HEADER)
    if key is None:
        return None
    try:
        kind, name = parse_destination(event.destination)
    except BrokerError:
        return None  # the handler reports the bad destination
    target = broker.destination(kind, name)
    if target is None:
        raise BrokerError(
            ErrorCode.DESTINATION_NOT_FOUND,
            f"{event.destination[:80]} does not exist (an access key was given for it)",
        )
    action = Action.PUBLISH if isinstance(event, Send) else Action.CONSUME
    if not needs_key(session.principal, action, target.record, session):
        return None
    return target.record, key


def requeue_delay(value: str | None, most_ms: int) -> int | None:
    """A NACK's ``requeue-delay`` in ms (None when absent).

    Raises:
        BrokerError: BAD_HEADER_VALUE naming the header.
    """
    if value is None:
        return None
    wait = milliseconds("requeue-delay", value)
    if wait > most_ms:
        raise BrokerError(ErrorCode.BAD_HEADER_VALUE, f"requeue-delay must be at most {most_ms} ms")
    return wait


def nack_outcome(headers: Headers, max_delay_ms: int) -> Outcome:
    """What a NACK frame asks: ``requeue:false`` dead-letters, ``requeue-delay:<ms>`` waits
    that long before the redelivery, ``error:<text>`` is kept with the message.

    Raises:
        BrokerError: BAD_HEADER_VALUE naming the header.
    """
    requeue = header(headers, "requeue")
    if requeue not in (None, "true", "false"):
        raise BrokerError(ErrorCode.BAD_HEADER_VALUE, "requeue must be true or false")
    delay = requeue_delay(header(headers, "requeue-delay"), max_delay_ms)
    error = header(headers, "error")
    if requeue is None and delay is None and error is None:
        return RELEASE
    if requeue == "false" and delay is not None:
        raise BrokerError(
            ErrorCode.BAD_HEADER_VALUE, "requeue-delay is for a redelivery: not with requeue:false"
        )
    disposition = Disposition.REJECT if requeue == "false" else Disposition.RELEASE
    return Outcome(disposition, delay, error)


class Commands:
    """The command handlers of one logged-in connection.

    Args:
        session: the engine session.
    """

    __slots__ = ("published", "session")

    def __init__(self, session: Session) -> None:
        self.session = session
        self.published = False  # a SEND or COMMIT ran since the caller last reset this

    def handle(self, event: Any) -> str | None:
        """Run one client event against the engine; return the receipt it asked for.

        Raises:
            BrokerError, AuthError: the engine refused it.
        """
        return _HANDLERS[type(event)](self, event)

    def _send(self, event: Send) -> str | None:
        if event.destination == EXTEND_ADDRESS:
            return self._extend(event)
        headers, options = split_publish(event.headers, _WATCHED, RESERVED_HEADERS)
        self.session.publish(
            event.destination,
            headers,
            event.body,
            options,
            transaction=event.transaction,
            create=may_create(event),
        )
        self.published = True
        return event.receipt

    def _extend(self, event: Send) -> str | None:
        """A lease extension (see the module docstring); it is never enqueued, and takes
        effect at once: it cannot be part of a transaction."""
        if event.transaction is not None:
            raise BrokerError(
                ErrorCode.BAD_HEADER_VALUE,
                f"a SEND to {EXTEND_ADDRESS} cannot be part of a transaction: it takes effect"
                " at once",
            )
        ms = parse_ms("extend-ms", header(event.headers, "extend-ms"))
        ack_id = header(event.headers, "ack")
        if ack_id is None:
            message_id = header(event.headers, "message-id")
            subscription = header(event.headers, "subscription")
            if message_id is None or subscription is None:
                raise BrokerError(
                    ErrorCode.MISSING_HEADER,
                    f"a SEND to {EXTEND_ADDRESS} needs 'ack', or 'message-id' and 'subscription'",
                )
            try:
                ack_id = self.session.ack_id_for(subscription, message_id)
            except BrokerError as exc:
                if exc.code is not ErrorCode.UNKNOWN_ACK_ID:
                    raise  # no such subscription: a mistake, not a race with a lapse
                return event.receipt  # settled, lapsed and forgotten, or never delivered
        self.session.extend(ack_id, ms)
        return event.receipt

    def _ack(self, event: Ack) -> str | None:
        self.session.ack(self._ack_id(event), transaction=event.transaction)
        return event.receipt

    def _nack(self, event: Nack) -> str | None:
        outcome = (
            nack_outcome(event.headers, self.session.max_delay_ms) if event.headers else RELEASE
        )
        self.session.settle(self._ack_id(event), outcome, transaction=event.transaction)
        return event.receipt

    def _ack_id(self, event: Ack | Nack) -> str:
        """The engine's ack id: given in 1.2; found by message id in 1.1."""
        if event.subscription is None:
            return event.id
        return self.session.ack_id_for(event.subscription, event.id)

    def _subscribe(self, event: Subscribe) -> str | None:
        prefetch = parse_prefetch(header(event.headers, "prefetch-count"))
        self.session.subscribe(
            event.id,
            event.destination,
            AckMode(event.ack),
            prefetch,
            durable_name=durable_name(event),
            create=may_create(event),
            ack_timeout_ms=parse_ms(ACK_TIMEOUT_HEADER, header(event.headers, ACK_TIMEOUT_HEADER)),
        )
        return event.receipt

    def _unsubscribe(self, event: Unsubscribe) -> str | None:
        forget = header(event.headers, "durable") == "true"
        self.session.unsubscribe(event.id, forget=forget)
        return event.receipt

    def _begin(self, event: Begin) -> str | None:
        self.session.begin(event.transaction)
        return event.receipt

    def _commit(self, event: Commit) -> str | None:
        self.session.commit(event.transaction)
        self.published = True
        return event.receipt

    def _abort(self, event: Abort) -> str | None:
        self.session.abort(event.transaction)
        return event.receipt

    def _disconnect(self, event: Disconnect) -> str | None:
        self.session.close()
        return event.receipt


# One table for every connection (a table of bound methods each would cost memory).
_HANDLERS: dict[type[Any], Callable[[Commands, Any], str | None]] = {
    Send: Commands._send,
    Ack: Commands._ack,
    Nack: Commands._nack,
    Subscribe: Commands._subscribe,
    Unsubscribe: Commands._unsubscribe,
    Begin: Commands._begin,
    Commit: Commands._commit,
    Abort: Commands._abort,
    Disconnect: Commands._disconnect,
}
