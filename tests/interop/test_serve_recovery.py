"""A first start that cannot listen leaves nothing behind; a lost password can be reset."""

from __future__ import annotations

import os
import pty
import re
import select
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from buzon.client import ApiError, ManagementClient
from buzon.errors import ErrorCode
from tests.cli.helpers import one_error_line
from tests.interop.broker_process import broker_process

pytestmark = pytest.mark.timeout(180)  # two broker starts and a few commands, on a busy machine

GENERATED = re.compile(r"password \(generated, shown once\): (\S+)")


def _buzon(
    *args: str, cwd: Path, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "buzon", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env=env,
    )


def _at_a_terminal(args: list[str], answers: list[str]) -> str:
    """Run ``buzon ARGS`` on a pseudo-terminal, typing each answer after a prompt; return
    everything it showed (typed passwords are not echoed)."""
    pid, terminal = pty.fork()
    if pid == 0:  # the child: buzon, its stdin, stdout and stderr the terminal
        os.execv(sys.executable, [sys.executable, "-m", "buzon", *args])  # noqa: S606
    shown = b""
    deadline = time.monotonic() + 60
    pending = list(answers)
    while time.monotonic() < deadline:
        if pending and shown.endswith(b": "):  # a prompt, waiting
            os.write(terminal, pending.pop(0).encode() + b"\n")
            shown += b"\n"
        readable, _, _ = select.select([terminal], [], [], deadline - time.monotonic())
        if not readable:
            break
        try:
            chunk = os.read(terminal, 1024)
        except OSError:  # the child closed the terminal: it has exited
            break
        if not chunk:
            break
        shown += chunk
    _, status = os.waitpid(pid, 0)
    os.close(terminal)
    assert os.waitstatus_to_exitcode(status) == 0, shown
    return shown.decode().replace("\r", "").strip()


@pytest.mark.parametrize(
    ("flag", "listener"),
    [("--stomp-port", "STOMP"), ("--http-port", "HTTP"), ("--amqp-port", "AMQP")],
)
def test_a_port_in_use_stops_serve_before_anything_is_created(
    tmp_path: Path, flag: str, listener: str
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ports = {"--stomp-port": "0", "--http-port": "0", "--amqp-port": "0", flag: str(port)}
        args = [item for pair in ports.items() for item in pair]
        result = _buzon("serve", *args, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""  # no generated password shown for an account never made
    line = one_error_line(result)
    assert line.startswith(
        f"buzon: cannot listen on 127.0.0.1:{port} for {listener}: address already in use"
    )
    assert flag in line
    assert list(tmp_path.iterdir()) == []  # no buzon-data, no database, no admin


def test_an_admin_password_that_breaks_the_rules_stops_serve_before_anything_is_created(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "BUZON_ADMIN_PASSWORD": "short"}
    result = _buzon(
        "serve", "--stomp-port", "0", "--http-port", "0", "--amqp-port", "0", cwd=tmp_path, env=env
    )
    assert result.returncode == 2
    assert "passwords are 8 to 1024 characters" in one_error_line(result)
    assert list(tmp_path.iterdir()) == []


def test_set_password_resets_a_lost_admin_password_and_its_tokens(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    no_password = {"BUZON_ADMIN_PASSWORD": ""}
    with broker_process("--data-dir", str(data_dir), env=no_password, cwd=tmp_path) as broker:
        found = GENERATED.search("".join(broker.banner))
        assert found, broker.banner
        with ManagementClient(broker.url) as client:
            old_token = client.login("admin", found.group(1)).token
        assert broker.stop() == 0

    stranger = _buzon(
        "user", "set-password", "nobody", "--data-dir", str(data_dir), cwd=tmp_path,
        stdin="long-enough-password\n",
    )  # fmt: skip
    assert "no user 'nobody'" in one_error_line(stranger)
    # the generated password is forgotten: set a new one offline, from stdin
    reset = _buzon(
        "user", "set-password", "admin", "--data-dir", str(data_dir), cwd=tmp_path,
        stdin="a-new-admin-password\n",
    )  # fmt: skip
    assert reset.returncode == 0, reset.stderr
    assert reset.stdout == f"new password set for admin in {data_dir}; 1 login token revoked\n"

    with broker_process("--data-dir", str(data_dir), env=no_password, cwd=tmp_path) as broker:
        banner = "".join(broker.banner)
        assert f"buzon user set-password admin --data-dir {data_dir}" in banner
        with ManagementClient(broker.url) as client:
            assert client.login("admin", "a-new-admin-password").token
            assert client.whoami().username == "admin"
        with ManagementClient(broker.url, token=old_token) as client:
            with pytest.raises(ApiError) as refused:
                client.whoami()
            assert refused.value.code is ErrorCode.NOT_AUTHENTICATED
        # also while this broker runs, typed twice at a terminal: the next login uses it,
        # and the token of the login above is revoked
        typed = _at_a_terminal(
            ["user", "set-password", "admin", "--data-dir", str(data_dir)],
            ["a-third-admin-password", "a-third-admin-password"],
        )
        assert typed.endswith(f"new password set for admin in {data_dir}; 1 login token revoked")
        with ManagementClient(broker.url) as client:
            with pytest.raises(ApiError):
                client.login("admin", "a-new-admin-password")
            assert client.login("admin", "a-third-admin-password").token
        assert broker.stop() == 0


@pytest.mark.parametrize(
    ("args", "stdin", "expected"),
    [
        (("admin",), "long-enough-password\n", "no buzon database in"),
        (("admin",), "", "no new password on stdin"),
        (("admin",), "short\n", "passwords are 8 to 1024 characters"),
    ],
)
def test_set_password_problems_are_one_line(
    tmp_path: Path, args: tuple[str, ...], stdin: str, expected: str
) -> None:
    result = _buzon(
        "user", "set-password", *args, "--data-dir", "absent", cwd=tmp_path, stdin=stdin
    )
    assert result.returncode == 2
    assert expected in one_error_line(result)
    assert not (tmp_path / "absent").exists()  # never creates a data directory


def test_set_password_refuses_bytes_that_are_not_utf8(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "buzon", "user", "set-password", "admin", "--data-dir", "absent"],
        input=b"\xff\xfelong-enough-password\n",
        capture_output=True,
        timeout=60,
        cwd=tmp_path,
    )
    text = subprocess.CompletedProcess(
        result.args, result.returncode, result.stdout.decode(), result.stderr.decode()
    )
    assert result.returncode == 2
    assert one_error_line(text) == "buzon: the new password is not UTF-8 text"
