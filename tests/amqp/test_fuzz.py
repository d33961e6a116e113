"""Random and mutated frame streams: only the documented closes, bounded buffering."""

from __future__ import annotations

import itertools
import random

from hypothesis import given, settings
from hypothesis import strategies as st
from pamqp import commands

from buzon.amqp import CONNECTION_ERRORS, AmqpConnection, AmqpState, ReplyCode
from buzon.amqp.codec import PROTOCOL_HEADER

from .helpers import PLAIN_OK, publish_frames, read_frames, wire

C = commands

SESSION = (
    PROTOCOL_HEADER
    + wire(
        (0, PLAIN_OK),
        (0, C.Connection.TuneOk(0, 0, 0)),
        (0, C.Connection.Open(virtual_host="/")),
        (1, C.Channel.Open()),
        (
            1,
            C.Queue.Declare(
                queue="q", durable=True, arguments={"x-max-length": 10, "l": [1, {"a": None}]}
            ),
        ),
        (1, C.Basic.Qos(prefetch_count=10)),
        (1, C.Basic.Consume(queue="q", consumer_tag="c")),
        (1, C.Confirm.Select()),
    )
    + publish_frames(
        1,
        b"hello" * 50,
        props=C.Basic.Properties(delivery_mode=2, headers={"h": [True, 1.5, "s"]}, message_id="m"),
    )
    + wire(
        (1, C.Basic.Ack(1)),
        (1, C.Channel.Close(200, "", 0, 0)),
        (0, C.Connection.Close(200, "", 0, 0)),
    )
)


def drive(data: bytes, chunk: int = 1000) -> AmqpConnection:
    """Feed ``data`` in reads, accepting any login, and check the invariants: unparsed
    input stays under one frame plus one read, everything sent decodes (with pamqp), and
    a connection that is closing has sent ``connection.close``."""
    conn = AmqpConnection()
    sent: list[object] = []
    for start in range(0, len(data), chunk):
        conn.receive_data(data[start : start + chunk], 0.0)
        while True:
            event = conn.next_event()
            if event is None:
                break
            if conn.state is AmqpState.AWAITING_LOGIN:
                conn.accept_login()
        assert conn.buffered_bytes <= conn.frame_max + chunk
        sent += [f for _, f in read_frames(conn.data_to_send())]
        if conn.close_expected():
            break
    if conn.state is AmqpState.CLOSING:
        assert isinstance(sent[-1], C.Connection.Close)
        assert sent[-1].reply_code in CONNECTION_ERRORS | {ReplyCode.ACCESS_REFUSED}
    return conn


def test_the_recorded_session_is_clean() -> None:
    conn = drive(SESSION)
    assert conn.state is AmqpState.CLOSED
    assert conn.close_reason == "the client closed: 200 "


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.integers(1, 64))
def test_random_bytes_after_the_handshake(noise: bytes, chunk: int) -> None:
    prefix = SESSION[: SESSION.index(wire((1, C.Channel.Open())))]
    conn = drive(prefix + noise, chunk)
    assert conn.state in (AmqpState.OPEN, AmqpState.CLOSING, AmqpState.FAILED, AmqpState.CLOSED)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([1, 2, 3, 8, 9]), st.integers(0, 3), st.binary(max_size=40)),
        max_size=12,
    )
)
def test_random_frame_streams(frames: list[tuple[int, int, bytes]]) -> None:
    prefix = SESSION[
        : SESSION.index(
            wire(
                (
                    1,
                    C.Queue.Declare(
                        queue="q",
                        durable=True,
                        arguments={"x-max-length": 10, "l": [1, {"a": None}]},
                    ),
                )
            )
        )
    ]
    data = b"".join(
        bytes((kind,)) + ch.to_bytes(2) + len(p).to_bytes(4) + p + b"\xce" for kind, ch, p in frames
    )
    conn = drive(prefix + data)
    assert conn.state is not AmqpState.AWAITING_HEADER


def test_seeded_mutations_of_a_recorded_session() -> None:
    rng = random.Random(20261203)
    for _ in range(800):
        data = bytearray(SESSION)
        for _ in range(rng.randint(1, 6)):
            spot = rng.randrange(len(data))
            action = rng.random()
            if action < 0.6:
                data[spot] = rng.randrange(256)
            elif action < 0.8:
                del data[spot : spot + rng.randint(1, 8)]
            else:
                data[spot:spot] = rng.randbytes(rng.randint(1, 8))
        conn = drive(bytes(data), rng.choice([1, 7, 100, 4096]))
        if not conn.close_expected() and conn.state is not AmqpState.OPEN:
            assert conn.state in (
                AmqpState.CLOSING,
                AmqpState.AWAITING_START_OK,
                AmqpState.AWAITING_TUNE_OK,
                AmqpState.AWAITING_OPEN,
            )


def session_events(data: bytes, cuts: list[int]) -> list[object]:
    conn = AmqpConnection()
    found: list[object] = []
    bounds = [0, *sorted(cuts), len(data)]
    for start, stop in itertools.pairwise(bounds):
        conn.receive_data(data[start:stop], 0.0)
        while (event := conn.next_event()) is not None:
            found.append(event)
            if conn.state is AmqpState.AWAITING_LOGIN:
                conn.accept_login()
    return found


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, len(SESSION)), max_size=20))
def test_events_do_not_depend_on_how_reads_split_the_bytes(cuts: list[int]) -> None:
    assert session_events(SESSION, cuts) == session_events(SESSION, [])
