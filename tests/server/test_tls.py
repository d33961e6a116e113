"""TLS listeners: STOMP over TLS and HTTPS beside the plain ones, with their failure modes."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pika
import pytest
import trustme
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from buzon.auth import SecretHasher
from buzon.server.app import BuzonServer
from buzon.server.config import ConfigError, Settings
from buzon.stomp import Connected, Receipt, Send
from tests.certificates import TlsFiles
from tests.server.harness import ADMIN, PASSWORD, Client, running_server

HANDSHAKE_TIMEOUT = 0.5


@pytest.fixture
async def server(hasher: SecretHasher, tls: TlsFiles) -> AsyncIterator[BuzonServer]:
    async with running_server(
        hasher,
        tls_cert=tls.cert,
        tls_key=tls.key,
        stomp_tls_port=0,
        https_port=0,
        handshake_timeout=HANDSHAKE_TIMEOUT,
    ) as server:
        yield server


def trusting(tls: TlsFiles) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=tls.ca)


async def tls_client(server: BuzonServer, tls: TlsFiles) -> Client:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", server.stomp_tls_port, ssl=trusting(tls), server_hostname="127.0.0.1"
    )
    client = Client(reader, writer)
    client.conn.connect(login=ADMIN, passcode=PASSWORD, host="/")
    await client.flush()
    await client.expect(Connected)
    return client


async def test_stomp_over_tls_speaks_the_same_stomp(server: BuzonServer, tls: TlsFiles) -> None:
    client = await tls_client(server, tls)
    assert client.writer.get_extra_info("ssl_object").version() in ("TLSv1.2", "TLSv1.3")
    await client.send(Send("/queue/secure", (), b"over tls", "r1"))
    await client.receipt("r1")
    assert server.broker.statistics().queues[0].depth == 1
    # the plain port keeps working beside it
    plain = await Client.connected(server.stomp_port)
    await plain.send(Send("/queue/secure", (), b"in clear", "r2"))
    assert isinstance(await plain.next_event(), Receipt)
    # the connections listing tells them apart
    assert sorted(c.transport_name for c in server.connections) == ["tcp", "tls"]


async def test_stomp_over_websocket_on_https(server: BuzonServer, tls: TlsFiles) -> None:
    url = f"wss://127.0.0.1:{server.https_port}/ws"
    async with connect(url, ssl=trusting(tls), subprotocols=[Subprotocol("v12.stomp")]) as ws:
        await ws.send(
            f"CONNECT\naccept-version:1.2\nhost:/\nlogin:{ADMIN}\npasscode:{PASSWORD}\n\n\x00"
        )
        answer = await asyncio.wait_for(ws.recv(decode=False), 5)
        assert answer.startswith(b"CONNECTED\n")
        assert [c.transport_name for c in server.connections] == ["websocket+tls"]


async def test_https_serves_the_api_and_plain_http_still_works(
    server: BuzonServer, tls: TlsFiles
) -> None:
    async with httpx.AsyncClient(verify=trusting(tls)) as http:
        secure = await http.get(f"https://127.0.0.1:{server.https_port}/api/v1/healthz")
        plain = await http.get(f"http://127.0.0.1:{server.http_port}/api/v1/healthz")
    assert (secure.status_code, plain.status_code) == (200, 200)


async def plain_text(port: int, data: bytes) -> tuple[bytes, float]:
    """Send ``data`` without TLS; return what came back before the broker closed, and when."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    try:
        async with asyncio.timeout(5):
            received = await reader.read()
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return received, time.monotonic() - started


async def test_a_client_that_never_starts_tls_is_cut_at_the_handshake_limit(
    server: BuzonServer, tls: TlsFiles
) -> None:
    _, elapsed = await plain_text(server.stomp_tls_port, b"")
    assert HANDSHAKE_TIMEOUT - 0.1 < elapsed < HANDSHAKE_TIMEOUT + 1.5
    # a plain-text STOMP client is refused at once, and the broker carries on
    received, elapsed = await plain_text(server.stomp_tls_port, b"CONNECT\nhost:/\n\n\x00")
    assert b"CONNECTED" not in received
    assert elapsed < HANDSHAKE_TIMEOUT
    client = await tls_client(server, tls)
    await client.send(Send("/queue/after", (), b"still here", "r1"))
    await client.receipt("r1")


