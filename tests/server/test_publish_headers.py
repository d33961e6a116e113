"""Publish options read from a SEND's (or an HTTP publish's) headers, in one pass."""

from __future__ import annotations

import pytest

from buzon.broker import NO_OPTIONS, PublishOptions
from buzon.errors import BrokerError, ErrorCode
from buzon.server.publish_headers import OPTION_HEADERS, split_publish

RESERVED = frozenset({"receipt", "destination"})
WATCHED = RESERVED | OPTION_HEADERS


def test_a_message_without_options_shares_the_empty_options_and_keeps_its_headers() -> None:
    headers = (("receipt", "r1"), ("trace", "t"), ("destination", "/queue/q"), ("a", "b"))
    kept, options = split_publish(headers, WATCHED, RESERVED)
    assert kept == (("trace", "t"), ("a", "b"))
    assert options is NO_OPTIONS


def test_options_are_read_and_only_the_schedule_headers_are_not_passed_on() -> None:
    headers = (
        ("persistent", "false"),
        ("expires", "5000"),
        ("priority", "7"),
        ("priority", "1"),  # the first of repeated headers wins
        ("delay", "250"),
        ("idempotency-key", "k1"),
        ("trace", "t"),
    )
    kept, options = split_publish(headers)
    assert options == PublishOptions(
        persistent=False, expires_at=5.0, priority=7, delay_ms=250, idempotency_key="k1"
    )
    assert kept == (
        ("persistent", "false"),
        ("expires", "5000"),
        ("priority", "7"),
        ("priority", "1"),
        ("idempotency-key", "k1"),
        ("trace", "t"),
    )


def test_deliver_at_is_a_unix_time_and_expires_zero_means_never() -> None:
    kept, options = split_publish((("deliver-at", "1500"), ("expires", "0")))
    assert (options.deliver_at, options.expires_at, options.delay_ms) == (1.5, None, None)
    assert kept == (("expires", "0"),)


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ((("expires", "soon"),), "expires must be ms since the epoch"),
        ((("delay", "-1"),), "delay must be a whole number of milliseconds (>= 0)"),
        ((("deliver-at", "x"),), "deliver-at must be a whole number of milliseconds (>= 0)"),
        ((("delay", "1"), ("deliver-at", "2")), "give delay or deliver-at, not both"),
        ((("priority", "10"),), "priority must be an integer from 0 to 9"),
    ],
)
def test_malformed_options_are_refused_naming_the_header(
    headers: tuple[tuple[str, str], ...], detail: str
) -> None:
    with pytest.raises(BrokerError) as refused:
        split_publish(headers)
    assert refused.value.code is ErrorCode.BAD_HEADER_VALUE
    assert detail in str(refused.value)
