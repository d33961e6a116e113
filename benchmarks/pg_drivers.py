"""PostgreSQL drivers on the cluster store's hot path: asyncpg against psycopg 3 (async).

A private PostgreSQL server (tests/postgres_server.py) holds one ``messages`` table shaped as
the cluster store's, with the partial index its claims read. Each driver, on one connection
in autocommit mode on the broker's event loop (uvloop when installed), runs:

- insert: batches of messages of 128 B, one transaction per batch, three ways: one
  multi-row ``INSERT ... SELECT * FROM unnest(<one array per column>)``, ``executemany``
  (pipelined by both drivers; psycopg's inside an explicit transaction), and binary ``COPY``;
- claim: ``UPDATE ... WHERE (queue_id, seq) IN (SELECT ... FOR UPDATE SKIP LOCKED) RETURNING``
  of the next n ready messages of one queue, until the queue is empty;
- ack: batched deletes by key, the keys sent as two arrays (``unnest``);
- publish+ack: a group commit, one transaction inserting a batch (unnest) and acking as many
  other messages, two ways: two statements in a transaction (psycopg pipelines BEGIN, both
  and COMMIT in one round trip; asyncpg has no such pipeline and waits for each), and one
  statement (the delete in a data-modifying ``WITH``: one round trip for both drivers).

Every run checks its result (rows inserted, each message claimed once, the acked messages
gone). A figure is the median of the runs, which alternate between the drivers: messages
per second, and the CPU time the client process (this one) and the server process of its
connection used per 1,000 messages (the machine has 2 cores: a node's CPU is its ceiling).

Usage:
    python benchmarks/pg_drivers.py [--messages 50000] [--runs 3] [--quick] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import asyncpg
import psycopg

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the throwaway server is the test suite's own

from tests.postgres_server import OWNER, PostgresServer, postgres_server  # noqa: E402

SCHEMA = """
CREATE TABLE messages (
    queue_id text, seq bigint, message_id text, destination text, headers text, body bytea,
    expires_at double precision, redelivered boolean, persistent boolean, claimed_by bigint,
    PRIMARY KEY (queue_id, seq)
);
CREATE INDEX messages_ready ON messages (queue_id, seq) WHERE claimed_by IS NULL;
"""
COLUMNS = (
    "queue_id",
    "seq",
    "message_id",
    "destination",
    "headers",
    "body",
    "expires_at",
    "redelivered",
    "persistent",
)
TYPES = ("text", "bigint", "text", "text", "text", "bytea", "float8", "boolean", "boolean")
INSERT_UNNEST = """
INSERT INTO messages
    (queue_id, seq, message_id, destination, headers, body, expires_at, redelivered, persistent)
SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[],
                     $6::bytea[], $7::float8[], $8::boolean[], $9::boolean[])
"""
INSERT_ROW = """
INSERT INTO messages
    (queue_id, seq, message_id, destination, headers, body, expires_at, redelivered, persistent)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
"""
COPY = """
COPY messages
    (queue_id, seq, message_id, destination, headers, body, expires_at, redelivered, persistent)
FROM STDIN (FORMAT BINARY)
"""
CLAIM = (
    "UPDATE messages SET claimed_by = $1::bigint WHERE (queue_id, seq) IN ("
    "SELECT queue_id, seq FROM messages WHERE queue_id = $2::text AND claimed_by IS NULL"
    " ORDER BY seq LIMIT $3::int FOR UPDATE SKIP LOCKED)"
    " RETURNING queue_id, seq, message_id, destination, headers, body, expires_at, redelivered"
)
ACK = (
    "DELETE FROM messages WHERE (queue_id, seq) IN"
    " (SELECT * FROM unnest($1::text[], $2::bigint[])) AND claimed_by = $3::bigint"
)
PUBLISH_ACK = """
WITH acked AS (
    DELETE FROM messages WHERE (queue_id, seq) IN (SELECT * FROM unnest($1::text[], $2::bigint[]))
                           AND claimed_by = $3::bigint
)
INSERT INTO messages
    (queue_id, seq, message_id, destination, headers, body, expires_at, redelivered, persistent)
