"""What the comparison runner runs: each scenario as a load generator's command line
(``loadgen.py`` over STOMP; ``amqp_load.py``, ``amqp_pika.py`` and ``celery_load.py`` over
AMQP 0-9-1).

The comparison scenarios are the issue's, with its defaults; the scaling axes vary one
parameter of a scenario at a time. ``--quick`` divides message and connection counts by
``QUICK`` (development and the CI smoke test); the shapes (consumers, windows, sizes) stay.
Both the runner and the report read these definitions, so the commands the report prints
are the ones that ran.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from stomp_load import Result

QUICK = 10
# The backlog scenario (benchmarks/backlog.py): its own runner, and run only when asked for.
BACKLOG = "backlog"
BACKLOG_MESSAGES = 10_000_000
# The retry scenario (benchmarks/retry.py): its own runner too, and run only when asked for.
RETRY = "retry"
RETRY_MESSAGES = 100_000
KIB = 1024
MIB = 1024 * KIB
# Message bytes a size point of the scaling axis sends in all, and keeps in flight at most
# (prefetch and unconfirmed sends), so large messages do not make a run take minutes.
SIZE_AXIS_TOTAL = 300 * MIB
SIZE_AXIS_IN_FLIGHT = 10 * MIB


@dataclass(frozen=True)
class Case:
    """One loadgen invocation, run once per run against each broker."""

    name: str
    title: str
    scenario: str
    options: dict[str, int]
    persistent: bool = False
    # buzon on SQLite though no message says persistent: its defaults (durable queues, and
    # messages persistent unless they say otherwise), against RabbitMQ's
    defaults: bool = False
    tool: str = "loadgen"  # the load generator: benchmarks/<tool>.py

    @property
    def script(self) -> str:
        return f"{self.tool}.py"

    @property
    def protocol(self) -> str:
        """The listener its load generator speaks to: STOMP for ``loadgen.py``, else AMQP."""
        return "stomp" if self.tool == "loadgen" else "amqp"

    @property
    def storage(self) -> str:
        """buzon's ``--storage``: persistent messages, and buzon's defaults, go to SQLite."""
        return "sqlite" if self.persistent or self.defaults else "memory"

    @property
    def connections(self) -> int:
        """How many connections the run opens: idle ones, receivers and the producer."""
        receivers = ("connections", "consumers", "subscribers", "queues")
        return sum(self.options.get(option, 0) for option in receivers) + 1

    def loadgen_args(self) -> list[str]:
        """Its load generator's arguments for one run, but for where the broker is."""
        args = [self.scenario]
        for option, value in self.options.items():
            args += [f"--{option}", str(value)]
        return [*args, *(["--persistent"] if self.persistent else []), "--runs", "1"]


@dataclass(frozen=True)
class Axis:
    """A scaling table: one parameter, a case per value."""

    name: str
    title: str
    points: list[tuple[int, Case]]


@dataclass
class Outcome:
    """The runs of one case on one broker: the results, and why any run failed."""

    runs: list[Result] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def queue_options(divide: int, messages: int = 100_000) -> dict[str, int]:
    """The queue scenario: 1 producer, 4 consumers, 128 B, client-individual acks."""
    return {
        "messages": messages // divide,
        "consumers": 4,
        "size": 128,
        "prefetch": 1000,
        "receipt-every": 1000,
        "window": 4,
    }


