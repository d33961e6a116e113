"""Throughput of the sans-IO STOMP codec (``buzon.stomp``), without I/O.

Prints the median of 5 runs for:

- parsing SEND frames with 1 KiB, 64 KiB and 1 MiB bodies (MB/s of wire bytes), fed in
  64 KiB reads as a socket would deliver them;
- parsing small SEND frames (128 B body, 3 headers) through ``StompConnection`` into
  ``Send`` events (frames/s), and through the bare ``FrameParser`` (frames/s);
- serialising MESSAGE frames (128 B body, 2 user headers) with ``StompConnection.send``
  and ``data_to_send`` (frames/s).

Usage:
    python benchmarks/bench_parser.py [--runs 5]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Callable

from buzon.stomp import (
    NEED_DATA,
    Connect,
    FrameParser,
    Message,
    Role,
    Send,
    StompConnection,
)

READ_SIZE = 64 * 1024
LOGIN = b"CONNECT\naccept-version:1.2\nhost:/\nlogin:u\npasscode:p\n\n\0"


def send_frame(body_size: int) -> bytes:
    body = bytes(i % 251 + 1 for i in range(body_size))
    head = b"SEND\ndestination:/queue/bench\nreceipt:r\ncontent-length:%d\n\n" % body_size
    return head + body + b"\0"


def reads(frame: bytes, total: int) -> list[bytes]:
    """About ``total`` bytes of back-to-back frames, cut into socket-sized reads."""
    stream = frame * max(1, total // len(frame))
    return [stream[i : i + READ_SIZE] for i in range(0, len(stream), READ_SIZE)]


def parse_stream(chunks: list[bytes]) -> int:
    parser = FrameParser()
    frames = 0
    for chunk in chunks:
        parser.feed(chunk)
        while parser.next_frame() is not NEED_DATA:
            frames += 1
    return frames


def parsed_bytes(chunks: list[bytes], frame_size: int) -> int:
    return parse_stream(chunks) * frame_size


def connection_events(chunks: list[bytes]) -> int:
    conn = StompConnection(Role.SERVER, heart_beat=(0, 0))
    conn.receive_data(LOGIN, 0.0)
    event = conn.next_event()
    assert isinstance(event, Connect)
    conn.accept(session="s", server="bench")
    events = 0
    for chunk in chunks:
        conn.receive_data(chunk, 0.0)
        while (event := conn.next_event()) is not None:
            assert type(event) is Send
            events += 1
    return events


def serialise_messages(count: int) -> int:
    conn = StompConnection(Role.SERVER, heart_beat=(0, 0))
    conn.receive_data(LOGIN, 0.0)
    conn.next_event()
    conn.accept(session="s", server="bench")
    body = b"x" * 128
    headers = (("content-type", "text/plain"), ("x-trace", "abc-123"))
    send = conn.send
    for n in range(count):
        send(Message("/queue/bench", f"m-{n}", "sub-1", str(n), headers, body))
        if n % 256 == 255:
            conn.data_to_send()
    conn.data_to_send()
    return count


def median_rate(runs: int, work: Callable[[], int]) -> float:
    rates = []
    for _ in range(runs):
        start = time.perf_counter()
        amount = work()
        rates.append(amount / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    for label, size, total in (
        ("1 KiB", 1024, 32 << 20),
        ("64 KiB", 64 << 10, 128 << 20),
        ("1 MiB", 1 << 20, 256 << 20),
    ):
        frame = send_frame(size)
        chunks = reads(frame, total)
        wire = sum(map(len, chunks))
        count = parse_stream(chunks)
        assert count == wire // len(frame), (count, wire // len(frame))
        rate = median_rate(args.runs, functools.partial(parsed_bytes, chunks, len(frame)))
        print(f"parse SEND, {label:>6} body: {rate / 1e6:10.1f} MB/s")

    small = send_frame(128)
    chunks = reads(small, 32 << 20)
    rate = median_rate(args.runs, lambda: parse_stream(chunks))
    print(f"parse SEND, 128 B body (FrameParser):       {rate:12,.0f} frames/s")
    rate = median_rate(args.runs, lambda: connection_events(chunks))
    print(f"parse SEND, 128 B body (StompConnection):   {rate:12,.0f} events/s")
    rate = median_rate(args.runs, lambda: serialise_messages(200_000))
    print(f"serialise MESSAGE, 128 B body (send+join):  {rate:12,.0f} frames/s")


if __name__ == "__main__":
    main()
