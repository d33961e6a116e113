"""What the AMQP acceptance tests share: connections with bounded waits, unique names."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pika
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection

from tests.interop.amqp.conftest import AmqpBroker

TIMEOUT = 10.0  # seconds any one wait of a test may take


def unique(name: str) -> str:
    """A tutorial's name made unique, so tests share a broker without sharing queues."""
    return f"{name}-{uuid.uuid4().hex[:12]}"


def parameters(broker: AmqpBroker) -> pika.ConnectionParameters:
    return pika.ConnectionParameters(
        host=broker.host,
        port=broker.port,
        virtual_host=broker.vhost,
        credentials=pika.PlainCredentials(broker.username, broker.password),
        connection_attempts=1,
        socket_timeout=TIMEOUT,
        stack_timeout=TIMEOUT,
        blocked_connection_timeout=TIMEOUT,
    )


def connect(broker: AmqpBroker) -> BlockingConnection:
    return pika.BlockingConnection(parameters(broker))


def consume_until(
    connection: BlockingConnection, done: Callable[[], bool], timeout: float = TIMEOUT
) -> None:
    """Let ``connection`` deliver until ``done()`` or ``timeout`` seconds; fail on timeout."""
    for _ in range(int(timeout / 0.05)):
        if done():
            return
        connection.process_data_events(time_limit=0.05)
    assert done(), f"not done within {timeout} s"


def drain(channel: BlockingChannel, queue: str, quiet: float = 0.3) -> list[Any]:
    """Every message ``queue`` delivers to an auto-ack consumer until it stays quiet for
    ``quiet`` seconds: (method, properties, body) each."""
    received = []
    for method, properties, body in channel.consume(queue, auto_ack=True, inactivity_timeout=quiet):
        if method is None:
            break
        received.append((method, properties, body))
    channel.cancel()
    return received
