"""``buzon shell`` driven through its menus with piped answers, against a real broker."""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from buzon.client import ManagementClient
from tests.cli.helpers import Cli
from tests.interop.broker_process import BrokerProcess

PASSWORD = "cli-shell-password"


StartShell = Callable[[Cli, BrokerProcess, list[str]], subprocess.Popen[str]]


@pytest.fixture
def start_shell() -> Iterator[StartShell]:
    """Starts ``buzon shell``s; any still running at the end (a test failed midway) is
    killed and its pipes closed, so that it cannot disturb the tests after it."""
    started: list[subprocess.Popen[str]] = []

    def start(cli: Cli, broker: BrokerProcess, answers: list[str]) -> subprocess.Popen[str]:
        process = shell_process(cli, broker, answers)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        for pipe in (process.stdin, process.stdout, process.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        process.wait(timeout=10)


def shell_process(cli: Cli, broker: BrokerProcess, answers: list[str]) -> subprocess.Popen[str]:
    """``buzon shell`` with ``answers`` piped in, one per line, and stdout captured."""
    env = cli.env(BUZON_STOMP_URL=f"stomp://{broker.host}:{broker.port}", PYTHONUNBUFFERED="1")
    env.pop("BUZON_PASSWORD", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "buzon", "shell", "--url", cli.url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdin is not None
    process.stdin.write("".join(f"{answer}\n" for answer in answers))
    process.stdin.flush()
    return process


def finish(process: subprocess.Popen[str]) -> str:
    """Wait for the shell to say goodbye; return what it printed."""
    out, err = process.communicate(timeout=30)
    assert (process.returncode, err) == (0, "")
    assert out.endswith("bye\n")
    assert PASSWORD not in out
    return out


def test_publisher_registers_logs_in_creates_connects_and_sends(
    broker: BrokerProcess, admin_client: ManagementClient, tmp_path: Path, start_shell: StartShell
) -> None:
    cli = Cli(broker.url, tmp_path / "config")
    answers = [
        "9",  # not on the main menu
        "1",  # publisher menu
        *("2", "sh-pub", "not-the-password"),  # log in before registering
        *("1", "sh-pub", PASSWORD, PASSWORD),  # register
        *("2", "sh-pub", PASSWORD),  # log in
        *("4", "1", "sh-orders", "y", "orders-key", "orders-kee"),  # the key, mistyped
        *("4", "1", "sh-orders", "y", "orders-key", "orders-key"),  # create a protected queue
        "9",  # send before connecting
        *("7", "1", "sh-orders"),  # connect to it
        *("9", "hello from the shell"),  # send
        "8",  # disconnect
        "5",  # list
        *("0", "0"),  # back, quit
    ]
    out = finish(start_shell(cli, broker, answers))

    assert "'9' is not on this menu: type a number from 0 to 2 and press Enter" in out
    assert "error: authentication failed" in out
    assert "registered sh-pub; choose 'log in' to use the account" in out
    assert "logged in as sh-pub" in out
    assert "  the two access keys differ; no queue was created\n" in out
    assert "created queue sh-orders (/queue/sh-orders), protected by an access key" in out
    assert "error: connect to a queue or a channel first (choose 'connect')" in out
    assert "sent to /queue/sh-orders; the broker confirmed it" in out
    assert "disconnected from /queue/sh-orders" in out
    assert "Publisher menu (logged in as sh-pub; connected to /queue/sh-orders)" in out
    queue = admin_client.get_queue("sh-orders")
    assert (queue.owner, queue.protected, queue.depth) == ("sh-pub", True, 1)
    pulled = admin_client.pull("sh-orders")
    assert [message.text for message in pulled] == ["hello from the shell"]
    admin_client.ack("sh-orders", pulled[0].receipt)
    assert "sh-pub" in cli.ok("user", "whoami")  # the shell's login is the command line's


def test_consumer_pulls_gives_back_acknowledges_and_watches_a_channel(
    broker: BrokerProcess, admin_client: ManagementClient, tmp_path: Path, start_shell: StartShell
) -> None:
    admin_client.create_queue("sh-inbox", access_key="inbox-key")
    for text in ("first", "second"):
        admin_client.publish("/queue/sh-inbox", text)
    admin_client.create_channel("sh-live")
    admin_client.register("sh-con", PASSWORD)
    cli = Cli(broker.url, tmp_path / "config")
    cli.login("sh-con", PASSWORD)
    answers = [
        "2",  # consumer menu
        "x",  # not a number
        *("5", "sh-inbx"),  # pull from a queue that does not exist (a typo)
        *("5", "sh-inbox", "inbox-key", "2", "n"),  # pull two, give them back
        *("5", "sh-inbox", "inbox-key", "", "y"),  # pull one (the default), acknowledge it
        *("6", "sh-live", "2", PASSWORD),  # watch two messages; the STOMP password is asked
        *("0", "0"),
    ]
    shell = start_shell(cli, broker, answers)
    deadline = time.monotonic() + 20
    while admin_client.get_channel("sh-live").subscribers == 0:
        assert shell.poll() is None, "the shell ended before it subscribed"
        assert time.monotonic() < deadline, "the shell never subscribed"
        time.sleep(0.05)
    for text in ("breaking 1", "breaking 2"):
        admin_client.publish("/topic/sh-live", text)
    out = finish(shell)

    assert "'x' is not on this menu: type a number from 0 to 6 and press Enter" in out
    assert (
        "error: no queue named 'sh-inbx'\ndid you mean 'sh-inbox'?\n"
        "to create it: choose 'create a queue or a channel' in the publisher menu\n"
    ) in out
    assert "  [1] first\n  [2] second\n" in out
    assert "gave 2 message(s) back to sh-inbox" in out
    assert "  [1] first (delivered before)\n" in out
    assert "acknowledged 1 message(s)" in out
    assert "Password of sh-con (for the STOMP connection): " in out
    assert "  [1] breaking 1\n  [2] breaking 2\nstopped watching /topic/sh-live after 2" in out
    queue = admin_client.get_queue("sh-inbox")
    assert (queue.depth, queue.in_flight) == (1, 0)


def interrupt(process: subprocess.Popen[str]) -> str:
    """Ctrl-C at the shell's question; what it printed in answer.

    The shell answers at once (its output is unbuffered here). In two loaded CI runs a
    SIGINT sent while the shell waited at its question had no effect for 20 s, for a
    reason not found (the shell has one thread; nothing blocks or ignores the signal):
    the signal is sent again, as a user presses Ctrl-C again, when nothing came back.
    """
    assert process.stdout is not None
    for _ in range(5):
        process.send_signal(signal.SIGINT)
        ready, _, _ = select.select([process.stdout], [], [], 2.0)
        if ready:
            return os.read(process.stdout.fileno(), 4096).decode()
    status = Path(f"/proc/{process.pid}/status").read_text()
    raise AssertionError(f"five SIGINTs went unanswered:\n{status}")


def read_until(process: subprocess.Popen[str], text: str, seen_before: str = "") -> str:
    """What the shell printed up to and including ``text`` (a question, say), counting
    what was already read (``seen_before``)."""
    assert process.stdout is not None
    seen = seen_before.encode()
    deadline = time.monotonic() + 20
    while text.encode() not in seen:
        assert time.monotonic() < deadline, f"{text!r} never came: {seen.decode()}"
        ready, _, _ = select.select([process.stdout], [], [], 0.5)
        if ready:
            chunk = os.read(process.stdout.fileno(), 4096)
            assert chunk, f"the shell ended before {text!r}: {seen.decode()}"
            seen += chunk
    return seen.decode()


def consumer(broker: BrokerProcess, admin: ManagementClient, tmp_path: Path, name: str) -> Cli:
    """A logged-in user with a queue ``name`` of two messages to pull."""
    admin.create_queue(name)
    for text in ("one", "two"):
        admin.publish(f"/queue/{name}", text)
    admin.register(name, PASSWORD)
    cli = Cli(broker.url, tmp_path / "config")
    cli.login(name, PASSWORD)
    return cli


def test_ctrl_d_at_the_question_gives_the_pulled_messages_back(
    broker: BrokerProcess, admin_client: ManagementClient, tmp_path: Path, start_shell: StartShell
) -> None:
    cli = consumer(broker, admin_client, tmp_path, "sh-eof")
    out = finish(start_shell(cli, broker, ["2", "5", "sh-eof", "2"]))  # stdin ends at the question

    assert "  [1] one\n  [2] two\nAcknowledge them (they leave the queue)? [Y/n]: \n" in out
    assert "gave 2 message(s) back to sh-eof" in out
    queue = admin_client.get_queue("sh-eof")
    assert (queue.depth, queue.in_flight) == (2, 0)  # at once, not when the lease runs out


def test_ctrl_c_at_the_question_gives_them_back_and_the_table_shows_in_flight(
    broker: BrokerProcess, admin_client: ManagementClient, tmp_path: Path, start_shell: StartShell
) -> None:
    cli = consumer(broker, admin_client, tmp_path, "sh-int")
    shell = start_shell(cli, broker, ["2", "5", "sh-int", "1"])
    shown = read_until(shell, "Acknowledge them (they leave the queue)? [Y/n]: ")
    assert admin_client.get_queue("sh-int").in_flight == 1
    shown += read_until(shell, "cancelled", interrupt(shell))
    queue = admin_client.get_queue("sh-int")
    assert (queue.depth, queue.in_flight) == (2, 0)
    leased = admin_client.pull("sh-int")  # someone else holds one now
    assert shell.stdin is not None
    shell.stdin.write("4\n")  # list queues and channels
    shell.stdin.flush()
    out = shown + finish(shell)
    admin_client.nack("sh-int", leased[0].receipt)

    assert "gave 1 message(s) back to sh-int\n\ncancelled" in out
    assert re.search(r"Waiting\s*┃\s*In flight", out), out
    assert re.search(r"sh-int\s*│\s*admin\s*│\s*no\s*│\s*1\s*│\s*1\s*│", out), out
