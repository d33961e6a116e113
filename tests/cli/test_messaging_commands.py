"""``buzon publish``, ``consume`` and ``subscribe`` as scripts run them, against a real broker."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from buzon.client import ManagementClient, PulledMessage
from tests.cli.helpers import Cli, free_port, one_error_line
from tests.interop.broker_process import BrokerProcess

PASSWORD = "cli-messaging-password"
ALICE, BOB = "msg-alice", "msg-bob"


@dataclass(frozen=True)
class Messenger:
    """``buzon`` for one logged-in user, told where the broker's STOMP port is."""

    cli: Cli
    stomp_url: str

    def env(self, *, password: bool = True, **extra: str) -> dict[str, str]:
        secret = {"BUZON_PASSWORD": PASSWORD} if password else {}
        return self.cli.env(BUZON_STOMP_URL=self.stomp_url, **secret, **extra)

    def run(
        self, *args: str, stdin: str = "", password: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self.cli.run(*args, stdin=stdin, env=self.env(password=password))

    def ok(self, *args: str, stdin: str = "", password: bool = True) -> str:
        result = self.run(*args, stdin=stdin, password=password)
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""
        return result.stdout

    def fails(self, *args: str, stdin: str = "", password: bool = True) -> str:
        return one_error_line(self.run(*args, stdin=stdin, password=password))

    def start(self, *args: str) -> subprocess.Popen[str]:
        """``buzon ARGS`` in the background, stdout piped."""
        command = [sys.executable, "-m", "buzon", *args, "--url", self.cli.url]
        return subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env()
        )


@pytest.fixture(scope="module")
def people(
    broker: BrokerProcess, admin_client: ManagementClient, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Messenger]:
    """Alice and Bob, each registered and logged in with their own config directory."""
    made = {}
    for name in (ALICE, BOB):
        admin_client.register(name, PASSWORD)
        cli = Cli(broker.url, tmp_path_factory.mktemp(name))
        cli.login(name, PASSWORD)
        made[name] = Messenger(cli, f"stomp://{broker.host}:{broker.port}")
    return made


@pytest.fixture
def alice(people: dict[str, Messenger]) -> Messenger:
    return people[ALICE]


@pytest.fixture
def bob(people: dict[str, Messenger]) -> Messenger:
    return people[BOB]


def drain(admin: ManagementClient, queue: str) -> list[PulledMessage]:
    """Everything waiting in ``queue``, in order, acknowledged."""
    pulled = admin.pull(queue, max_messages=100, wait_ms=200)
    if pulled:
        admin.ack(queue, *(message.receipt for message in pulled))
    return pulled


def test_publish_takes_an_argument_a_file_or_stdin_lines(
    alice: Messenger, admin_client: ManagementClient, tmp_path: Path
) -> None:
    admin_client.create_queue("pub-sources")
    summary = alice.ok("publish", "--queue", "pub-sources", "hello", "--header", "kind=greeting")
    assert re.fullmatch(r"published 1 message to /queue/pub-sources in [\d.]+ m?s.*\n", summary)
    binary = tmp_path / "photo.bin"
    binary.write_bytes(b"\xff\x00raw bytes")
    alice.ok("publish", "--queue", "pub-sources", "--file", str(binary))
    lines = f"{PASSWORD}\nfirst line\n\nsecond line\r\n"
    summary = alice.ok(
        "publish", "--queue", "pub-sources", "--password-stdin", stdin=lines, password=False
    )
    assert summary.startswith("published 2 messages to /queue/pub-sources")

    pulled = drain(admin_client, "pub-sources")
    bodies = [message.body for message in pulled]
    assert bodies == [b"hello", b"\xff\x00raw bytes", b"first line", b"second line"]
    assert pulled[0].headers["kind"] == "greeting"
    assert pulled[0].headers["content-type"].startswith("text/plain")
    assert "content-type" not in pulled[1].headers