SELECT * FROM unnest($4::text[], $5::bigint[], $6::text[], $7::text[], $8::text[],
                     $9::bytea[], $10::float8[], $11::boolean[], $12::boolean[])
"""
PRELOAD = """
INSERT INTO messages (queue_id, seq, message_id, destination, headers, body, expires_at,
                      redelivered, persistent, claimed_by)
SELECT $1::text, g, 'm-' || g, '/queue/bench', '{}', $2::bytea, NULL, false, true, $3::bigint
FROM generate_series(1, $4::bigint) AS g
"""
QUEUE, ACKED, NODE = "queue-1", "queue-2", 7
BODY_SIZE = 128
HEADERS = '{"content-type":"application/octet-stream","priority":"4"}'

Row = tuple[str, int, str, str, str, bytes, float | None, bool, bool]
Acks = tuple[list[str], list[int], int]
"""Messages to ack: their queues and sequence numbers, and the node that holds them."""


def psycopg_sql(sql: str) -> str:
    """The same statement with psycopg's placeholders (each ``$n`` used once, in order).

    ``%b`` asks for binary parameters: psycopg's default (``%s``) sends strings, and so arrays
    of them, as text, which costs its client about 8 times the CPU on the unnest insert.
    """
    return re.sub(r"\$\d+", "%b", sql)


def make_rows(messages: int) -> list[Row]:
    """Messages of one queue: 128 random bytes each, one in four with an expiry."""
    expires = time.time() + 3600
    return [
        (
            QUEUE,
            seq,
            f"node-7-{seq}",
            "/queue/bench",
            HEADERS,
            os.urandom(BODY_SIZE),
            expires if seq % 4 == 0 else None,
            False,
            True,
        )
        for seq in range(1, messages + 1)
    ]


def batches(rows: Sequence[Row], size: int) -> list[list[Row]]:
    return [list(rows[start : start + size]) for start in range(0, len(rows), size)]


def columns(batch: Sequence[Row]) -> list[list[Any]]:
    """One array per column, as ``unnest`` takes them."""
    return [list(column) for column in zip(*batch, strict=True)]


class Driver(Protocol):
    name: str

    def backend_pid(self) -> int: ...

    async def insert_unnest(self, arrays: list[list[Any]]) -> None: ...

    async def insert_many(self, rows: list[Row]) -> None: ...

    async def insert_copy(self, rows: list[Row]) -> None: ...

    async def claim(self, node: int, queue: str, n: int) -> Sequence[Any]: ...

    async def ack(self, queues: list[str], seqs: list[int], node: int) -> None: ...

    async def publish_ack(self, arrays: list[list[Any]], acks: Acks) -> None: ...

    async def publish_ack_one_statement(self, arrays: list[list[Any]], acks: Acks) -> None: ...

    async def close(self) -> None: ...


class Asyncpg:
    """asyncpg: binary protocol, statements prepared and cached by the connection."""

    name = "asyncpg"

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    @classmethod
    async def connect(cls, url: str) -> Asyncpg:
        return cls(await asyncpg.connect(url))

    def backend_pid(self) -> int:
        return self.conn.get_server_pid()

    async def insert_unnest(self, arrays: list[list[Any]]) -> None:
        await self.conn.execute(INSERT_UNNEST, *arrays)

    async def insert_many(self, rows: list[Row]) -> None:
        # atomic: the whole batch is one implicit transaction, sent as one pipeline
        await self.conn.executemany(INSERT_ROW, rows)

    async def insert_copy(self, rows: list[Row]) -> None:
        await self.conn.copy_records_to_table("messages", records=rows, columns=list(COLUMNS))

    async def claim(self, node: int, queue: str, n: int) -> Sequence[Any]:
        return await self.conn.fetch(CLAIM, node, queue, n)

    async def ack(self, queues: list[str], seqs: list[int], node: int) -> None:
        await self.conn.execute(ACK, queues, seqs, node)

    async def publish_ack(self, arrays: list[list[Any]], acks: Acks) -> None:
        async with self.conn.transaction():
            await self.conn.execute(INSERT_UNNEST, *arrays)
            await self.conn.execute(ACK, *acks)

    async def publish_ack_one_statement(self, arrays: list[list[Any]], acks: Acks) -> None:
        await self.conn.execute(PUBLISH_ACK, *acks, *arrays)

    async def close(self) -> None:
        await self.conn.close()


class Psycopg:
    """psycopg 3, async: binary results, prepared statements, pipeline mode for batches."""

    name = "psycopg"

    def __init__(self, conn: psycopg.AsyncConnection[tuple[Any, ...]]) -> None:
        self.conn = conn
        self.cursor = conn.cursor(binary=True)

    @classmethod
    async def connect(cls, url: str) -> Psycopg:
        return cls(await psycopg.AsyncConnection.connect(url, autocommit=True))

    def backend_pid(self) -> int:
        return self.conn.info.backend_pid

    async def insert_unnest(self, arrays: list[list[Any]]) -> None:
        await self.cursor.execute(INSERT_UNNEST_PG, arrays, prepare=True)

    async def insert_many(self, rows: list[Row]) -> None:
        # BEGIN, the inserts and COMMIT in one pipeline: one round trip for the batch
        async with self.conn.pipeline(), self.conn.transaction():
            await self.cursor.executemany(INSERT_ROW_PG, rows)

    async def insert_copy(self, rows: list[Row]) -> None:
        async with self.cursor.copy(COPY) as copy:
            copy.set_types(list(TYPES))
            for row in rows:
                await copy.write_row(row)

    async def claim(self, node: int, queue: str, n: int) -> Sequence[Any]:
        await self.cursor.execute(CLAIM_PG, (node, queue, n), prepare=True)
        return await self.cursor.fetchall()

    async def ack(self, queues: list[str], seqs: list[int], node: int) -> None:
        await self.cursor.execute(ACK_PG, (queues, seqs, node), prepare=True)

    async def publish_ack(self, arrays: list[list[Any]], acks: Acks) -> None:
        async with self.conn.pipeline(), self.conn.transaction():
            await self.cursor.execute(INSERT_UNNEST_PG, arrays, prepare=True)
            await self.cursor.execute(ACK_PG, acks, prepare=True)

    async def publish_ack_one_statement(self, arrays: list[list[Any]], acks: Acks) -> None:
        await self.cursor.execute(PUBLISH_ACK_PG, [*acks, *arrays], prepare=True)

    async def close(self) -> None:
        await self.conn.close()


INSERT_UNNEST_PG, INSERT_ROW_PG = psycopg_sql(INSERT_UNNEST), psycopg_sql(INSERT_ROW)
CLAIM_PG, ACK_PG, PUBLISH_ACK_PG = psycopg_sql(CLAIM), psycopg_sql(ACK), psycopg_sql(PUBLISH_ACK)
CONNECT: dict[str, Callable[[str], Awaitable[Driver]]] = {
    "asyncpg": Asyncpg.connect,
    "psycopg": Psycopg.connect,
}


@dataclass
class Sample:
    """One timed run: its messages, wall time and CPU seconds of the client and the server."""

    driver: str
    path: str
    batch: int
    messages: int
    seconds: float
    client_cpu_s: float
    server_cpu_s: float


def server_cpu(pid: int) -> float:
    """CPU seconds (user + system) a server process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Bench:
    """The table, reset before each run by a superuser connection of its own."""

    def __init__(self, admin: asyncpg.Connection, rows: list[Row]) -> None:
        self.admin, self.rows = admin, rows

    async def reset(self, path: str, messages: int) -> None:
        """An empty table, or one holding the ``messages`` that ``path`` claims or acks."""
        await self.admin.execute("TRUNCATE messages")
        if not path.startswith("insert"):
            queue = ACKED if path.startswith("publish+ack") else QUEUE
            claimed_by = None if path == "claim" else NODE
            body = os.urandom(BODY_SIZE)
            await self.admin.execute(PRELOAD, queue, body, claimed_by, messages)
        await self.admin.execute("ANALYZE messages")
        await self.admin.execute("CHECKPOINT")

    async def run(self, driver: Driver, path: str, batch: int, messages: int) -> Sample:
        """One timed run of ``path`` over ``messages`` messages, checked."""
        await self.reset(path, messages)
        pid = driver.backend_pid()
        rows = self.rows[:messages]
        batch_calls = [] if path == "claim" else calls(driver, path, batch, rows)
        client, server, start = time.process_time(), server_cpu(pid), time.perf_counter()
        if path == "claim":
            done = await claim_all(driver, batch)
        else:
            for method, args in batch_calls:
                await method(*args)
            done = len(rows)
        seconds = time.perf_counter() - start
        client, server = time.process_time() - client, server_cpu(pid) - server
        what = f"{driver.name} {path} {batch}"
        assert done == messages, f"{what}: {done} of {messages} messages"
        left = await self.admin.fetchval("SELECT count(*) FROM messages WHERE queue_id = $1", QUEUE)
        assert left == (0 if path == "ack" else messages), f"{what}: {left} rows left"
        unacked = await self.admin.fetchval(
            "SELECT count(*) FROM messages WHERE queue_id <> $1", QUEUE
        )
        assert unacked == 0, f"{what}: {unacked} messages not acked"
        return Sample(driver.name, path, batch, messages, seconds, client, server)


