"""Stateful property test: a paged backlog hands out what an in-memory queue would.

A durable queue with a window of three messages pages constantly. Its store is the memory
store with every operation held until the test releases it (:class:`HeldStore`, like a
database thread that runs late), so reads, counts, expiries and purges complete in any
order relative to publishes, acks, nacks, unsubscribes, clock jumps and clean restarts.

Messages carry random priorities, so the queue's backlog is leveled (one paged backlog per
priority, see ``leveled_backlog``). The model is the queue's contract (docs/durability.md):
a delivery is always the highest-priority, oldest waiting message that has arrived and has
not expired (one producer's messages arrive in publish order; the queue's ``published``
count at the moment of each delivery says which had arrived then: a higher priority still
being written does not hold a delivery back); ``redelivered`` is set exactly on messages
handed out before;
an acked message never comes back; transient messages do not survive a restart, persistent
ones do; and once the store has caught up, a consumer with room is never left waiting while
a live message waits (nothing is stranded in the tail).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from buzon.broker import RELEASE, AckMode, Broker, BrokerConfig
from buzon.broker.destinations import new_record
from buzon.store import DestinationKind
from tests.broker.helpers import Clock, HeldStore, Peer, open_peer, send

Q = "/queue/paged"
PREFETCH = 2


@dataclass
class Waiting:
    seq: int
    expires_at: float | None
    persistent: bool
    priority: int
    delivered_before: bool = False
    arrived: bool = False

    def ahead_of(self, other: Waiting) -> bool:
        """Whether a queue hands this one out before ``other``."""
        return (self.priority, -self.seq) > (other.priority, -other.seq)


class PagedQueueMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.held = HeldStore()
        self.clock = Clock()
        self.record = new_record(DestinationKind.QUEUE, "paged", "id-alice", None, 0.0)
        # messages by number (their bodies): seqs start again after a restart that left
        # nothing stored, so a seq names a message within one run only
        self.waiting: dict[int, Waiting] = {}  # arrived or on their way
        self.in_flight: dict[int, Waiting] = {}
        self.outstanding: list[tuple[str, int]] = []  # (ack id, number), delivery order
        self.acked: set[int] = set()
        self.published = 0
        self.seen = 0  # deliveries of the current consumer already checked
        self.this_run: list[int] = []  # numbers published since the last start, in order
        self.arrivals: list[int] = []  # the queue's arrivals this run, at each delivery
        self.start(restored=False)

    # -- a broker over the held store ---------------------------------------------------

    def start(self, *, restored: bool) -> None:
        config = BrokerConfig(backlog_window=3, backlog_window_bytes=64, default_prefetch=PREFETCH)
        self.broker = Broker(config, clock=self.clock, log=self.held, pager=self.held)
        self.broker.add_destination(self.record, restored=restored)
        if restored:
            found = asyncio.run(self.held.store.backlogs(3, 64))
            self.broker.restore(found, cleanly=True)
        self.producer = open_peer(self.broker, "alice")
        self.consumer: Peer | None = None
        self.this_run = []
        for item in self.waiting.values():
            item.arrived = True  # restored

    def arrived_so_far(self) -> int:
        return self.broker.statistics().queues[0].published

    def check_deliveries(self) -> None:
        """Each new delivery is the oldest live waiting message, flagged as it should be."""
        if self.consumer is None:
            return
        for index, delivery in enumerate(self.consumer.deliveries[self.seen :], self.seen):
            number = int(delivery.message.body)
            assert number not in self.acked, f"acked message {number} came back"
            assert number in self.waiting, f"{number} delivered but not waiting"
            for arrived in self.this_run[: self.arrivals[index]]:
                if arrived in self.waiting:
                    self.waiting[arrived].arrived = True
            item = self.waiting.pop(number)
            item.arrived = True
            assert delivery.message.priority == item.priority
            for ahead, other in list(self.waiting.items()):
                if other.arrived and other.ahead_of(item):
                    assert self.expired(other), f"{number} delivered before {ahead}"
                    del self.waiting[ahead]  # expired: retired on the way
            assert delivery.redelivered == item.delivered_before, f"flag of {number}"
            assert not self.expired(item)
            assert delivery.ack_id is not None
            self.outstanding.append((delivery.ack_id, number))
            self.in_flight[number] = item
        self.seen = len(self.consumer.deliveries)

    def give_back(self, number: int) -> None:
        item = self.in_flight.pop(number)
        item.delivered_before = True
        self.waiting[number] = item

    # -- rules ---------------------------------------------------------------------------

    @rule(
        persistent=st.booleans(),
        ttl=st.sampled_from([None, None, 5.0, 60.0]),
        priority=st.sampled_from([None, 0, 4, 7, 9]),
    )
    def publish(self, persistent: bool, ttl: float | None, priority: int | None) -> None:
        headers: list[tuple[str, str]] = []
        if not persistent:
            headers.append(("persistent", "false"))
        if priority is not None:
            headers.append(("priority", str(priority)))
        expires_at = None
        if ttl is not None:
            expires_at = self.clock.now + ttl
            headers.append(("expires", str(int(expires_at * 1000))))
        self.published += 1
        number = self.published
        message_id = send(self.producer.session, Q, tuple(headers), b"%020d" % number)
        seq = int(message_id.rsplit("-", 1)[1])  # ids are <run prefix>-<seq>
        self.waiting[number] = Waiting(
            seq,
            None if expires_at is None else int(expires_at * 1000) / 1000,
            persistent,
            4 if priority is None else priority,
        )
        self.this_run.append(number)
        self.check_deliveries()

    @precondition(lambda self: self.consumer is None)
    @rule()
    def subscribe(self) -> None:
        self.consumer = open_peer(self.broker, "carol")
        self.seen = 0
        self.arrivals = []
        self.consumer.sink.on_deliver = lambda _: self.arrivals.append(self.arrived_so_far())
        self.consumer.subscribe(Q, AckMode.CLIENT_INDIVIDUAL, PREFETCH)
        self.check_deliveries()

    @precondition(lambda self: self.consumer is not None)
    @rule()
    def unsubscribe(self) -> None:
        assert self.consumer is not None
        for _, number in self.outstanding:
            self.give_back(number)
        self.outstanding.clear()
        self.consumer.session.unsubscribe("sub")
        self.consumer.session.close()
        self.consumer = None

    @precondition(lambda self: self.outstanding)
    @rule(which=st.integers(0, PREFETCH - 1), requeue=st.booleans())
    def settle(self, which: int, requeue: bool) -> None:
        assert self.consumer is not None
        ack_id, number = self.outstanding.pop(which % len(self.outstanding))
        if requeue:
            self.give_back(number)
            self.consumer.session.settle(ack_id, RELEASE)
        else:
            self.in_flight.pop(number)
            self.acked.add(number)
            self.consumer.session.ack(ack_id)
        self.check_deliveries()

    @rule(seconds=st.sampled_from([1.0, 10.0, 100.0]))
    def time_passes(self, seconds: float) -> None:
        self.clock.now += seconds
        self.broker.expire_messages(self.clock.now)
        self.check_deliveries()

    @precondition(lambda self: self.held.held)
    @rule()
    def store_step(self) -> None:
        self.held.step()
        self.check_deliveries()

    @rule()
    def store_catches_up(self) -> None:
        self.held.flush()
        self.check_deliveries()
        live = [s for s, m in self.waiting.items() if not self.expired(m)]
        if self.consumer is not None and len(self.outstanding) < PREFETCH:
            assert not live, f"{live} wait while a consumer has room"
        depth = self.broker.statistics().queues[0].depth
        assert len(live) <= depth <= len(self.waiting)

    @rule()
    def purge(self) -> None:
        self.held.flush()  # every publish has arrived: the purge takes them all
        self.check_deliveries()
        self.broker.purge("paged")
        self.waiting.clear()
        self.held.flush()
        self.check_deliveries()

    @rule()
    def restart(self) -> None:
        self.held.flush()
        self.check_deliveries()
        if self.consumer is not None:
            for _, number in self.outstanding:
                self.give_back(number)
            self.outstanding.clear()
        self.broker.close()
        self.held.flush()
        asyncio.run(self.held.store.open())
        self.waiting = {s: m for s, m in self.waiting.items() if m.persistent}
        self.start(restored=True)
        self.held.flush()

    # -- helpers -------------------------------------------------------------------------

    def expired(self, item: Waiting) -> bool:
        return item.expires_at is not None and item.expires_at <= self.clock.now

    @invariant()
    def nothing_acked_is_waiting(self) -> None:
        assert not (self.acked & set(self.waiting))


PagedQueueMachine.TestCase.settings = settings(
    max_examples=400,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_paged_backlog_behaves_like_the_in_memory_queue = PagedQueueMachine.TestCase
