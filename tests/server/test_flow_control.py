"""Flow control over real sockets: publishers are slowed, not buffered; slow readers are cut."""

from __future__ import annotations

import asyncio
import contextlib
import socket

from buzon.auth import SecretHasher
from buzon.stomp import Message, Receipt
from tests.server.harness import PASSWORD, Client, frames_in, running_server
from tests.server.test_messaging import subscribe, subscribed

KIB = 1024
LOGIN = f"CONNECT\naccept-version:1.2\nhost:/\nlogin:admin\npasscode:{PASSWORD}\n\n\x00".encode()


def sends(destination: str, count: int, size: int, receipt_every: int = 1) -> bytes:
    """``count`` pipelined SEND frames numbered in a ``n`` header, with receipts."""
    frames = []
    for n in range(count):
        receipt = f"receipt:{n}\n" if n % receipt_every == receipt_every - 1 else ""
        head = f"SEND\ndestination:{destination}\nn:{n}\n{receipt}content-length:{size}\n\n"
        frames.append(head.encode() + b"x" * size + b"\x00")
    return b"".join(frames)


async def test_publisher_is_paused_above_max_queued_bytes_and_loses_nothing(
    hasher: SecretHasher,
) -> None:
    count, size = 4096, KIB  # 4 MiB published against a 64 KiB bound
    async with running_server(hasher, max_queued_bytes=64 * KIB) as server:
        producer = await Client.connected(server.stomp_port)
        producer.writer.write(sends("/queue/flood", count, size))
        receipts = 0
        while not await producer.nothing_within(0.3):
            receipts += 1
        queued = server.broker.statistics().queued_bytes
        # The broker stopped reading: at most about one read past the bound was taken in.
        assert 64 * KIB <= queued < 1024 * KIB
        assert receipts < count // 2

        consumer = await Client.connected(server.stomp_port)
        await consumer.send(subscribe("/queue/flood", receipt="sub"))
        await consumer.receipt("sub")
        bodies = [await consumer.expect(Message) for _ in range(count)]
        assert [dict(m.headers)["n"] for m in bodies] == [str(n) for n in range(count)]
        for _ in range(count - receipts):
            await producer.expect(Receipt)
        assert server.broker.statistics().queued_bytes == 0


async def test_slow_channel_subscriber_is_cut_and_the_others_get_everything(
    hasher: SecretHasher,
) -> None:
    size, batch = 2 * KIB, 100
    async with running_server(
        hasher, channel_max_pending=50, max_outbound_bytes=16 * KIB
    ) as server:
        port = server.stomp_port
        # The slow subscriber keeps a tiny receive buffer and never reads until the end.
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * KIB)
        raw.setblocking(False)
        await asyncio.get_running_loop().sock_connect(raw, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=raw)
        slow = Client(reader, writer)
        slow.conn.connect(login="admin", passcode="test-password-123", host="/")
        await slow.flush()
        await slow.next_event()  # CONNECTED
        await slow.send(subscribe("/topic/firehose", receipt="sub"))
        await slow.receipt("sub")
        fast = await subscribed(port, "/topic/firehose")
        received: list[Message] = []
        wanted = asyncio.Event()  # set once `received` holds `published` messages

        async def read_fast() -> None:
            while True:
                received.append(await fast.expect(Message))
                if len(received) == published:
                    wanted.set()

        reading = asyncio.create_task(read_fast())
        producer = await Client.connected(port)
        published = 0
        while server.broker.statistics().channels[0].subscribers == 2:
            assert published < 20_000, "the slow subscriber was never cut"
            producer.writer.write(sends("/topic/firehose", batch, size, receipt_every=batch))
            await producer.expect(Receipt)
            published += batch

        # The slow subscriber's stream ends with ERROR "slow consumer", then EOF.
        data = b""
        async with asyncio.timeout(5):
            while chunk := await reader.read(65536):
                data += chunk
        frames = frames_in(data)
        assert frames[-1].command.value == "ERROR"
        assert frames[-1].get("message") == "slow consumer"
        assert len(frames) - 1 < published

        if len(received) < published:
            await asyncio.wait_for(wanted.wait(), 10)
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reading
        assert [dict(m.headers)["n"] for m in received] == [
            str(n % batch) for n in range(published)
        ]


async def test_a_burst_larger_than_one_turn_arrives_whole_and_in_order_despite_a_half_close(
    hasher: SecretHasher,
) -> None:
    """A connection handles a bounded number of frames per event-loop turn (so one busy
    publisher cannot hold everyone up); the rest of a burst follows in later turns, and a
    peer that half-closes right after its burst still gets every receipt."""
    count = 2_000  # many turns' worth, in one write
    async with running_server(hasher) as server:
        consumer = await subscribed(server.stomp_port, "/queue/burst")
        burst = LOGIN + sends("/queue/burst", count, 8, receipt_every=count)
        burst += b"DISCONNECT\nreceipt:bye\n\n\x00"
        with socket.create_connection(("127.0.0.1", server.stomp_port)) as raw:
            raw.setblocking(False)
            loop = asyncio.get_running_loop()
            await loop.sock_sendall(raw, burst)
            raw.shutdown(socket.SHUT_WR)
            received = b""
            async with asyncio.timeout(10):
                while chunk := await loop.sock_recv(raw, 65536):
                    received += chunk
        answers = frames_in(received)
        receipts = [f.get("receipt-id") for f in answers if f.command.value == "RECEIPT"]
        assert receipts == [str(count - 1), "bye"]
        numbers: list[int] = []
        while len(numbers) < count:
            delivered = await consumer.expect(Message)
            numbers.append(int(dict(delivered.headers)["n"]))
        assert numbers == list(range(count))
