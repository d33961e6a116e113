"""The messaging commands find the STOMP port of the broker ``--url`` names, and say which
address refused a login, against real ``buzon serve`` processes on non-default ports."""

from __future__ import annotations

import socket
import subprocess
import threading
from pathlib import Path

import httpx

from buzon import __version__
from buzon.client import ManagementClient
from tests.cli.helpers import ADMIN_PASSWORD, Cli, free_port, one_error_line
from tests.interop.broker_process import BrokerProcess, broker_process


def _run(cli: Cli, *args: str, password: str) -> subprocess.CompletedProcess[str]:
    """``buzon ARGS --url URL`` as the admin, with no STOMP address given anywhere."""
    env = {k: v for k, v in cli.env(BUZON_PASSWORD=password).items() if k != "BUZON_STOMP_URL"}
    return cli.run(*args, "--username", "admin", env=env)


def test_url_alone_publishes_and_consumes_through_that_brokers_stomp_port(
    broker: BrokerProcess, admin_client: ManagementClient, tmp_path: Path
) -> None:
    assert broker.port != 61613  # a free port, not the default one
    admin_client.create_queue("found")
    cli = Cli(broker.url, tmp_path / "config")
    published = _run(cli, "publish", "--queue", "found", "via info", password=ADMIN_PASSWORD)
    assert published.returncode == 0, published.stderr
    assert [m.body for m in admin_client.peek("found")] == [b"via info"]
    consumed = _run(cli, "consume", "found", "--max", "1", password=ADMIN_PASSWORD)
    assert consumed.returncode == 0, consumed.stderr
    assert consumed.stdout == "via info\n"


def test_a_wrong_password_is_the_address_refusing_the_login(
    broker: BrokerProcess, tmp_path: Path
) -> None:
    cli = Cli(broker.url, tmp_path / "config")
    result = _run(cli, "consume", "found", "--max", "1", password="not-the-password")
    assert result.returncode == 2  # docs/cli.md: every failure exits 2
    line = one_error_line(result)
    assert line == f"buzon: {broker.host}:{broker.port} refused the login: authentication failed"


def test_another_stomp_servers_refusal_is_reported_in_its_own_words(tmp_path: Path) -> None:
    """What the CLI printed when a foreign broker held 61613: "internal error: ..." and an
    empty line. A STOMP server that is not buzon, answering CONNECT as RabbitMQ does."""
    refusal = b"Access refused for user 'admin'"
    error = b"ERROR\nmessage:" + refusal + b"\ncontent-type:text/plain\n\n" + refusal + b"\n\0"
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]

        def answer() -> None:
            peer, _ = server.accept()
            with peer:
                received = b"x"
                while received and b"\0" not in received:  # the whole CONNECT frame
                    received = peer.recv(4096)
                peer.sendall(error)

        thread = threading.Thread(target=answer)
        thread.start()
        cli = Cli(f"http://127.0.0.1:{free_port()}", tmp_path / "config")
        env = cli.env(BUZON_PASSWORD="whatever-it-is", BUZON_STOMP_URL=f"stomp://127.0.0.1:{port}")
        result = cli.run("consume", "x", "--username", "admin", env=env)
        thread.join(10)
    assert result.returncode == 2
    assert one_error_line(result) == (
        f"buzon: 127.0.0.1:{port} refused the login: Access refused for user 'admin'"
    )


def test_an_unreachable_url_is_one_line_naming_it(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = _run(Cli(url, tmp_path / "config"), "consume", "x", password="whatever-it-is")
    assert result.returncode == 2
    assert one_error_line(result).startswith(f"buzon: cannot reach the broker at {url}: ")


def test_info_needs_no_login_and_is_in_the_openapi_document(broker: BrokerProcess) -> None:
    info = httpx.get(f"{broker.url}/api/v1/info", timeout=10)
    assert info.status_code == 200
    assert info.json() == {
        "version": __version__,
        "stomp": [f"stomp://{broker.host}:{broker.port}"],
    }
    spec = httpx.get(f"{broker.url}/api/v1/openapi.json", timeout=10).json()
    operation = spec["paths"]["/api/v1/info"]["get"]
    assert "security" not in operation
    assert "200" in operation["responses"]


def test_a_broker_on_every_interface_announces_the_host_it_was_asked_on(tmp_path: Path) -> None:
    env = {"BUZON_ADMIN_PASSWORD": ADMIN_PASSWORD}
    with broker_process("--host", "0.0.0.0", env=env, cwd=tmp_path) as served:
        url = f"http://127.0.0.1:{served.http_port}/api/v1/info"
        assert httpx.get(url, timeout=10).json()["stomp"] == [f"stomp://127.0.0.1:{served.port}"]
        named = httpx.get(url, headers={"Host": "broker.example:8180"}, timeout=10)
        assert named.json()["stomp"] == [f"stomp://broker.example:{served.port}"]