Call = tuple[Callable[..., Awaitable[None]], tuple[Any, ...]]
"""One batch's call: a driver method and its arguments."""


def calls(driver: Driver, path: str, batch: int, rows: list[Row]) -> list[Call]:
    """The calls that do ``path`` over ``rows``, one per batch (all but claim).

    Their arguments (column arrays, keys) are built here, before the clock starts: they cost
    the same whichever driver sends them.
    """

    def keys(queue: str, group: list[Row]) -> Acks:
        return [queue] * len(group), [row[1] for row in group], NODE

    per_batch: dict[str, Callable[[list[Row]], Call]] = {
        "insert unnest": lambda group: (driver.insert_unnest, (columns(group),)),
        "insert executemany": lambda group: (driver.insert_many, (group,)),
        "insert COPY": lambda group: (driver.insert_copy, (group,)),
        "ack": lambda group: (driver.ack, keys(QUEUE, group)),
        "publish+ack: transaction": lambda group: (
            driver.publish_ack,
            (columns(group), keys(ACKED, group)),
        ),
        "publish+ack: one statement": lambda group: (
            driver.publish_ack_one_statement,
            (columns(group), keys(ACKED, group)),
        ),
    }
    return [per_batch[path](group) for group in batches(rows, batch)]


async def claim_all(driver: Driver, batch: int) -> int:
    """Claim until the queue is empty; how many distinct messages were claimed."""
    seen: set[int] = set()
    while claimed := await driver.claim(NODE, QUEUE, batch):
        seen.update(row[1] for row in claimed)
    return len(seen)


