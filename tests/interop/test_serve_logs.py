"""``buzon serve --log-format``: each connection's opening and closing as one line each,
with its id, peer, user, duration and close reason; JSON on request."""

from __future__ import annotations

import json
import re
import socket
import time
from pathlib import Path
from typing import Any

import stomp
from tests.interop.broker_process import BrokerProcess, broker_process

PASSWORD = "log-pass-123"
ENV = {"BUZON_ADMIN_PASSWORD": PASSWORD}


def json_lines(broker: BrokerProcess) -> list[dict[str, Any]]:
    """Every JSON log line the broker wrote so far (the banner lines are not JSON)."""
    entries = []
    for line in list(broker.banner):
        if line.startswith("{"):
            entry = json.loads(line)
            assert isinstance(entry, dict)
            entries.append(entry)
    return entries


def wait_for(broker: BrokerProcess, found: Any, within: float = 10.0) -> Any:
    """Poll the broker's output until ``found()`` returns something."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        result = found()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError("not logged: " + "".join(broker.banner[-20:]))


def closes(broker: BrokerProcess) -> list[dict[str, Any]]:
    return [e for e in json_lines(broker) if e["message"] == "connection closed"]


def refused_login(broker: BrokerProcess) -> None:
    """Log in with a wrong passcode over a raw socket; read until the broker closes."""
    with socket.create_connection((broker.host, broker.port), timeout=10) as raw:
        raw.sendall(b"CONNECT\naccept-version:1.2\nhost:/\nlogin:admin\npasscode:wrong\n\n\x00")
        while raw.recv(65536):
            pass


def test_json_lines_carry_the_connection_and_its_close_reason(tmp_path: Path) -> None:
    with broker_process("--log-format", "json", cwd=tmp_path, env=ENV) as broker:
        conn = stomp.Connection12([(broker.host, broker.port)], heartbeats=(0, 0))
        conn.connect("admin", PASSWORD, wait=True)
        conn.disconnect()
        refused_login(broker)
        wait_for(broker, lambda: len(closes(broker)) == 2)
        assert broker.stop() == 0

    opened = [e for e in json_lines(broker) if e["message"] == "connection opened"]
    by_reason = {e["reason"]: e for e in closes(broker)}
    assert sorted(by_reason) == ["auth_failed", "client_disconnect"]
    assert sorted(e["conn"] for e in opened) == sorted(e["conn"] for e in by_reason.values())
    for entry in (*opened, *by_reason.values()):
        assert entry["level"] == "INFO"
        assert entry["logger"] == "buzon.connections"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", entry["ts"])
        assert entry["peer"].startswith("127.0.0.1:")
        assert entry["transport"] == "tcp"
    done = by_reason["client_disconnect"]
    assert done["user"] == "admin"
    assert done["protocol"] == "stomp/1.2"
    assert 0 <= done["duration_s"] < 10
    assert "user" not in by_reason["auth_failed"]  # never logged in


def test_shutdown_is_the_reason_of_connections_open_at_a_stop(tmp_path: Path) -> None:
    with broker_process("--log-format", "json", cwd=tmp_path, env=ENV) as broker:
        conn = stomp.Connection12([(broker.host, broker.port)], heartbeats=(0, 0))
        conn.connect("admin", PASSWORD, wait=True)
        assert broker.stop() == 0
    (closed,) = closes(broker)
    assert closed["reason"] == "shutdown"
    assert closed["user"] == "admin"


def test_text_lines_end_with_the_fields(tmp_path: Path) -> None:
    with broker_process(cwd=tmp_path, env=ENV) as broker:
        conn = stomp.Connection12([(broker.host, broker.port)], heartbeats=(0, 0))
        conn.connect("admin", PASSWORD, wait=True)
        conn.disconnect()
        line = wait_for(
            broker, lambda: next((x for x in broker.banner if "connection closed" in x), None)
        )
        assert broker.stop() == 0
    assert re.search(
        r" INFO buzon\.connections connection closed conn=c\d+ peer=127\.0\.0\.1:\d+"
        r" transport=tcp protocol=stomp/1\.2 user=admin reason=client_disconnect"
        r" duration_s=[\d.]+$",
        line.rstrip("\n"),
    ), line
    assert not any(x.startswith("{") for x in broker.banner)
