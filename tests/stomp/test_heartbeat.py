"""Heart-beat header, negotiation and deadlines, driven by a manual clock."""

from __future__ import annotations

import itertools
import random

import pytest

from buzon.errors import ErrorCode, FrameError
from buzon.stomp import (
    ConnState,
    HeartbeatTimer,
    Message,
    Role,
    StompConnection,
    negotiate,
    parse_heart_beat,
)

from .helpers import ConnectionPair, error_frame, state_of


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, (0, 0)), ("0,0", (0, 0)), ("10,20", (10, 20)), ("007,999999999", (7, 999999999))],
)
def test_parse_heart_beat(value: str | None, expected: tuple[int, int]) -> None:
    assert parse_heart_beat(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "1",
        "1,",
        ",1",
        "a,b",
        " 1,2",
        "1, 2",
        "+1,2",
        "-1,2",
        "1,2,3",
        "\u0661,2",
        "1234567890,1",
    ],
)
def test_parse_heart_beat_refuses(value: str) -> None:
    with pytest.raises(FrameError) as caught:
        parse_heart_beat(value)
    assert caught.value.code is ErrorCode.BAD_HEADER_VALUE


@pytest.mark.parametrize(
    ("ours", "theirs", "expected"),
    [
        ((0, 0), (1000, 1000), (0.0, 0.0)),
        ((1000, 1000), (0, 0), (0.0, 0.0)),
        ((1000, 2000), (3000, 500), (1.0, 3.0)),
        ((5000, 0), (0, 1000), (5.0, 0.0)),
        ((0, 1000), (250, 0), (0.0, 1.0)),
    ],
)
def test_negotiate(
    ours: tuple[int, int], theirs: tuple[int, int], expected: tuple[float, float]
) -> None:
    assert negotiate(ours, theirs) == expected


def test_idle_sender_beats_once_per_interval() -> None:
    # the server beats every second; the client sends nothing and expects beats
    pair = ConnectionPair(client_heart_beat=(0, 1000), server_heart_beat=(1000, 0))
    pair.login()
    server = pair.server
    beats = []
    for _ in range(20):
        deadline = server.get_timer()
        assert deadline is not None
        server.handle_timer(deadline)
        if server.data_to_send() == b"\n":
            beats.append(deadline)
    assert beats == [float(n) for n in range(1, len(beats) + 1)]
    assert len(beats) == 10  # two wake-ups per interval, one beat


def test_output_is_never_further_apart_than_the_send_interval() -> None:
    pair = ConnectionPair(client_heart_beat=(0, 1000), server_heart_beat=(1000, 0))
    pair.login()
    server = pair.server
    server.data_to_send()
    rng = random.Random(7)
    outputs = [0.0]
    sends = sorted(rng.uniform(0, 60) for _ in range(80))
    now = 0.0
    while now < 60:
        deadline = server.get_timer()
        assert deadline is not None
        if sends and sends[0] < deadline:
            now = sends.pop(0)
            server.send(Message("/q", "m", "s", None, (), b"x"))
        else:
            now = deadline
            server.handle_timer(now)
        if server.data_to_send():
            outputs.append(now)
    gaps = [b - a for a, b in itertools.pairwise(outputs)]
    assert max(gaps) <= 1.0 + 1e-9


def test_silent_peer_times_out_after_interval_times_grace() -> None:
    pair = ConnectionPair(client_heart_beat=(1000, 0), server_heart_beat=(0, 1000), grace=2.0)
    pair.login()
    server = pair.server
    assert server.get_timer() == 2.0
    pair.now = 1.5
    server.receive_data(b"\n", 1.5)  # a beat from the client
    assert server.next_event() is None
    assert server.get_timer() == 3.5
    server.handle_timer(3.4)
    assert server.state is ConnState.CONNECTED
    server.handle_timer(3.5)
    assert state_of(server) is ConnState.FAILED
    assert error_frame(server.data_to_send()).get("message") == "heart-beat timeout"
    assert server.get_timer() is None
    server.handle_timer(10.0)
    assert server.data_to_send() == b""


def test_client_times_out_silently_and_beats_when_asked() -> None:
    pair = ConnectionPair(client_heart_beat=(500, 500), server_heart_beat=(500, 500), grace=2.0)
    pair.login()
    client = pair.client
    assert client.negotiated_heart_beat == (0.5, 0.5)
    client.handle_timer(0.5)
    assert client.data_to_send() == b"\n"
    client.handle_timer(1.0)
    assert client.state is ConnState.FAILED
    assert client.data_to_send() == b""


def test_no_timer_when_heart_beats_are_off_or_not_logged_in() -> None:
    server = StompConnection(Role.SERVER)
    assert server.get_timer() is None
    server.handle_timer(100.0)
    assert server.data_to_send() == b""
    pair = ConnectionPair()
    pair.login()
    assert pair.server.get_timer() is None
    assert pair.server.negotiated_heart_beat == (0.0, 0.0)
    pair.server.handle_timer(100.0)
    assert pair.server.state is ConnState.CONNECTED


def test_timer_with_only_a_receive_deadline() -> None:
    timer = HeartbeatTimer(0.0, 4.0, now=10.0)
    assert timer.deadline() == 14.0
    assert timer.poll(13.0, wrote=False).name == "NOTHING"
    assert timer.poll(14.0, wrote=False).name == "TIMED_OUT"


def test_timer_with_nothing_to_do() -> None:
    assert HeartbeatTimer(0.0, 0.0, now=0.0).deadline() is None