def test_publish_priority_puts_messages_ahead_of_lower_ones(
    alice: Messenger, admin_client: ManagementClient
) -> None:
    admin_client.create_queue("pub-priority")
    alice.ok("publish", "--queue", "pub-priority", "routine")
    alice.ok("publish", "--queue", "pub-priority", "whenever", "--priority", "0")
    alice.ok("publish", "--queue", "pub-priority", "urgent", "--priority", "9")
    admin_client.publish("/queue/pub-priority", "urgent too", priority=9)
    pulled = drain(admin_client, "pub-priority")
    assert [m.text for m in pulled] == ["urgent", "urgent too", "routine", "whenever"]


def test_count_repeats_and_rate_paces_the_run(
    alice: Messenger, admin_client: ManagementClient
) -> None:
    admin_client.create_channel("pub-unheard")
    admin_client.create_queue("pub-paced")
    summary = alice.ok("publish", "--channel", "pub-unheard", "x", "--count", "50")
    assert summary.startswith("published 50 messages to /topic/pub-unheard")
    summary = alice.ok("publish", "--queue", "pub-paced", "tick", "--count", "5", "--rate", "40")
    took = re.search(r" in ([\d.]+) (ms|s) ", summary)
    assert took is not None, summary
    seconds = float(took[1]) / (1000 if took[2] == "ms" else 1)
    assert seconds >= 4 / 40  # five sends, four gaps of 1/40 s
    assert [message.text for message in drain(admin_client, "pub-paced")] == ["tick"] * 5


def test_access_keys_come_from_stdin_after_the_password(
    alice: Messenger, bob: Messenger, admin_client: ManagementClient
) -> None:
    alice.cli.ok("queue", "create", "pub-vault", "--access-key-stdin", stdin="vault-key\n")
    line = bob.fails("publish", "--queue", "pub-vault", "no key")
    assert line.startswith("buzon: access key required")
    assert line.endswith("(0 messages were accepted)")
    key_args = ("--password-stdin", "--access-key-stdin")
    wrong = bob.fails(
        "publish", "--queue", "pub-vault", "x", *key_args, stdin=f"{PASSWORD}\nnope\n"
    )
    assert wrong.startswith("buzon: wrong access key")
    bob.ok("publish", "--queue", "pub-vault", "with key", "--access-key", "vault-key")
    stdin = f"{PASSWORD}\nvault-key\n"
    shown = bob.ok("consume", "pub-vault", "--max", "1", *key_args, stdin=stdin, password=False)
    assert shown == "with key\n"
    assert admin_client.get_queue("pub-vault").depth == 0


def test_consume_prints_bodies_and_stops_after_max(
    alice: Messenger, admin_client: ManagementClient
) -> None:
    admin_client.create_queue("con-auto")
    for n in range(5):
        admin_client.publish("/queue/con-auto", f"job {n}", headers={"n": str(n)})
    admin_client.publish("/queue/con-auto", b"\x00\xff")
    assert alice.ok("consume", "con-auto", "--max", "2") == "job 0\njob 1\n"
    records = [
        json.loads(line)
        for line in alice.ok("consume", "con-auto", "--max", "4", "--json").splitlines()
    ]
    assert [record.get("body") for record in records] == ["job 2", "job 3", "job 4", None]
    assert records[0]["destination"] == "/queue/con-auto"
    assert records[0]["headers"]["n"] == "2"
    assert records[0]["message_id"]
    assert isinstance(records[0]["redelivered"], bool)
    assert records[3]["body_base64"] == "AP8="
    queue = admin_client.get_queue("con-auto")
    assert (queue.depth, queue.in_flight) == (0, 0)


def test_consume_ack_settles_only_what_it_printed(
    alice: Messenger, admin_client: ManagementClient
) -> None:
    admin_client.create_queue("con-ack")
    for n in range(4):
        admin_client.publish("/queue/con-ack", f"task {n}")
    out = alice.ok("consume", "con-ack", "--ack", "--max", "3", "--prefetch", "2")
    assert out == "task 0\ntask 1\ntask 2\n"
    queue = admin_client.get_queue("con-ack")
    assert (queue.depth, queue.in_flight) == (1, 0)
    assert [message.text for message in drain(admin_client, "con-ack")] == ["task 3"]


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def listening(alice: Messenger) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []

    def start(*args: str) -> subprocess.Popen[str]:
        started.append(alice.start(*args))
        return started[-1]

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate()