async def test_amqp_over_tls(server: BuzonServer, tls: TlsFiles) -> None:
    (url,) = [url for url in server.urls() if url.startswith("amqps://")]
    parameters = pika.ConnectionParameters(
        "127.0.0.1",
        int(url.rsplit(":", 1)[1]),
        "/",
        pika.PlainCredentials(ADMIN, PASSWORD),
        ssl_options=pika.SSLOptions(trusting(tls), "127.0.0.1"),
        connection_attempts=1,
        socket_timeout=5,
    )

    def round_trip() -> object:
        connection = pika.BlockingConnection(parameters)
        channel = connection.channel()
        channel.queue_declare("sealed-amqp")
        channel.confirm_delivery()
        channel.basic_publish("", "sealed-amqp", b"over amqps")
        _, _, body = channel.basic_get("sealed-amqp", auto_ack=True)
        connection.close()
        return body

    assert await asyncio.to_thread(round_trip) == b"over amqps"


async def test_tls_listeners_exist_only_with_a_certificate(hasher: SecretHasher) -> None:
    async with running_server(hasher) as server:
        with pytest.raises(RuntimeError):
            _ = server.stomp_tls_port
        with pytest.raises(RuntimeError):
            _ = server.https_port


def _encrypted_key(tls: TlsFiles, path: Path) -> Path:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(tls.key.read_bytes(), None)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )
    return path


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("cert only", "--tls-cert needs --tls-key too (BUZON_TLS_KEY, or tls-key in buzon.toml)"),
        ("key only", "--tls-key needs --tls-cert too (BUZON_TLS_CERT, or tls-cert in buzon.toml)"),
        ("missing cert", "cannot read TLS certificate {missing}: No such file or directory"),
        ("not a certificate", "TLS certificate {junk} holds no PEM certificate"),
        ("not a key", "TLS key {junk} is not a PEM private key"),
        ("key of another certificate", "TLS key {other} does not belong to the certificate {cert}"),
        ("encrypted key", "TLS key {encrypted} is protected by a passphrase"),
    ],
)
async def test_a_bad_certificate_or_key_is_one_readable_line_before_anything_starts(
    hasher: SecretHasher, tls: TlsFiles, tmp_path: Path, case: str, expected: str
) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not PEM at all\n")
    other = tmp_path / "other-key.pem"
    trustme.CA().issue_cert("127.0.0.1").private_key_pem.write_to_path(str(other))
    paths = {
        "cert only": (tls.cert, None),
        "key only": (None, tls.key),
        "missing cert": (tmp_path / "missing.pem", tls.key),
        "not a certificate": (junk, tls.key),
        "not a key": (tls.cert, junk),
        "key of another certificate": (tls.cert, other),
        "encrypted key": (tls.cert, _encrypted_key(tls, tmp_path / "encrypted.pem")),
    }
    cert, key = paths[case]
    settings = Settings(
        stomp_port=0, http_port=0, amqp_port=0, amqps_port=0, tls_cert=cert, tls_key=key
    )
    server = BuzonServer(dataclasses.replace(settings, data_dir=tmp_path / "data"), hasher=hasher)
    with pytest.raises(ConfigError) as raised:
        await server.start()
    names = {
        "missing": tmp_path / "missing.pem",
        "junk": junk,
        "other": other,
        "cert": tls.cert,
        "encrypted": tmp_path / "encrypted.pem",
    }
    message = str(raised.value)
    assert message.startswith(expected.format(**names))
    assert "\n" not in message
    assert not (tmp_path / "data").exists()  # failed before the store was opened


async def test_no_plaintext_leaves_only_the_tls_listeners(
    hasher: SecretHasher, tls: TlsFiles
) -> None:
    async with running_server(
        hasher,
        tls_cert=tls.cert,
        tls_key=tls.key,
        stomp_tls_port=0,
        https_port=0,
        plaintext=False,
    ) as server:
        assert [url.split(":")[0] for url in server.urls()] == ["stomp+ssl", "https", "amqps"]
        with pytest.raises(RuntimeError, match="no plain STOMP listener"):
            _ = server.stomp_port
        client = await tls_client(server, tls)
        await client.send(Send("/queue/only-tls", (), b"sealed", "r1"))
        await client.receipt("r1")


async def test_no_plaintext_without_a_certificate_is_refused(
    hasher: SecretHasher, tmp_path: Path
) -> None:
    settings = Settings(
        stomp_port=0,
        http_port=0,
        amqp_port=0,
        amqps_port=0,
        plaintext=False,
        data_dir=tmp_path / "data",
    )
    with pytest.raises(ConfigError, match="--no-plaintext needs --tls-cert and --tls-key"):
        await BuzonServer(settings, hasher=hasher).start()
    assert not (tmp_path / "data").exists()