PATHS = {
    "insert unnest": (64, 256, 1024),
    "insert executemany": (64, 256, 1024),
    "insert COPY": (64, 256, 1024),
    "claim": (100, 500),
    "ack": (64, 256, 1024),
    "publish+ack: transaction": (64, 256),
    "publish+ack: one statement": (64, 256),
}
QUICK_PATHS = {path: sizes[:1] for path, sizes in PATHS.items()}


async def measure(
    server: PostgresServer, messages: int, runs: int, paths: dict[str, tuple[int, ...]]
) -> list[Sample]:
    """Each path and batch size: an untimed warm-up (statements prepared, caches filled, as
    on a node's long-lived connections), then ``runs`` timed runs per driver."""
    url = server.new_database()
    admin = await asyncpg.connect(url.replace(f"{OWNER}@", "postgres@", 1))
    drivers: list[Driver] = []
    try:
        await admin.execute(SCHEMA)
        await admin.execute(f"ALTER TABLE messages OWNER TO {OWNER}")
        bench = Bench(admin, make_rows(messages))
        drivers = [await connect(url) for connect in CONNECT.values()]
        samples: list[Sample] = []
        for path, sizes in paths.items():
            for batch in sizes:
                for driver in drivers:
                    await bench.run(driver, path, batch, min(messages, 2 * batch))
                for run in range(runs):
                    # alternate which driver goes first, so drift favours neither
                    for driver in drivers if run % 2 == 0 else drivers[::-1]:
                        samples.append(await bench.run(driver, path, batch, messages))  # noqa: PERF401
        return samples
    finally:
        for driver in drivers:
            await driver.close()
        await admin.close()


