"""The AMQP 0-9-1 codec's hot path and worst cases: pamqp 4.0.1 against ``buzon.amqp``.

Prints CPU µs per message (best of 5 runs) for:

- in: ``basic.publish`` + content header (delivery_mode, content_type, a 1-entry header
  table) + 128 B body, decoded by pamqp's ``frame.unmarshal`` and by ``AmqpConnection``
  (bytes in, ``Publish`` event out, 100 messages per read);
- out: ``basic.deliver`` + the same header + body, by pamqp's ``frame.marshal`` and by
  ``AmqpConnection.deliver`` (which reuses the publish's raw property list);
- worst cases for one 128 KiB frame: a table of 65,000 void entries and an array of
  130,000 voids, decoded by pamqp and by ``buzon.amqp.tables`` (seconds).

Usage:
    python benchmarks/bench_amqp_codec.py [--runs 5]
"""

from __future__ import annotations

import argparse
import struct
import time
from collections.abc import Callable

from pamqp import body, commands, decode, frame, header

from buzon.amqp import AmqpConnection, Publish
from buzon.amqp.codec import PROTOCOL_HEADER
from buzon.amqp.tables import decode_table

BODY = b"x" * 128
PROPS = commands.Basic.Properties(
    content_type="application/json", delivery_mode=2, headers={"trace": "abc"}
)
ONE = b"".join(
    (
        frame.marshal(commands.Basic.Publish(exchange="", routing_key="work"), 1),
        frame.marshal(header.ContentHeader(0, len(BODY), PROPS), 1),
        frame.marshal(body.ContentBody(BODY), 1),
    )
)
BATCH = 100


def best(func: Callable[[], object], number: int, runs: int) -> float:
    """Best CPU time per call in µs (CPU time: the machine is shared, wall time is not
    stable there)."""
    times = []
    for _ in range(runs):
        start = time.process_time()
        for _ in range(number):
            func()
        times.append((time.process_time() - start) / number)
    return min(times) * 1e6


def pamqp_in() -> None:
    data, offset = ONE, 0
    while offset < len(data):
        used, _, _ = frame.unmarshal(data[offset:])
        offset += used


def pamqp_out() -> bytes:
    deliver = commands.Basic.Deliver("ctag-1", 1, False, "", "work")
    return (
        frame.marshal(deliver, 1)
        + frame.marshal(header.ContentHeader(0, len(BODY), PROPS), 1)
        + frame.marshal(body.ContentBody(BODY), 1)
    )


def open_connection() -> AmqpConnection:
    start_ok = commands.Connection.StartOk(mechanism="PLAIN", response="\0u\0p")
    conn = AmqpConnection()
    conn.receive_data(PROTOCOL_HEADER + frame.marshal(start_ok, 0), 0.0)
    conn.next_event()
    conn.accept_login()
    tune = commands.Connection.TuneOk(channel_max=0, frame_max=0, heartbeat=0)
    opening = [tune, commands.Connection.Open(virtual_host="/")]
    conn.receive_data(b"".join(frame.marshal(m, 0) for m in opening), 0.0)
    conn.receive_data(frame.marshal(commands.Channel.Open(), 1), 0.0)
    while conn.next_event() is not None:
        pass
    conn.data_to_send()
    return conn


def buzon_in(conn: AmqpConnection) -> Callable[[], None]:
    data = ONE * BATCH

    def run() -> None:
        conn.receive_data(data, 0.0)
        while conn.next_event() is not None:
            pass

    return run


def buzon_out(conn: AmqpConnection, raw_properties: bytes) -> Callable[[], bytes]:
    def run() -> bytes:
        conn.deliver(1, "ctag-1", 1, False, "", "work", raw_properties, BODY)
        return conn.data_to_send()

    return run


def worst_cases() -> None:
    table = b"\x00V" * 65000
    array = b"V" * 130000
    for name, data, theirs in (
        ("table of 65,000 voids", struct.pack(">I", len(table)) + table, decode.field_table),
        ("array of 130,000 voids", b"\x00\x00\x00\x00", None),
    ):
        if theirs is None:  # wrap the array in a one-entry table for our decoder
            inner = b"\x01aA" + struct.pack(">I", len(array)) + array
            data = struct.pack(">I", len(inner)) + inner
            start = time.perf_counter()
            decode.field_array(struct.pack(">I", len(array)) + array)
        else:
            start = time.perf_counter()
            theirs(data)
        pamqp_s = time.perf_counter() - start
        start = time.perf_counter()
        decode_table(memoryview(data), 0, len(data))
        ours_s = time.perf_counter() - start
        print(f"{name:28} pamqp {pamqp_s:8.3f} s   buzon {ours_s:8.4f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    conn = open_connection()
    conn.receive_data(ONE, 0.0)
    event = conn.next_event()
    assert isinstance(event, Publish)
    rows = (
        (
            "in: publish+header+body",
            best(pamqp_in, 20000, runs),
            best(buzon_in(conn), 200, runs) / BATCH,
        ),
        (
            "out: deliver+header+body",
            best(pamqp_out, 20000, runs),
            best(buzon_out(conn, event.raw_properties), 20000, runs),
        ),
    )
    print(f"{'µs per message':28} {'pamqp':>8} {'buzon':>8}")
    for name, theirs, ours in rows:
        print(f"{name:28} {theirs:8.2f} {ours:8.2f}")
    worst_cases()


if __name__ == "__main__":
    main()
