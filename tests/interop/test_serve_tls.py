"""``buzon serve`` with TLS as an operator runs it: bad files are one line, stomp.py connects."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import stomp
from tests.certificates import TlsFiles
from tests.interop.broker_process import broker_process
from tests.interop.test_stomp_py import Collector

PASSWORD = "tls-admin-password"


def serve(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "buzon", "serve", "--data-dir", str(cwd / "data"), *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=cwd,
    )


def test_a_certificate_without_its_key_is_one_readable_line(tls: TlsFiles, tmp_path: Path) -> None:
    result = serve(tmp_path, "--tls-cert", str(tls.cert))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "buzon: --tls-cert needs --tls-key too (BUZON_TLS_KEY, or tls-key in buzon.toml)"
    ]


def test_an_unreadable_certificate_is_one_readable_line(tls: TlsFiles, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.pem"
    result = serve(tmp_path, "--tls-cert", str(missing), "--tls-key", str(tls.key))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"buzon: cannot read TLS certificate {missing}: No such file or directory"
    ]
    assert not (tmp_path / "data").exists()


def test_stomp_py_over_tls_and_the_banner(tls: TlsFiles, tmp_path: Path) -> None:
    args = ("--tls-cert", str(tls.cert), "--tls-key", str(tls.key))
    ports = ("--stomp-tls-port", "0", "--https-port", "0")
    env = {"BUZON_ADMIN_PASSWORD": PASSWORD}
    with broker_process(*args, *ports, cwd=tmp_path, env=env) as broker:
        found = re.search(
            r"stomp\+ssl://127\.0\.0\.1:(\d+)  https://127\.0\.0\.1:\d+/api/v1", broker.banner[-1]
        )
        assert found, broker.banner
        port = int(found.group(1))
        conn = stomp.Connection12([("127.0.0.1", port)], heartbeats=(0, 0))
        conn.set_ssl(for_hosts=[("127.0.0.1", port)], ca_certs=str(tls.ca))
        listener = Collector()
        conn.set_listener("collector", listener)
        conn.connect("admin", PASSWORD, wait=True)
        conn.subscribe("/queue/tls-interop", id="1", ack="auto")
        conn.send("/queue/tls-interop", "over tls, from stomp.py")
        (message,) = listener.wait_for(1)
        conn.disconnect()
        assert message.body == "over tls, from stomp.py"
        assert broker.stop() == 0


def test_no_plaintext_without_tls_is_one_readable_line(tmp_path: Path) -> None:
    result = serve(tmp_path, "--no-plaintext")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "buzon: --no-plaintext needs --tls-cert and --tls-key: without TLS nothing would listen"
    ]
