"""Stateful property test of expiry and give-backs on one queue.

Messages with and without an expiry time are published, pulled, acked or given back in any
order (so returned messages land before, among and behind the waiting ones), while the clock
moves and the expiry sweep runs. At every step the queue must hold exactly the messages the
model says are waiting; a sweep retires exactly the waiting messages whose time has come;
a pull hands out the oldest waiting messages that have not expired (retiring the expired
ones it meets), marked redelivered exactly when they were handed out before; a peek shows
the oldest unexpired ones without taking them.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from buzon.broker import ACCEPT, RELEASE, Broker, PublishOptions
from buzon.broker.leases import Lease
from buzon.store import DestinationKind
from tests.broker.helpers import Clock, RecordingSink, user

NAME = "expiring"
Q = f"/queue/{NAME}"
LEASE_SECONDS = 1e9  # leases never run out here: only the queue's own expiry is tested


class ExpiryMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.broker = Broker(clock=self.clock)
        self.producer = self.broker.open_session(RecordingSink(), user("producer"))
        self.puller = user("puller")
        self.waiting: dict[int, float | None] = {}  # seq -> expires_at
        self.leased: dict[str, tuple[int, float | None]] = {}  # receipt -> (seq, expires_at)
        self.seen: set[int] = set()

    def _due(self, seq: int) -> bool:
        expires_at = self.waiting[seq]
        return expires_at is not None and expires_at <= self.clock.now

    @rule(lifetime_ms=st.none() | st.integers(1, 4000))
    def publish(self, lifetime_ms: int | None) -> None:
        expires_at = None
        if lifetime_ms is not None:
            expires_at = (int(self.clock.now * 1000) + lifetime_ms) / 1000
        options = PublishOptions(expires_at=expires_at)
        message_id = self.producer.publish(Q, (), b"m", options)
        self.waiting[int(message_id.rsplit("-", 1)[1])] = expires_at

    @rule(seconds=st.sampled_from([0.0, 0.5, 1.0, 2.5]))
    def tick(self, seconds: float) -> None:
        self.clock.now += seconds

    @rule()
    def sweep(self) -> None:
        due = [seq for seq in self.waiting if self._due(seq)]
        assert self.broker.expire_messages(self.clock.now) == len(due)
        for seq in due:
            del self.waiting[seq]

    @precondition(lambda self: bool(self.waiting))
    @rule(limit=st.integers(1, 3))
    def pull(self, limit: int) -> None:
        expected: list[int] = []
        for seq in sorted(self.waiting):
            if len(expected) == limit:
                break
            if self._due(seq):
                del self.waiting[seq]  # retired on the way
            else:
                expected.append(seq)
        for seq in expected:
            del self.waiting[seq]
        leases = self.broker.pull(self.puller, NAME, limit, LEASE_SECONDS, self.clock.now)
        assert [lease.message.seq for lease in leases] == expected
        assert [lease.redelivered for lease in leases] == [s in self.seen for s in expected]
        for lease in leases:
            self.seen.add(lease.message.seq)
            self.leased[lease.receipt] = (lease.message.seq, lease.message.expires_at)

    @precondition(lambda self: bool(self.leased))
    @rule(picks=st.lists(st.integers(0, 99), min_size=1, max_size=3), requeue=st.booleans())
    def settle(self, picks: list[int], requeue: bool) -> None:
        by_seq = sorted(self.leased, key=lambda receipt: self.leased[receipt][0])
        receipts = list(dict.fromkeys(by_seq[pick % len(by_seq)] for pick in picks))
        for receipt in receipts:
            seq, expires_at = self.leased.pop(receipt)
            if requeue:
                self.waiting[seq] = expires_at
        self.broker.settle(self.puller, NAME, receipts, RELEASE if requeue else ACCEPT)

    @rule(limit=st.integers(1, 5))
    def peek(self, limit: int) -> None:
        if self.broker.destination(DestinationKind.QUEUE, NAME) is None:
            return  # nothing published yet
        shown = self.broker.peek(self.puller, NAME, limit)
        expected = [seq for seq in sorted(self.waiting) if not self._due(seq)][:limit]
        assert [message.seq for message, _ in shown] == expected

    @invariant()
    def the_queue_holds_what_the_model_says(self) -> None:
        queues = self.broker.statistics().queues
        if not queues:
            assert not self.waiting
            return
        (stats,) = queues
        assert (stats.depth, stats.in_flight) == (len(self.waiting), len(self.leased))
        assert stats.bytes == len(self.waiting) + len(self.leased)

    def teardown(self) -> None:
        """Give everything back and drain: exactly the unexpired waiting ones, in order."""
        if self.leased:
            self.broker.settle(self.puller, NAME, sorted(self.leased), RELEASE)
            self.waiting.update(self.leased.values())
        remaining: list[Lease] = []
        while self.broker.statistics().queues and self.broker.statistics().queues[0].depth:
            remaining += self.broker.pull(self.puller, NAME, 100, LEASE_SECONDS, self.clock.now)
        live = [seq for seq in sorted(self.waiting) if not self._due(seq)]
        assert [lease.message.seq for lease in remaining] == live


ExpiryMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestQueueExpiry = ExpiryMachine.TestCase
