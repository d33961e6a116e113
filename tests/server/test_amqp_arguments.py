"""A queue.declare's x- arguments become the queue's policy, or a 406 naming the argument."""

from __future__ import annotations

import pytest

from buzon.errors import BrokerError, ErrorCode
from buzon.server.amqp_arguments import DeadLetterRoute, queue_arguments
from buzon.store import Overflow, QueuePolicy


def test_celery_event_queue_arguments() -> None:
    read = queue_arguments(
        {"x-message-ttl": 5000, "x-expires": 60000}, durable=False, auto_delete=True
    )
    assert read.policy == QueuePolicy(
        durable=False, auto_delete=True, message_ttl_ms=5000, expires_ms=60000
    )
    assert read.dead_letters is None


def test_limits_overflow_and_accepted_types() -> None:
    read = queue_arguments(
        {
            "x-max-length": 10,
            "x-max-length-bytes": 4096,
            "x-overflow": "drop-head",
            "x-queue-type": "quorum",
            "x-queue-mode": b"lazy",
            "x-max-priority": 10,
            "x-unknown-to-buzon": "ignored",
        },
        durable=True,
        auto_delete=False,
    )
    assert read.policy == QueuePolicy(
        max_length=10, max_length_bytes=4096, overflow=Overflow.DROP_HEAD
    )


def test_a_zero_ttl_is_one_millisecond() -> None:
    read = queue_arguments({"x-message-ttl": 0}, durable=True, auto_delete=False)
    assert read.policy.message_ttl_ms == 1


def test_dead_letters_through_the_default_exchange_name_a_queue() -> None:
    read = queue_arguments(
        {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "failed"},
        durable=True,
        auto_delete=False,
    )
    assert read.policy.dead_letter_queue == "failed"
    assert read.dead_letters == DeadLetterRoute("", "failed")


def test_dead_letters_to_an_exchange_keep_the_route() -> None:
    read = queue_arguments({"x-dead-letter-exchange": "dlx"}, durable=True, auto_delete=False)
    assert read.policy.dead_letter_queue is None
    assert read.dead_letters == DeadLetterRoute("dlx", None)


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"x-message-ttl": -1}, "x-message-ttl"),
        ({"x-message-ttl": "5000"}, "x-message-ttl"),
        ({"x-expires": 0}, "x-expires"),
        ({"x-max-length": True}, "x-max-length"),
        ({"x-overflow": "explode"}, "x-overflow"),
        ({"x-queue-type": "stream"}, "x-queue-type"),
        ({"x-max-priority": 256}, "x-max-priority"),
        ({"x-single-active-consumer": True}, "x-single-active-consumer"),
        ({"x-dead-letter-routing-key": "k"}, "x-dead-letter-routing-key"),
        ({"x-dead-letter-exchange": ""}, "x-dead-letter-routing-key"),
    ],
)
def test_a_bad_argument_is_a_precondition_failure_naming_it(
    arguments: dict[str, object], named: str
) -> None:
    with pytest.raises(BrokerError) as refused:
        queue_arguments(arguments, durable=True, auto_delete=False)
    assert refused.value.code is ErrorCode.PRECONDITION_FAILED
    assert repr(named) in refused.value.detail


def test_a_length_limit_drops_the_oldest_unless_told_otherwise() -> None:
    read = queue_arguments({"x-max-length": 2}, durable=True, auto_delete=False)
    assert read.policy.overflow is Overflow.DROP_HEAD  # AMQP's default, not buzon's
