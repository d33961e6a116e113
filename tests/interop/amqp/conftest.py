"""The AMQP 0-9-1 broker the acceptance tests run against, as a URL.

By default a real ``buzon serve --amqp-port 0`` subprocess (one per test process) with a
user registered over the HTTP API. With ``BUZON_TEST_AMQP_URL`` set (e.g.
``amqp://guest:guest@127.0.0.1:5672/%2F``, the address ``python benchmarks/rabbitmq.py``
prints for a throwaway RabbitMQ node), the same tests run against that broker instead: this
is how they were checked against RabbitMQ 3.10.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from urllib.parse import quote, unquote, urlsplit

import httpx
import pytest

from tests.interop.broker_process import broker_process

URL_VARIABLE = "BUZON_TEST_AMQP_URL"
ADMIN_PASSWORD = "amqp-acceptance-admin"
USERNAME, PASSWORD = "amqp-tester", "amqp tester password 1"
AMQP_LISTENING = re.compile(r"amqp://([^\s/:]+):(\d+)")


@dataclass(frozen=True)
class AmqpBroker:
    """Where the broker listens and who logs in."""

    host: str
    port: int
    username: str
    password: str
    vhost: str = "/"

    @property
    def url(self) -> str:
        who = f"{quote(self.username, safe='')}:{quote(self.password, safe='')}"
        return f"amqp://{who}@{self.host}:{self.port}/{quote(self.vhost, safe='')}"

    def but(self, *, password: str | None = None, vhost: str | None = None) -> AmqpBroker:
        """The same broker with another password or virtual host."""
        return replace(self, password=password or self.password, vhost=vhost or self.vhost)


def from_url(url: str) -> AmqpBroker:
    parts = urlsplit(url)
    if parts.scheme != "amqp" or parts.hostname is None or parts.port is None:
        raise pytest.UsageError(f"{URL_VARIABLE} must be amqp://user:pass@host:port/vhost")
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    username, password = unquote(parts.username or ""), unquote(parts.password or "")
    return AmqpBroker(parts.hostname, parts.port, username, password, vhost)


@pytest.fixture(scope="session")
def amqp_broker() -> Iterator[AmqpBroker]:
    """The broker under test: ``BUZON_TEST_AMQP_URL``'s, or a fresh buzon with a user."""
    url = os.environ.get(URL_VARIABLE)
    if url:
        yield from_url(url)
        return
    env = {"BUZON_ADMIN_PASSWORD": ADMIN_PASSWORD}
    with broker_process("--amqp-port", "0", env=env) as process:
        found = AMQP_LISTENING.search("".join(process.banner))
        assert found is not None, f"buzon printed no amqp:// address: {process.banner}"
        with httpx.Client(base_url=f"{process.url}/api/v1", timeout=20) as client:
            made = client.post("/users", json={"username": USERNAME, "password": PASSWORD})
            assert made.status_code == 201, made.text
        yield AmqpBroker(found.group(1), int(found.group(2)), USERNAME, PASSWORD)
        assert process.stop() == 0


@pytest.fixture(scope="session")
def amqp_url(amqp_broker: AmqpBroker) -> str:
    return amqp_broker.url