def median(samples: list[Sample], driver: str, path: str, batch: int) -> tuple[float, ...]:
    """Messages per second, and client and server CPU milliseconds per 1,000 messages."""
    mine = [s for s in samples if (s.driver, s.path, s.batch) == (driver, path, batch)]
    return (
        statistics.median(s.messages / s.seconds for s in mine),
        statistics.median(s.client_cpu_s / s.messages * 1e6 for s in mine),
        statistics.median(s.server_cpu_s / s.messages * 1e6 for s in mine),
    )


def table(samples: list[Sample], paths: dict[str, tuple[int, ...]]) -> list[str]:
    lines = [
        "| path | batch | asyncpg msgs/s | psycopg msgs/s | psycopg / asyncpg"
        " | client CPU ms per 1,000: asyncpg | psycopg"
        " | server CPU ms per 1,000: asyncpg | psycopg |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for path, sizes in paths.items():
        for batch in sizes:
            a_rate, a_client, a_server = median(samples, "asyncpg", path, batch)
            p_rate, p_client, p_server = median(samples, "psycopg", path, batch)
            lines.append(
                f"| {path} | {batch} | {a_rate:,.0f} | {p_rate:,.0f} | {p_rate / a_rate:.2f}x"
                f" | {a_client:.1f} | {p_client:.1f} | {a_server:.1f} | {p_server:.1f} |"
            )
    return lines


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed, as ``buzon serve`` runs."""
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=50_000, help="messages per run")
    parser.add_argument("--runs", type=int, default=3, help="runs per driver and batch size")
    parser.add_argument("--quick", action="store_true", help="2,048 messages, 1 run, 1 size")
    parser.add_argument("--json", type=Path, help="also write each run as a JSON line here")
    args = parser.parse_args(argv)
    paths = QUICK_PATHS if args.quick else PATHS
    messages, runs = (2048, 1) if args.quick else (args.messages, args.runs)
    if messages < max(size for sizes in paths.values() for size in sizes):
        parser.error("--messages must be at least the largest batch size")
    with postgres_server() as server, asyncio.Runner(loop_factory=loop_factory()) as runner:
        samples = runner.run(measure(server, messages, runs, paths))
        version = server.psql("postgres", "SHOW server_version").strip()
    if args.json:
        with args.json.open("w") as out:
            for sample in samples:
                out.write(json.dumps(asdict(sample)) + "\n")
    print(
        f"PostgreSQL {version}, asyncpg {asyncpg.__version__}, psycopg {psycopg.__version__}"
        f" ({psycopg.pq.__impl__} libpq {psycopg.pq.version()}), loop"
        f" {'uvloop' if loop_factory() else 'asyncio'}; {messages:,} messages of {BODY_SIZE} B"
        f" per run, median of {runs}"
    )
    print()
    print("\n".join(table(samples, paths)))
    print()
    print("every message checked")


if __name__ == "__main__":
    main()
