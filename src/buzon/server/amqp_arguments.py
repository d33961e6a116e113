"""The ``x-`` arguments of an AMQP ``queue.declare``, as a buzon queue policy.

What each argument becomes (docs/amqp.md has the table users read):

- ``x-message-ttl`` (ms, >= 0) → ``message_ttl_ms`` (0 is taken as 1 ms: buzon keeps a
  message at least that long);
- ``x-expires`` (ms, >= 1) → ``expires_ms``;
- ``x-max-length`` / ``x-max-length-bytes`` (>= 1) → ``max_length`` / ``max_length_bytes``;
- ``x-overflow``: ``drop-head`` (the default with a length limit, as in RabbitMQ),
  ``reject-publish`` (``reject-publish-dlx`` is refused like ``reject-publish``; the
  refused message is not dead-lettered);
- ``x-dead-letter-exchange`` + ``x-dead-letter-routing-key``: kept as the queue's
  dead-letter route (an exchange, or the default exchange ``""`` with a routing key naming
  a queue, which is buzon's ``dead_letter_queue``);
- ``x-max-priority`` (1 to 255): accepted; every buzon queue orders by priority 0 to 9;
- ``x-queue-type`` ``classic`` or ``quorum``, ``x-queue-mode`` ``default`` or ``lazy``:
  accepted (buzon's queues page to disk by themselves); ``stream`` is refused;
- ``x-single-active-consumer`` true is refused (not implemented).

Other arguments are ignored, as RabbitMQ ignores the ones it does not know. A value of the
wrong type or out of range is ``PRECONDITION_FAILED`` naming the argument (AMQP 406).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from buzon.errors import BrokerError, ErrorCode
from buzon.store import Overflow, QueuePolicy

ACCESS_KEY_ARGUMENT = "x-access-key"
"""The argument (on queue.declare, exchange.declare, queue.bind, basic.consume) and the
header (on basic.publish) that presents a destination's access key."""

_OVERFLOWS = {
    "drop-head": Overflow.DROP_HEAD,
    "reject-publish": Overflow.REJECT_PUBLISH,
    "reject-publish-dlx": Overflow.REJECT_PUBLISH,
}
_ACCEPTED_TEXT = {
    "x-queue-type": ("classic", "quorum"),
    "x-queue-mode": ("default", "lazy"),
}


@dataclass(frozen=True, slots=True)
class DeadLetterRoute:
    """Where a queue's dead letters go, as AMQP names it.

    Attributes:
        exchange: the exchange (``""``: the default one, routing to the queue named by
            the routing key).
        routing_key: the key dead letters are published with (None: their own).
    """

    exchange: str
    routing_key: str | None


@dataclass(frozen=True, slots=True)
class QueueArguments:
    """What a declare's arguments ask for.

    Attributes:
        policy: the buzon policy (``durable`` and ``auto_delete`` from the declare's flags).
        dead_letters: the dead-letter route, when one was given.
    """

    policy: QueuePolicy
    dead_letters: DeadLetterRoute | None


def queue_arguments(
    arguments: Mapping[str, object], *, durable: bool, auto_delete: bool
) -> QueueArguments:
    """Read a ``queue.declare``'s arguments (see the module docstring).

    Raises:
        BrokerError: ``PRECONDITION_FAILED`` naming the argument at fault.
    """
    fields: dict[str, object] = {"durable": durable, "auto_delete": auto_delete}
    ttl = _integer(arguments, "x-message-ttl", 0)
    if ttl is not None:
        fields["message_ttl_ms"] = max(ttl, 1)
    for name, field in (
        ("x-expires", "expires_ms"),
        ("x-max-length", "max_length"),
        ("x-max-length-bytes", "max_length_bytes"),
    ):
        value = _integer(arguments, name, 1)
        if value is not None:
            fields[field] = value
    overflow = _text(arguments, "x-overflow", _OVERFLOWS.__contains__)
    if overflow is not None:
        fields["overflow"] = _OVERFLOWS[overflow]
    elif "max_length" in fields or "max_length_bytes" in fields:
        fields["overflow"] = Overflow.DROP_HEAD  # AMQP's default, unlike buzon's
    _integer(arguments, "x-max-priority", 1, 255)
    for name, allowed in _ACCEPTED_TEXT.items():
        _text(arguments, name, allowed.__contains__)
    if arguments.get("x-single-active-consumer") is True:
        raise _invalid("x-single-active-consumer", "single active consumer is not implemented")
    dead_letters = _dead_letter_route(arguments)
    if dead_letters is not None and not dead_letters.exchange:
        fields["dead_letter_queue"] = dead_letters.routing_key
    elif dead_letters is not None:
        fields["dead_letter_exchange"] = dead_letters.exchange
        fields["dead_letter_routing_key"] = dead_letters.routing_key
    return QueueArguments(QueuePolicy(**fields), dead_letters)  # type: ignore[arg-type]


def _dead_letter_route(arguments: Mapping[str, object]) -> DeadLetterRoute | None:
    exchange = _text(arguments, "x-dead-letter-exchange", lambda _: True)
    key = _text(arguments, "x-dead-letter-routing-key", lambda _: True)
    if exchange is None:
        if key is not None:
            raise _invalid("x-dead-letter-routing-key", "needs x-dead-letter-exchange")
        return None
    if not exchange and not key:
        raise _invalid(
            "x-dead-letter-routing-key",
            "the default exchange needs a routing key naming the dead-letter queue",
        )
    return DeadLetterRoute(exchange, key)


def _integer(
    arguments: Mapping[str, object], name: str, least: int, most: int = 2**63 - 1
) -> int | None:
    value = arguments.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not least <= value <= most:
        raise _invalid(name, f"must be an integer from {least} to {most}, not {value!r}")
    return value


def _text(arguments: Mapping[str, object], name: str, allowed: Callable[[str], bool]) -> str | None:
    value = arguments.get(name)
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str) or not allowed(value):
        raise _invalid(name, f"{value!r} is not supported")
    return value


def _invalid(name: str, why: str) -> BrokerError:
    return BrokerError(ErrorCode.PRECONDITION_FAILED, f"invalid argument {name!r}: {why[:120]}")
