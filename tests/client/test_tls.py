"""The SDK over TLS: stomp+ssl:// and https://, certificates verified unless told whom to trust."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from buzon.auth import SecretHasher
from buzon.client import AsyncClient, BuzonConnectionError, Client, ManagementClient
from buzon.errors import RequestError
from buzon.server.app import BuzonServer
from tests.certificates import TlsFiles, make_tls_files
from tests.server.harness import ADMIN, PASSWORD, running_server


@pytest.fixture
async def server(hasher: SecretHasher, tls: TlsFiles) -> AsyncIterator[BuzonServer]:
    async with running_server(
        hasher, tls_cert=tls.cert, tls_key=tls.key, stomp_tls_port=0, https_port=0
    ) as server:
        yield server


def stomp_ssl(server: BuzonServer, host: str = "127.0.0.1") -> str:
    return f"stomp+ssl://{ADMIN}:{PASSWORD}@{host}:{server.stomp_tls_port}"


async def test_publish_and_consume_over_stomp_ssl_with_a_private_ca(
    server: BuzonServer, tls: TlsFiles
) -> None:
    async with AsyncClient(stomp_ssl(server, "localhost"), ca_file=tls.ca) as client:
        jobs = await client.subscribe("/queue/tls-jobs", ack="client-individual")
        await client.publish("/queue/tls-jobs", "sealed")
        message = await jobs.get(timeout=5)
        assert message.text == "sealed"
        await message.ack(confirm=True)
    assert server.broker.statistics().queues[0].acked == 1


async def test_the_blocking_client_takes_an_ssl_context(server: BuzonServer, tls: TlsFiles) -> None:
    def roundtrip() -> str:
        context = ssl.create_default_context(cafile=tls.ca)
        with Client(stomp_ssl(server), ssl=context) as client:
            channel = client.subscribe("/topic/tls-news")
            client.publish("/topic/tls-news", "hello")
            return channel.get(timeout=5).text

    assert await asyncio.to_thread(roundtrip) == "hello"


async def test_an_untrusted_certificate_fails_fast_with_a_clear_error(
    server: BuzonServer,
) -> None:
    started = time.monotonic()
    with pytest.raises(BuzonConnectionError) as raised:
        async with AsyncClient(stomp_ssl(server), timeout=5):
            pass
    assert time.monotonic() - started < 2
    assert "TLS certificate verification failed" in str(raised.value)
    assert "give its certificate as the CA file" in str(raised.value)


async def test_the_host_name_is_checked(hasher: SecretHasher, tmp_path: Path) -> None:
    elsewhere = make_tls_files(tmp_path, "broker.example")
    async with running_server(
        hasher, tls_cert=elsewhere.cert, tls_key=elsewhere.key, stomp_tls_port=0, https_port=0
    ) as server:
        for host in ("localhost", "127.0.0.1"):
            with pytest.raises(BuzonConnectionError, match="mismatch, certificate is not valid"):
                async with AsyncClient(stomp_ssl(server, host), ca_file=elsewhere.ca, timeout=5):
                    pass


async def test_tls_to_a_plain_port_says_so(server: BuzonServer, tls: TlsFiles) -> None:
    url = f"stomp+ssl://{ADMIN}:{PASSWORD}@127.0.0.1:{server.stomp_port}"
    with pytest.raises(BuzonConnectionError, match="TLS handshake failed"):
        async with AsyncClient(url, ca_file=tls.ca, timeout=5):
            pass


async def test_the_management_client_over_https(server: BuzonServer, tls: TlsFiles) -> None:
    def manage() -> int:
        with ManagementClient(f"https://127.0.0.1:{server.https_port}", ca_file=tls.ca) as api:
            api.login(ADMIN, PASSWORD)
            api.create_queue("tls-invoices")
            api.publish("/queue/tls-invoices", "invoice 1")
            return api.get_queue("tls-invoices").depth

    assert await asyncio.to_thread(manage) == 1

    def untrusted() -> None:
        with ManagementClient(f"https://127.0.0.1:{server.https_port}") as api:
            api.healthz()

    with pytest.raises(BuzonConnectionError, match="TLS certificate verification failed"):
        await asyncio.to_thread(untrusted)


def construct(url: str, **options: Any) -> None:
    """Build the client that fits ``url``; nothing is connected."""
    if url.startswith("http"):
        ManagementClient(url, **options).close()
    else:
        AsyncClient(url, **options)


@pytest.mark.parametrize(
    ("url", "option", "expected"),
    [
        ("stomp://127.0.0.1:61613", "ca", "need a TLS URL"),
        ("http://127.0.0.1:8180", "ca", "need a TLS URL"),
        ("stomp+ssl://127.0.0.1:61614", "missing", "cannot read CA file"),
        ("stomp+ssl://127.0.0.1:61614", "junk", "holds no PEM certificate"),
        ("https://127.0.0.1:8543", "ca and context", "not both"),
    ],
)
def test_tls_options_that_cannot_work_are_refused_at_once(
    tls: TlsFiles, tmp_path: Path, url: str, option: str, expected: str
) -> None:
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    options: dict[str, dict[str, Any]] = {
        "ca": {"ca_file": tls.ca},
        "missing": {"ca_file": tmp_path / "missing.pem"},
        "junk": {"ca_file": tmp_path / "junk.pem"},
        "ca and context": {"ca_file": tls.ca, "ssl": ssl.create_default_context()},
    }
    with pytest.raises(RequestError, match=expected):
        construct(url, **options[option])
