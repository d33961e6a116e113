"""Stateful property test of the queue invariant.

Under any interleaving of publish, subscribe, ack, nack, unsubscribe, set_writable and
close over a few sessions (some acking or pausing from inside their sink), every published
message is at every moment either settled exactly once, held unacked by exactly one
subscription, or waiting in the queue; no subscription exceeds its prefetch window; the
queue hands out the oldest waiting message first; and ``redelivered`` is set exactly on
messages delivered before. The model is updated *before* each engine call, because the
engine redelivers returned messages synchronously inside the call.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from buzon.broker import RELEASE, AckMode, Broker, BrokerConfig, Session
from tests.broker.helpers import Delivery, RecordingSink, user

Q = "/queue/prop"
MAX_PREFETCH = 3


@dataclass(eq=False)
class ModelSub:
    ack_mode: AckMode
    prefetch: int
    # (ack id, seq) of unacked deliveries, in delivery order
    outstanding: list[tuple[str, int]] = field(default_factory=list)


@dataclass(eq=False)
class ModelPeer:
    sink: RecordingSink
    ack_in_sink: bool
    pause_in_sink: bool
    subs: dict[str, ModelSub] = field(default_factory=dict)
    next_sub: int = 0


class QueueMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.broker = Broker(BrokerConfig(default_prefetch=2, max_prefetch=MAX_PREFETCH))
        self.producer = self.broker.open_session(RecordingSink(), user("producer"))
        self.peers: dict[str, ModelPeer] = {}
        self.sessions: dict[str, Session] = {}
        self.published: set[int] = set()
        self.ready: set[int] = set()
        self.returning: set[int] = set()
        self.held: set[int] = set()
        self.settled: set[int] = set()
        self.seen: set[int] = set()

    # -- the model's view of one delivery, checked as it happens -------------------------

    def on_deliver(self, session_id: str, delivery: Delivery) -> None:
        peer = self.peers[session_id]
        seq = delivery.message.seq
        if seq not in self.published:  # the message being published right now
            self.published.add(seq)
            self.ready.add(seq)
        assert seq in self.ready or seq in self.returning, "delivered twice while unacked"
        assert seq <= min(self.ready, default=seq), "not the oldest waiting message"
        assert delivery.redelivered == (seq in self.seen)
        self.seen.add(seq)
        self.ready.discard(seq)
        self.returning.discard(seq)
        sub = peer.subs[delivery.subscription_id]
        if sub.ack_mode is AckMode.AUTO:
            assert delivery.ack_id is None
            self._settle_seq(seq)
            return
        assert delivery.ack_id is not None
        sub.outstanding.append((delivery.ack_id, seq))
        self.held.add(seq)
        assert len(sub.outstanding) <= sub.prefetch, "prefetch window exceeded"
        session = self.broker_session(session_id)
        if peer.ack_in_sink:
            self._model_settle(sub, len(sub.outstanding) - 1, requeue=False)
            session.ack(delivery.ack_id)
        if peer.pause_in_sink:
            session.set_writable(False)

    def broker_session(self, session_id: str) -> Session:
        return self.sessions[session_id]

    def _settle_seq(self, seq: int) -> None:
        assert seq not in self.settled, "settled twice"
        self.settled.add(seq)

    def _model_settle(self, sub: ModelSub, index: int, *, requeue: bool) -> str:
        """Apply an ACK/NACK of ``sub.outstanding[index]`` to the model; return its ack id."""
        ack_id = sub.outstanding[index][0]
        if sub.ack_mode is AckMode.CLIENT:
            taken, sub.outstanding = sub.outstanding[: index + 1], sub.outstanding[index + 1 :]
        else:
            taken = [sub.outstanding.pop(index)]
        for _, seq in taken:
            self.held.remove(seq)
            if requeue:
                self.ready.add(seq)
            else:
                self._settle_seq(seq)
        return ack_id

    def _pick_peer(self, index: int) -> tuple[str, ModelPeer]:
        session_id = sorted(self.peers)[index % len(self.peers)]
        return session_id, self.peers[session_id]

    def _subs_with_outstanding(self) -> list[tuple[str, str]]:
        return [
            (sid, sub_id)
            for sid, peer in self.peers.items()
            for sub_id, sub in peer.subs.items()
            if sub.outstanding
        ]

    def _after_call(self) -> None:
        self.ready |= self.returning
        self.returning.clear()

    # -- rules ---------------------------------------------------------------------------

    @rule(count=st.integers(1, 4))
    def publish(self, count: int) -> None:
        for _ in range(count):
            message_id = self.producer.publish(Q, (), b"m")
            seq = int(message_id.rsplit("-", 1)[1])
            if seq not in self.published:  # not delivered during the call
                self.published.add(seq)
                self.ready.add(seq)

    @precondition(lambda self: len(self.peers) < 3)
    @rule(ack_in_sink=st.booleans(), pause_in_sink=st.booleans())
    def open_session(self, ack_in_sink: bool, pause_in_sink: bool) -> None:
        sink = RecordingSink()
        session = self.broker.open_session(sink, user("consumer"))
        self.sessions[session.id] = session
        self.peers[session.id] = ModelPeer(sink, ack_in_sink, pause_in_sink)
        sink.on_deliver = lambda delivery, sid=session.id: self.on_deliver(sid, delivery)

    @precondition(lambda self: bool(self.peers))
    @rule(
        index=st.integers(0, 9),
        ack_mode=st.sampled_from(list(AckMode)),
        prefetch=st.integers(1, MAX_PREFETCH),
    )
    def subscribe(self, index: int, ack_mode: AckMode, prefetch: int) -> None:
        session_id, peer = self._pick_peer(index)
        if len(peer.subs) >= 3:
            return
        peer.next_sub += 1
        sub_id = f"s{peer.next_sub}"
        peer.subs[sub_id] = ModelSub(ack_mode, prefetch)
        self.broker_session(session_id).subscribe(sub_id, Q, ack_mode, prefetch)

    @precondition(lambda self: bool(self._subs_with_outstanding()))
    @rule(which=st.integers(0, 99), position=st.integers(0, 99), requeue=st.booleans())
    def settle(self, which: int, position: int, requeue: bool) -> None:
        candidates = self._subs_with_outstanding()
        session_id, sub_id = candidates[which % len(candidates)]
        sub = self.peers[session_id].subs[sub_id]
        ack_id = self._model_settle(sub, position % len(sub.outstanding), requeue=requeue)
        session = self.broker_session(session_id)
        if requeue:
            session.settle(ack_id, RELEASE)
        else:
            session.ack(ack_id)

    @precondition(lambda self: any(peer.subs for peer in self.peers.values()))
    @rule(index=st.integers(0, 99))
    def unsubscribe(self, index: int) -> None:
        pairs = [(sid, sub_id) for sid, peer in self.peers.items() for sub_id in peer.subs]
        session_id, sub_id = pairs[index % len(pairs)]
        sub = self.peers[session_id].subs.pop(sub_id)
        for _, seq in sub.outstanding:
            self.held.remove(seq)
            self.ready.add(seq)
        self.broker_session(session_id).unsubscribe(sub_id)

    @precondition(lambda self: bool(self.peers))
    @rule(index=st.integers(0, 9), writable=st.booleans())
    def set_writable(self, index: int, writable: bool) -> None:
        session_id, _ = self._pick_peer(index)
        self.broker_session(session_id).set_writable(writable)

    @precondition(lambda self: bool(self.peers))
    @rule(index=st.integers(0, 9))
    def close(self, index: int) -> None:
        session_id, peer = self._pick_peer(index)
        for sub in peer.subs.values():
            for _, seq in sub.outstanding:
                self.held.remove(seq)
                self.returning.add(seq)
            sub.outstanding.clear()
        self.broker_session(session_id).close()
        del self.peers[session_id]
        self._after_call()

    # -- invariants ----------------------------------------------------------------------

    @invariant()
    def every_message_is_accounted_for_once(self) -> None:
        assert not self.returning
        assert self.ready | self.held | self.settled == self.published
        assert len(self.ready) + len(self.held) + len(self.settled) == len(self.published)
        queues = self.broker.statistics().queues
        if not queues:
            assert not self.published
            return
        stats = queues[0]
        assert stats.depth == len(self.ready)
        assert stats.in_flight == len(self.held)
        assert stats.acked == len(self.settled)
        assert stats.bytes == self.broker.statistics().queued_bytes == len(self.ready | self.held)

    @invariant()
    def unacked_per_session_matches(self) -> None:
        for session_id, peer in self.peers.items():
            unacked = sum(len(sub.outstanding) for sub in peer.subs.values())
            assert self.broker_session(session_id).statistics().unacked == unacked

    # -- the end of every run ----------------------------------------------------------

    def teardown(self) -> None:
        """Close everyone; a fresh consumer must get exactly what was never settled."""
        while self.peers:
            self.close(0)
        sink = RecordingSink()
        session = self.broker.open_session(sink, user("drain"))
        session.subscribe("all", Q)
        seqs = [delivery.message.seq for delivery in sink.deliveries]
        assert seqs == sorted(self.published - self.settled)
        assert [d.redelivered for d in sink.deliveries] == [s in self.seen for s in seqs]
        self.broker.close()


QueueMachine.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestQueueInvariant = QueueMachine.TestCase
