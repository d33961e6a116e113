"""How a message's AMQP properties and its buzon headers map to each other."""

from __future__ import annotations

import base64

from buzon.amqp import Properties, decode_properties, encode_properties
from buzon.broker import Message
from buzon.server.amqp_properties import RAW_HEADER, delivery_properties, publish_headers


def _message(headers: tuple[tuple[str, str], ...], destination: str = "/queue/q") -> Message:
    return Message("m-1", destination, headers, b"body", 1, persistent=True, priority=7)


def test_an_amqp_message_shows_its_properties_as_headers_and_keeps_them_exact() -> None:
    properties = Properties(
        content_type="application/json",
        correlation_id="c-1",
        message_id="their-id",
        delivery_mode=2,
        priority=3,
        headers={"n": 2**40, "ok": True, "nested": {"a": [1, None]}, "s": "text"},
    )
    raw = encode_properties(properties)
    headers = dict(publish_headers(properties, raw))
    assert headers["content-type"] == "application/json"
    assert headers["correlation-id"] == "c-1"
    assert headers["amqp-message-id"] == "their-id"
    assert (headers["persistent"], headers["priority"]) == ("true", "3")
    assert (headers["n"], headers["ok"], headers["s"]) == (str(2**40), "true", "text")
    assert delivery_properties(_message(tuple(headers.items()))) == raw  # byte for byte


def test_a_stomp_message_reaches_amqp_with_properties_from_its_headers() -> None:
    message = _message((("content-type", "text/plain"), ("reply-to", "r"), ("trace", "t-1")))
    properties = decode_properties(delivery_properties(message))
    assert properties.content_type == "text/plain"
    assert properties.reply_to == "r"
    assert (properties.delivery_mode, properties.priority) == (2, 7)
    assert properties.headers == {"trace": "t-1"}


def test_a_dead_letter_carries_x_death_with_its_route() -> None:
    published = encode_properties(Properties(headers={"trace": "t"}))
    headers = (
        ("x-dead-letter-reason", "rejected"),
        ("x-original-destination", "/queue/work"),
        ("x-original-address", "/topic/jobs/task.a"),
        ("x-dead-lettered-at", "1700000000000"),
        ("trace", "t"),
        (RAW_HEADER, base64.b64encode(published).decode()),
    )
    properties = decode_properties(delivery_properties(_message(headers, "/topic/dlx/task.a")))
    table = properties.headers
    assert table is not None
    deaths = table["x-death"]
    assert isinstance(deaths, list)
    death = deaths[0]
    assert isinstance(death, dict)
    assert (death["queue"], death["exchange"], death["reason"]) == ("work", "jobs", "rejected")
    assert death["routing-keys"] == ["task.a"]
    assert table["trace"] == "t"
