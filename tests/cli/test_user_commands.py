"""``buzon user ...`` as a script runs it, against a real broker."""

from __future__ import annotations

import json
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from buzon.cli.session import Credentials, SavedLogin
from buzon.client import ApiError, ManagementClient
from buzon.errors import ErrorCode
from tests.cli.helpers import ADMIN_PASSWORD, Cli, free_port, one_error_line

PASSWORD = "cli-user-password"

MakeCli = Callable[[str], Cli]


def test_login_keeps_a_private_token_that_logout_revokes(cli_for: MakeCli) -> None:
    alice = cli_for("alice")
    stdin = PASSWORD + "\n"
    registered = alice.ok(
        "user", "register", "--username", "alice", "--password-stdin", stdin=stdin
    )
    assert "registered alice" in registered
    alice.ok("user", "login", "--username", "alice", "--password-stdin", stdin=stdin)
    file = alice.config_dir / "credentials.json"
    assert stat.S_IMODE(alice.config_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    saved = json.loads(file.read_text())
    assert list(saved) == [alice.url]
    assert saved[alice.url]["username"] == "alice"
    assert "alice" in alice.ok("user", "whoami")
    whoami = json.loads(alice.ok("user", "whoami", "--json"))
    assert (whoami["username"], whoami["role"], whoami["disabled"]) == ("alice", "user", False)

    assert f"logged out of {alice.url}" in alice.ok("user", "logout")
    assert json.loads(file.read_text()) == {}
    line = alice.fails("user", "whoami")
    assert f"not logged in to {alice.url}" in line
    assert "buzon user login" in line
    with ManagementClient(alice.url, token=saved[alice.url]["token"]) as stale:
        with pytest.raises(ApiError) as caught:
            stale.whoami()
        assert caught.value.code is ErrorCode.NOT_AUTHENTICATED


def test_register_prints_json_and_refuses_a_taken_name(cli_for: MakeCli) -> None:
    bob = cli_for("bob")
    args = ("user", "register", "--username", "bob", "--password-stdin", "--json")
    shown = json.loads(bob.ok(*args, stdin=PASSWORD + "\n"))
    assert (shown["username"], shown["role"]) == ("bob", "user")
    assert (
        bob.fails(*args, stdin=PASSWORD + "\n") == "buzon: username already taken: 'bob' is taken"
    )


def test_admin_lists_disables_enables_and_deletes_users(
    cli_for: MakeCli, admin_client: ManagementClient
) -> None:
    admin, carol = cli_for("admin"), cli_for("carol")
    login_args = ("user", "login", "--username", "admin", "--password-stdin", "--json")
    out = admin.ok(*login_args, stdin=ADMIN_PASSWORD + "\n")
    assert json.loads(out)["username"] == "admin"
    admin_client.register("carol", PASSWORD)
    carol.login("carol", PASSWORD)
    assert "carol" in admin.ok("user", "list")
    listed = {u["username"]: u for u in json.loads(admin.ok("user", "list", "--json"))}
    assert listed["admin"]["role"] == "admin"
    assert listed["carol"]["disabled"] is False

    assert json.loads(admin.ok("user", "disable", "carol", "--json"))["disabled"] is True
    hint = carol.fails("user", "whoami")
    assert "no longer accepts your login" in hint
    assert "buzon user login" in hint
    login = ("user", "login", "--username", "carol", "--password-stdin")
    assert carol.fails(*login, stdin=PASSWORD + "\n") == "buzon: account disabled"
    assert "enabled carol" in admin.ok("user", "enable", "carol")
    carol.login("carol", PASSWORD)
    assert "deleted user carol" in admin.ok("user", "delete", "carol")
    assert "carol" not in [u.username for u in admin_client.list_users()]


def test_a_normal_user_cannot_manage_users(
    cli_for: MakeCli, admin_client: ManagementClient
) -> None:
    dave = cli_for("dave")
    admin_client.register("dave", PASSWORD)
    dave.login("dave", PASSWORD)
    for action in (("list",), ("disable", "admin"), ("delete", "admin")):
        assert dave.fails("user", *action) == "buzon: access denied: admins only"
    assert not admin_client.whoami().disabled


def test_wrong_password_is_one_line_and_stores_nothing(cli_for: MakeCli) -> None:
    eve = cli_for("eve")
    line = eve.fails(
        "user", "login", "--username", "admin", "--password-stdin", stdin="not-the-password\n"
    )
    assert line == "buzon: authentication failed"
    assert not (eve.config_dir / "credentials.json").exists()


def test_a_password_that_is_not_utf8_is_one_line(cli_for: MakeCli) -> None:
    gina = cli_for("gina")
    login = ["user", "login", "--username", "admin", "--password-stdin", "--url", gina.url]
    result = subprocess.run(
        [sys.executable, "-m", "buzon", *login],
        input=b"\xff\xfenot-utf8\n",
        capture_output=True,
        timeout=30,
        env=gina.env(),
    )
    assert (result.returncode, result.stderr) == (2, b"buzon: the password is not UTF-8 text\n")
    assert not (gina.config_dir / "credentials.json").exists()


def test_passwords_never_come_from_arguments_or_a_missing_terminal(cli_for: MakeCli) -> None:
    frank = cli_for("frank")
    as_argument = frank.run("user", "login", "--username", "admin", "--password", ADMIN_PASSWORD)
    assert as_argument.returncode == 2
    assert "unrecognized arguments: --password" in as_argument.stderr
    no_terminal = frank.fails("user", "login", "--username", "admin")
    assert no_terminal == (
        "buzon: no terminal to ask for the password; pipe it in with --password-stdin"
    )
    assert frank.fails("user", "register", "--password-stdin") == (
        "buzon: give --username (there is no terminal to ask on)"
    )


def test_unreachable_and_invalid_urls_are_one_line(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    nowhere = Cli(url, tmp_path)
    line = nowhere.fails("user", "login", "--username", "admin", "--password-stdin", stdin="x\n")
    assert line.startswith(f"buzon: cannot reach the broker at {url}: ")
    later = datetime.now(UTC) + timedelta(hours=1)
    Credentials(tmp_path).save(url, SavedLogin("admin", "bzt_unused", later))
    assert nowhere.fails("queue", "list").startswith(f"buzon: cannot reach the broker at {url}: ")
    invalid = Cli("not-a-url", tmp_path).fails("queue", "list")
    assert "broker URL 'not-a-url' is not http(s)://HOST[:PORT]" in invalid


def test_an_expired_login_gives_the_login_hint(cli_for: MakeCli) -> None:
    ivan = cli_for("ivan")
    earlier = datetime.now(UTC) - timedelta(seconds=1)
    Credentials(ivan.config_dir).save(ivan.url, SavedLogin("ivan", "bzt_expired", earlier))
    assert ivan.fails("queue", "list") == (
        f"buzon: your login to {ivan.url} has expired; run: buzon user login --url {ivan.url}"
    )


def test_url_and_config_dir_come_from_the_environment(cli_for: MakeCli, tmp_path: Path) -> None:
    gina = cli_for("gina")
    env = {k: v for k, v in gina.env().items() if k != "BUZON_CONFIG_DIR"}
    env |= {"BUZON_URL": gina.url + "/api/v1", "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    args = ("user", "login", "--username", "admin", "--password-stdin")
    logged = gina.run(*args, stdin=ADMIN_PASSWORD + "\n", with_url=False, env=env)
    assert logged.returncode == 0, logged.stderr
    saved = json.loads((tmp_path / "xdg" / "buzon" / "credentials.json").read_text())
    assert list(saved) == [gina.url]
    whoami = gina.run("user", "whoami", "--json", with_url=False, env=env)
    assert json.loads(whoami.stdout)["username"] == "admin"


@pytest.mark.skipif(not Path("/proc/self/wchan").exists(), reason="needs Linux /proc")
def test_ctrl_c_is_one_line(cli_for: MakeCli) -> None:
    henry = cli_for("henry")
    command = [sys.executable, "-m", "buzon", "user", "login", "--url", henry.url]
    args = [*command, "--username", "henry", "--password-stdin"]
    process = subprocess.Popen(
        args,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=henry.env(),
    )
    wchan = Path(f"/proc/{process.pid}/wchan")
    deadline = time.monotonic() + 10
    while "pipe" not in wchan.read_text() and time.monotonic() < deadline:
        time.sleep(0.02)  # until it blocks reading the password from stdin
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=10)
    result = subprocess.CompletedProcess(args, process.returncode, stdout, stderr)
    assert one_error_line(result) == "buzon: interrupted"
    assert process.returncode == 130
    assert not henry.config_dir.exists()
