"""``buzon serve`` as a user runs it: banner, generated password, config errors, clean stop."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import stomp
from tests.interop.broker_process import broker_process

README = Path(__file__).resolve().parents[2] / "README.md"


def test_generated_password_is_printed_once_and_works(tmp_path: Path) -> None:
    with broker_process(cwd=tmp_path, env={"BUZON_ADMIN_PASSWORD": ""}) as broker:
        text = "".join(broker.banner)
        found = re.search(r"password \(generated, shown once\): (\S+)", text)
        assert found, text
        conn = stomp.Connection12([(broker.host, broker.port)], heartbeats=(0, 0))
        conn.connect("admin", found.group(1), wait=True)
        assert conn.is_connected()
        conn.disconnect()
        assert broker.stop() == 0


def test_sigint_and_sigterm_stop_within_seconds(tmp_path: Path) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        with broker_process(cwd=tmp_path, env={"BUZON_ADMIN_PASSWORD": "pw-123456"}) as broker:
            conn = stomp.Connection12([(broker.host, broker.port)], heartbeats=(0, 0))
            conn.connect("admin", "pw-123456", wait=True)
            started = time.monotonic()
            assert broker.stop(sig) == 0
            assert time.monotonic() - started < 5


def test_invalid_setting_is_one_readable_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "buzon", "serve", "--stomp-port", "seventy"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "buzon: invalid --stomp-port 'seventy': not a number"
    ]


def test_secrets_have_no_flag_and_usage_errors_are_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "buzon", "serve", "--admin-password", "in-the-process-list"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "unrecognized arguments: --admin-password" in line


def test_environment_and_toml_feed_settings(tmp_path: Path) -> None:
    (tmp_path / "buzon.toml").write_text('admin-user = "boss"\nlog-level = "warning"\n')
    with broker_process(cwd=tmp_path, env={"BUZON_ADMIN_PASSWORD": "toml-pass-1"}) as broker:
        conn = stomp.Connection12([(broker.host, broker.port)], heartbeats=(0, 0))
        conn.connect("boss", "toml-pass-1", wait=True)
        assert conn.is_connected()
        conn.disconnect()


def test_readme_first_message_snippet_runs(tmp_path: Path) -> None:
    snippet = re.search(r"```python\n(.*?)```", README.read_text(), re.S)
    assert snippet
    with broker_process(cwd=tmp_path, env={"BUZON_ADMIN_PASSWORD": "readme-pass"}) as broker:
        code = snippet.group(1).replace("61613", str(broker.port))
        result = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=30,
            env={"BUZON_PASSWORD": "readme-pass", "PATH": "/usr/bin:/bin"},
        )
        assert result.returncode == 0, result.stderr
        assert "my first message" in result.stdout


def test_readme_documents_every_serve_setting() -> None:
    from buzon.server.config import OPTIONS

    text = README.read_text()
    for option in OPTIONS:
        assert f"`{option.env}`" in text
        if option.secret:
            assert f"`{option.flag}`" not in text  # secrets have no flag
        else:
            assert f"`{option.flag}`" in text