def test_subscribe_prints_what_another_process_publishes(
    alice: Messenger,
    bob: Messenger,
    admin_client: ManagementClient,
    listening: Callable[..., subprocess.Popen[str]],
) -> None:
    admin_client.create_channel("sub-news")
    subscriber = listening("subscribe", "sub-news", "--max", "3", "--json")
    wait_until(lambda: admin_client.get_channel("sub-news").subscribers == 1)
    summary = bob.ok("publish", "--channel", "sub-news", "--header", "from=bob", stdin="a\nb\nc\n")
    assert summary.startswith("published 3 messages to /topic/sub-news")
    out, err = subscriber.communicate(timeout=20)
    assert (subscriber.returncode, err) == (0, "")
    records = [json.loads(line) for line in out.splitlines()]
    assert [(r["body"], r["headers"]["from"]) for r in records] == [
        ("a", "bob"),
        ("b", "bob"),
        ("c", "bob"),
    ]
    assert admin_client.get_channel("sub-news").subscribers == 0


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("publish", "--queue", "err", "x", "--header", "novalue"), "write it as NAME=VALUE"),
        (("publish", "--queue", "err", "--file", "/no/such/file"), "cannot read /no/such/file"),
        (("publish", "--queue", "err", "x", "--priority", "10"), "from 0 to 9"),
        (("publish", "--queue", "err", "x", "--priority", "-1"), "from 0 to 9"),
        (("publish", "--queue", "bad name!", "x"), "invalid destination"),
        (("publish", "--queue", "err", "x", "--stomp-url", "stomp://u:pw@127.0.0.1"), "password"),
        (("consume", "err", "--stomp-url", "http://127.0.0.1:1"), "use stomp:// or stomp+ssl://"),
        (("subscribe", "err", "--stomp-url", "stomp://127.0.0.1:PORT"), "cannot reach the broker"),
    ],
)
def test_errors_are_one_line(alice: Messenger, args: tuple[str, ...], expected: str) -> None:
    args = tuple(arg.replace("PORT", str(free_port())) for arg in args)
    assert expected in alice.fails(*args)


def test_a_logged_in_user_needs_no_password(
    alice: Messenger, bob: Messenger, admin_client: ManagementClient
) -> None:
    """After ``buzon user login`` the messaging commands log in over STOMP with its token."""
    admin_client.create_queue("tok")
    published = alice.ok("publish", "--queue", "tok", "with the token", password=False)
    assert published.startswith("published 1 message to /queue/tok")
    assert alice.ok("consume", "tok", "--max", "1", password=False) == "with the token\n"
    # the token is Alice's: as someone else, a password is still needed
    as_bob = alice.fails("publish", "--queue", "tok", "x", "--username", BOB, password=False)
    assert "--password-stdin" in as_bob


def test_login_problems_are_one_line(
    alice: Messenger, admin_client: ManagementClient, tmp_path: Path
) -> None:
    admin_client.create_queue("err")
    wrong = alice.fails("consume", "err", "--password-stdin", stdin="wrong\n", password=False)
    assert wrong.endswith(" refused the login: authentication failed")
    stranger = Messenger(Cli(alice.cli.url, tmp_path / "nobody"), alice.stomp_url)
    no_password = stranger.fails(
        "publish", "--queue", "err", "x", "--username", ALICE, password=False
    )
    assert "--password-stdin" in no_password
    assert "give --username, or run: buzon user login" in stranger.fails("consume", "err")
    published = stranger.ok("publish", "--queue", "err", "as alice", "--username", ALICE)
    assert published.startswith("published 1 message to /queue/err")
    usage = stranger.run("consume", "err", "--max", "0")
    assert usage.returncode == 2
    assert usage.stderr.startswith("buzon: consume: argument --max: '0' is not a positive")
