"""A name that is no queue or channel: the messaging commands say so and create nothing.

Against a real ``buzon serve``, which creates on first use for raw STOMP (its default):
the commands opt out per frame, so a typo never leaves a new empty queue behind.
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time

import pytest

from buzon.client import ApiError, ManagementClient
from buzon.errors import ErrorCode
from tests.cli.helpers import Cli
from tests.cli.test_messaging_commands import PASSWORD, Messenger
from tests.interop.broker_process import BrokerProcess

USER = "typo-user"


@pytest.fixture(scope="module")
def user(
    broker: BrokerProcess, admin_client: ManagementClient, tmp_path_factory: pytest.TempPathFactory
) -> Messenger:
    """A registered user, logged in with ``buzon user login``, who owns nothing yet."""
    admin_client.register(USER, PASSWORD)
    cli = Cli(broker.url, tmp_path_factory.mktemp(USER))
    cli.login(USER, PASSWORD)
    return Messenger(cli, f"stomp://{broker.host}:{broker.port}")


def everything(admin: ManagementClient) -> set[str]:
    """The address of every queue and channel on the broker."""
    return {d.address for d in [*admin.list_queues(), *admin.list_channels()]}


def refusal(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The lines a command refused with: exit 2, nothing on stdout, no traceback."""
    assert (result.returncode, result.stdout) == (2, ""), result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return result.stderr.splitlines()


def test_consume_names_the_missing_queue_suggests_and_creates_nothing(
    user: Messenger, admin_client: ManagementClient, broker: BrokerProcess
) -> None:
    admin_client.create_queue("cola-que-existe")
    before = everything(admin_client)
    lines = refusal(user.run("consume", "cola-que-no-existe"))
    assert lines == [
        "buzon: no queue named 'cola-que-no-existe'",
        "did you mean 'cola-que-existe'?",
        f"to create it: buzon queue create cola-que-no-existe --url {broker.url}",
    ]
    assert everything(admin_client) == before


def test_the_suggestions_come_with_a_saved_login_and_without_one(
    user: Messenger, admin_client: ManagementClient, broker: BrokerProcess
) -> None:
    admin_client.create_queue("invoices")
    before = everything(admin_client)
    with_token = user.cli.run(  # no $BUZON_PASSWORD: the token of 'buzon user login'
        "consume", "invoice", env=user.env(password=False)
    )
    assert refusal(with_token)[1] == "did you mean 'invoices'?"
    stranger = Cli(broker.url, user.cli.config_dir.parent / "nobody-logged-in")
    with_password = stranger.run(
        "consume",
        "invoice",
        "--username",
        USER,
        env=stranger.env(BUZON_STOMP_URL=user.stomp_url, BUZON_PASSWORD=PASSWORD),
    )
    assert refusal(with_password)[1] == "did you mean 'invoices'?"
    assert everything(admin_client) == before


def test_the_suggestions_come_when_url_names_the_broker_by_another_host_name(
    user: Messenger, admin_client: ManagementClient, broker: BrokerProcess
) -> None:
    admin_client.create_queue("receipts")
    by_name = Cli(broker.url.replace("127.0.0.1", "localhost"), user.cli.config_dir.parent / "l")
    env = {k: v for k, v in by_name.env(BUZON_PASSWORD=PASSWORD).items() if k != "BUZON_STOMP_URL"}
    result = by_name.run("consume", "receipt", "--username", USER, env=env)
    assert refusal(result)[1] == "did you mean 'receipts'?"  # STOMP came from GET /info


def test_subscribe_and_publish_refuse_a_missing_name_too(
    user: Messenger, admin_client: ManagementClient, broker: BrokerProcess
) -> None:
    admin_client.create_queue("alerts")
    before = everything(admin_client)
    lines = refusal(user.run("subscribe", "alerts"))
    assert lines == [
        "buzon: no channel named 'alerts'",
        "(there is a queue named 'alerts')",
        f"to create it: buzon channel create alerts --url {broker.url}",
    ]
    lines = refusal(user.run("publish", "--queue", "alert", "hello"))
    assert lines[:2] == ["buzon: no queue named 'alert'", "did you mean 'alerts'?"]
    lines = refusal(user.run("publish", "--channel", "nothing-like-it", stdin="a\nb\n"))
    assert lines == [
        "buzon: no channel named 'nothing-like-it'",
        f"to create it: buzon channel create nothing-like-it --url {broker.url}",
    ]
    assert everything(admin_client) == before


def test_http_publish_to_a_missing_queue_is_404_and_creates_nothing(
    admin_client: ManagementClient,
) -> None:
    before = everything(admin_client)
    with pytest.raises(ApiError) as missing:
        admin_client.publish("/queue/http-typo", "x")
    assert (missing.value.code, missing.value.status) == (ErrorCode.DESTINATION_NOT_FOUND, 404)
    assert everything(admin_client) == before


def read_pty(fd: int, until: str, seconds: float = 20) -> str:
    """What the terminal ``fd`` showed, up to ``until``."""
    seen = ""
    deadline = time.monotonic() + seconds
    while until not in seen:
        assert time.monotonic() < deadline, f"{until!r} never showed: {seen!r}"
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            seen += os.read(fd, 4096).decode()
    return seen


def test_consume_at_a_terminal_says_it_is_waiting(
    user: Messenger, admin_client: ManagementClient
) -> None:
    admin_client.create_queue("patience")
    terminal, stderr = pty.openpty()
    command = [sys.executable, "-m", "buzon", "consume", "patience", "--max", "1"]
    consumer = subprocess.Popen(
        [*command, "--url", user.cli.url],
        stdout=subprocess.PIPE,
        stderr=stderr,
        stdin=subprocess.DEVNULL,
        text=True,
        env=user.env(),
    )
    os.close(stderr)
    try:
        shown = read_pty(terminal, "\n")
        assert shown.strip() == "waiting for messages on /queue/patience (Ctrl-C to stop)"
        admin_client.publish("/queue/patience", "worth it")
        out, _ = consumer.communicate(timeout=20)
    finally:
        consumer.kill()
        consumer.wait(10)
        os.close(terminal)
    assert (consumer.returncode, out) == (0, "worth it\n")