def fanout_options(divide: int) -> dict[str, int]:
    """The fan-out scenario: 1 publisher, 128 B, auto-ack subscribers."""
    return {"messages": 20_000 // divide, "size": 128, "receipt-every": 1000, "window": 4}


def comparison_cases(quick: bool) -> list[Case]:
    d = QUICK if quick else 1
    queue = queue_options(d)
    fanout = {**fanout_options(d), "subscribers": 10}
    latency = {"messages": 5000 // d, "rate": 1000, "warmup": 200 // d, "size": 128}
    large = {**queue, "messages": 300 // d, "size": MIB, "prefetch": 10, "receipt-every": 10}
    idle = {"connections": 10_000 // d, **queue}

    def confirm(name: str, how: str, messages: int, window: int) -> Case:
        title = f"persistent, {how}: a receipt per message, {window} in flight"
        options = {"messages": messages // d, "window": window, "size": 128}
        return Case(name, title, "confirm", options, persistent=True)

    return [
        Case(
            "queue",
            f"queue: 1 producer, {queue['consumers']} consumers, {queue['size']} B",
            "queue",
            queue,
        ),
        Case(
            "queue-defaults",
            f"queue with each broker's defaults: durable queue, buzon persistent on SQLite,"
            f" RabbitMQ transient; 1 producer, {queue['consumers']} consumers, {queue['size']} B",
            "queue",
            queue,
            defaults=True,
        ),
        Case(
            "fanout",
            f"fan-out: 1 publisher, {fanout['subscribers']} subscribers, {fanout['size']} B",
            "fanout",
            fanout,
        ),
        Case(
            "latency",
            f"latency: 1 producer at {latency['rate']:,} msgs/s, 1 consumer",
            "latency",
            latency,
        ),
        confirm("confirm-1", "stop-and-wait", 2000, 1),
        confirm("confirm-64", "pipelined", 20_000, 64),
        Case(
            "1mib",
            f"{large['size'] // MIB} MiB messages: 1 producer, {large['consumers']} consumers,"
            f" prefetch {large['prefetch']}",
            "queue",
            large,
        ),
        Case(
            "idle",
            f"{idle['connections']:,} idle connections, then the queue scenario",
            "idle",
            idle,
        ),
        *amqp_cases(d),
    ]


def amqp_cases(divide: int) -> list[Case]:
    """The AMQP 0-9-1 scenarios: the issue's 100,000 persistent 128 B messages with confirms
    and manual acks (prefetch 1,000) through the raw-socket load generator; fan-out to 10
    queues; pika (a confirm per publish, so fewer messages); a Celery worker's no-op tasks."""
    queue = {
        **{"messages": 100_000 // divide, "consumers": 1, "size": 128},
        **{"prefetch": 1000, "window": 1000},
    }
    fanout = {"messages": 20_000 // divide, "queues": 10, "size": 128, "prefetch": 1000}
    pika = {"messages": 10_000 // divide, "size": 128, "prefetch": 1000}
    return [
        Case(
            "amqp",
            f"AMQP: {queue['messages']:,} persistent {queue['size']} B, confirms"
            f" ({queue['window']:,} in flight), manual acks, prefetch {queue['prefetch']:,}",
            "queue",
            queue,
            persistent=True,
            tool="amqp_load",
        ),
        Case(
            "amqp_fanout",
            f"AMQP fan-out: a fanout exchange, {fanout['queues']} queues, {fanout['size']} B",
            "fanout",
            {**fanout, "window": 1000},
            tool="amqp_load",
        ),
        Case(
            "amqp_pika",
            f"AMQP with pika: {pika['messages']:,} persistent {pika['size']} B, a confirm per"
            f" publish, then consumed with an ack each, prefetch {pika['prefetch']:,}",
            "pika",
            pika,
            persistent=True,
            tool="amqp_pika",
        ),
        Case(
            "celery",
            f"Celery: {10_000 // divide:,} no-op tasks, one worker (-P solo), results off",
            "celery",
            {"tasks": 10_000 // divide},
            persistent=True,
            tool="celery_load",
        ),
    ]


def backlog_args(messages: int = BACKLOG_MESSAGES) -> list[str]:
    """``backlog.py``'s arguments, but for the broker and the output: ``messages`` persistent
    128-byte messages filled with no consumer, a receipt every 1,000, then drained by 4
    consumers; the probe at one message every 50 ms and at 1,000 msgs/s."""
    return [
        *("--messages", str(messages)),
        *("--consumers", "4", "--size", "128", "--prefetch", "1000"),
        *("--receipt-every", "1000", "--window", "4", "--probe-rates", "20,1000"),
    ]


def size_options(size: int, divide: int) -> dict[str, int]:
    """The queue scenario at ``size`` bytes, with fewer messages and a smaller window when
    they are large."""
    in_flight = max(10, min(1000, SIZE_AXIS_IN_FLIGHT // size))
    messages = min(100_000, SIZE_AXIS_TOTAL // size)
    return {
        **queue_options(divide, messages),
        "size": size,
        "prefetch": in_flight,
        "receipt-every": in_flight,
    }


def scaling_axes(quick: bool) -> list[Axis]:
    d = QUICK if quick else 1

    def axis(name: str, title: str, scenario: str, points: dict[int, dict[str, int]]) -> Axis:
        return Axis(
            name,
            title,
            [
                (value, Case(f"{name}={value}", f"{title} = {value:,}", scenario, options))
                for value, options in points.items()
            ],
        )

    return [
        axis(
            "consumers",
            "queue consumers",
            "queue",
            {n: {**queue_options(d), "consumers": n} for n in (1, 2, 4, 8, 16)},
        ),
        axis(
            "subscribers",
            "channel subscribers",
            "fanout",
            {n: {**fanout_options(d), "subscribers": n} for n in (1, 10, 50, 100)},
        ),
        axis(
            "depth",
            "messages waiting in a queue",
            "depth",
            {n // d: queue_options(d, n) for n in (10_000, 100_000, 1_000_000)},
        ),
        axis(
            "size",
            "message size (bytes)",
            "queue",
            {size: size_options(size, d) for size in (128, KIB, 16 * KIB, 256 * KIB, MIB)},
        ),
        axis(
            "connections",
            "idle connections",
            "idle",
            {n // d: {"connections": n // d, **queue_options(d)} for n in (1000, 5000, 10_000)},
        ),
    ]


@dataclass(frozen=True)
class RetryVariant:
    """One way the retry scenario runs (a column of its table): ``retry.py``'s broker and
    the options beyond ``retry_args``."""

    label: str
    broker: str  # retry.py --broker
    options: tuple[str, ...]

    @property
    def backoff(self) -> bool:
        """Whether its NACKs ask for a delayed redelivery."""
        return self.options[self.options.index("--backoff") + 1] != "0,0"


def retry_args(messages: int = RETRY_MESSAGES) -> list[str]:
    """``retry.py``'s arguments common to every variant: ``messages`` persistent 128-byte
    messages, 4 consumers with client-individual acks and a prefetch of 1,000, as in the
    queue scenario; each message NACKed twice, then acked."""
    return [
        *("--messages", str(messages)),
        *("--consumers", "4", "--size", "128", "--prefetch", "1000"),
        *("--receipt-every", "1000", "--window", "4"),
    ]


def retry_variants(rabbitmq: bool) -> list[RetryVariant]:
    """buzon with back-off (50 ms, then 100 ms), and its wait phase; buzon and RabbitMQ with
    plain NACKs, requeued at once (RabbitMQ has no broker-side back-off), for reference."""
    variants = [
        RetryVariant("buzon, back-off 50 + 100 ms", "buzon", ("--backoff", "50,100")),
        RetryVariant(
            "buzon, requeued at once", "buzon", ("--backoff", "0,0", "--wait-messages", "0")
        ),
    ]
    if rabbitmq:
        variants.append(
            RetryVariant("RabbitMQ, requeued at once", "rabbitmq", ("--backoff", "0,0"))
        )
    return variants
