"""The ``buzon`` command against a broker that serves TLS with a private CA (``--ca-file``)."""

from __future__ import annotations

import argparse
import http.server
import json
import re
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from buzon.cli.stomp_login import stomp_address
from tests.certificates import TlsFiles, make_tls_files
from tests.cli.helpers import ADMIN_PASSWORD, Cli, one_error_line
from tests.interop.broker_process import BrokerProcess, broker_process

TLS_URLS = re.compile(r"stomp\+ssl://([^:]+):(\d+)  https://[^:]+:(\d+)/api/v1")


@dataclass(frozen=True)
class TlsBroker:
    process: BrokerProcess
    files: TlsFiles
    https_url: str
    stomp_ssl_url: str


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    files = make_tls_files(tmp_path_factory.mktemp("tls"))
    tls_args = ("--tls-cert", str(files.cert), "--tls-key", str(files.key))
    with broker_process(
        *tls_args,
        "--stomp-tls-port",
        "0",
        "--https-port",
        "0",
        env={"BUZON_ADMIN_PASSWORD": ADMIN_PASSWORD},
        cwd=tmp_path_factory.mktemp("broker"),
    ) as process:
        found = TLS_URLS.search("".join(process.banner))
        assert found, process.banner
        host, stomp_tls_port, https_port = found.groups()
        yield TlsBroker(
            process,
            files,
            f"https://{host}:{https_port}",
            f"stomp+ssl://{host}:{stomp_tls_port}",
        )
        assert process.stop() == 0


def test_log_in_publish_and_consume_over_tls_with_a_ca_file(
    tls_broker: TlsBroker, tmp_path: Path
) -> None:
    cli = Cli(tls_broker.https_url, tmp_path / "config")
    ca = ("--ca-file", str(tls_broker.files.ca))
    login = ("--username", "admin", "--password-stdin")
    out = cli.ok("user", "login", *login, *ca, stdin=f"{ADMIN_PASSWORD}\n")
    assert out.startswith(f"logged in to {tls_broker.https_url} as admin")
    cli.ok("queue", "create", "tls-jobs", *ca)
    messaging = cli.env(BUZON_STOMP_URL=tls_broker.stomp_ssl_url, BUZON_PASSWORD=ADMIN_PASSWORD)
    published = cli.run("publish", "--queue", "tls-jobs", "sealed", *ca, env=messaging)
    assert published.returncode == 0, published.stderr
    assert published.stdout.startswith("published 1 message to /queue/tls-jobs")
    # the CA may also come from the environment
    consumed = cli.run(
        "consume",
        "tls-jobs",
        "--max",
        "1",
        "--json",
        env={**messaging, "BUZON_CA_FILE": str(tls_broker.files.ca)},
    )
    assert consumed.returncode == 0, consumed.stderr
    assert json.loads(consumed.stdout)["body"] == "sealed"


def test_without_the_ca_both_protocols_fail_with_one_line(
    tls_broker: TlsBroker, tmp_path: Path
) -> None:
    cli = Cli(tls_broker.https_url, tmp_path / "config")
    line = cli.fails("user", "login", "--username", "admin", "--password-stdin", stdin="x\n")
    assert "TLS certificate verification failed" in line
    messaging = cli.env(BUZON_STOMP_URL=tls_broker.stomp_ssl_url, BUZON_PASSWORD=ADMIN_PASSWORD)
    result = cli.run("publish", "--queue", "tls-jobs", "x", "--username", "admin", env=messaging)
    line = one_error_line(result)
    assert f"cannot reach the broker at {tls_broker.stomp_ssl_url}" in line
    assert "TLS certificate verification failed" in line


def test_an_https_broker_url_means_stomp_over_tls_by_default(
    tls_broker: TlsBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both addresses come from the broker's GET /info: TLS for an https URL."""
    monkeypatch.delenv("BUZON_STOMP_URL", raising=False)
    ca = str(tls_broker.files.ca)
    secure = argparse.Namespace(stomp_url=None, url=tls_broker.https_url, ca_file=ca)
    plain = argparse.Namespace(stomp_url=None, url=tls_broker.process.url, ca_file=None)
    assert stomp_address(secure) == (tls_broker.stomp_ssl_url, None)
    assert stomp_address(plain) == (f"stomp://127.0.0.1:{tls_broker.process.port}", None)


def test_an_https_url_never_falls_back_to_plain_stomp(tmp_path: Path) -> None:
    """TLS ended by a proxy in front of a plain broker: its GET /info announces only a plain
    STOMP listener, which would carry the password unencrypted; nothing connects to it."""
    files = make_tls_files(tmp_path)
    plain_stomp = socket.create_server(("127.0.0.1", 0))
    plain_stomp.settimeout(0)
    info = json.dumps(
        {"version": "0", "stomp": [f"stomp://127.0.0.1:{plain_stomp.getsockname()[1]}"]}
    )

    class Info(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(info.encode())

    with plain_stomp, http.server.ThreadingHTTPServer(("127.0.0.1", 0), Info) as proxy:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(files.cert, files.key)
        proxy.socket = context.wrap_socket(proxy.socket, server_side=True)
        threading.Thread(target=proxy.serve_forever, daemon=True).start()
        cli = Cli(f"https://127.0.0.1:{proxy.server_address[1]}", tmp_path / "config")
        env = {
            k: v for k, v in cli.env(BUZON_PASSWORD="secret-pass").items() if k != "BUZON_STOMP_URL"
        }
        result = cli.run("consume", "x", "--username", "admin", "--ca-file", str(files.ca), env=env)
        proxy.shutdown()
        with pytest.raises(BlockingIOError):  # nobody knocked
            plain_stomp.accept()
    assert "announces no TLS STOMP listener" in one_error_line(result)
