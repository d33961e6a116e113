"""What idempotency keys cost a real ``buzon serve`` (memory store): its RSS after N
publishes to one queue without keys and with a new key each (as the SDK sends them), when
full and once the queue is purged (the keys stay, the messages go).

Usage:
    python benchmarks/dedup_rss.py [--messages 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import httpx

from buzon.client import AsyncClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.interop.broker_process import broker_process  # noqa: E402

PASSWORD = "rss-password-1"


def rss(pid: int) -> int:
    """The process's resident set, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


async def fill(port: int, messages: int, keyed: bool) -> float:
    """Publish ``messages`` of 128 B (the last one confirmed); return publishes per second."""
    async with AsyncClient(f"stomp://admin:{PASSWORD}@127.0.0.1:{port}") as client:
        start = time.perf_counter()
        for _ in range(messages):
            await client.publish("/queue/q", b"x" * 128, confirm=False, idempotency_key=keyed)
        await client.publish("/queue/q", b"last", idempotency_key=keyed)
        return messages / (time.perf_counter() - start)


def run(messages: int, keyed: bool) -> str:
    with broker_process("--storage", "memory", env={"BUZON_ADMIN_PASSWORD": PASSWORD}) as broker:
        pid = broker.process.pid
        before = rss(pid)
        rate = asyncio.run(fill(broker.port, messages, keyed))
        full = rss(pid)
        login = {"username": "admin", "password": PASSWORD}
        token = httpx.post(f"{broker.url}/api/v1/sessions", json=login).json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        httpx.post(f"{broker.url}/api/v1/queues/q/purge", headers=auth).raise_for_status()
        time.sleep(1)
        purged = rss(pid)
        broker.stop()
    mib = 1 << 20
    return (
        f"{'a key each' if keyed else 'no keys   '}: {rate:>8,.0f} publishes/s; RSS at start"
        f" {before / mib:.1f} MiB, full {full / mib:.1f} MiB, purged {purged / mib:.1f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    args = parser.parse_args()
    for keyed in (False, True):
        print(run(args.messages, keyed))


if __name__ == "__main__":
    main()
