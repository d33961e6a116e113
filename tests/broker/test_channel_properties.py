"""Stateful property test of a channel with live and durable subscribers.

Under any interleaving of publish, subscribe (live or to a durable subscription), ack,
nack, unsubscribe (keeping or forgetting a durable one), set_writable and close over a few
sessions, some of which publish a reply on the same channel from inside their sink (a
re-entrant publish), or ack or pause from there:

- a live subscription receives exactly the messages published while it was attached, in
  publish order, never marked redelivered, and holds none back while it can take them;
- a durable subscription's backlog receives every message published since it was created,
  each of which is at every moment either waiting in the backlog, held unacked by exactly
  one attached subscription, or settled exactly once; the backlog hands out the oldest
  waiting message first and marks exactly the messages delivered before as redelivered.

A message counts as published the first time the model sees it: when a publish call
returns its id, or at its first delivery if that comes first (deliveries run inside the
call). Sessions never subscribe or unsubscribe from inside a sink, so the set of
subscriptions is fixed while a rule runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from buzon.broker import RELEASE, AckMode, Broker, BrokerConfig, Session
from tests.broker.helpers import Delivery, RecordingSink, send, user

T = "/topic/prop"
MAX_PREFETCH = 3
DURABLE_NAMES = ["d1", "d2"]
REPLY = (("reply", "yes"),)


@dataclass(eq=False)
class ModelSub:
    ack_mode: AckMode
    prefetch: int
    durable: str | None
    # (ack id, seq) of unacked deliveries, in delivery order
    outstanding: list[tuple[str, int]] = field(default_factory=list)
    # live only: what it must receive (in order) and what it received
    expected: list[int] = field(default_factory=list)
    received: list[int] = field(default_factory=list)


@dataclass(eq=False)
class ModelDurable:
    expected: set[int] = field(default_factory=set)
    waiting: set[int] = field(default_factory=set)
    returning: set[int] = field(default_factory=set)
    held: set[int] = field(default_factory=set)
    settled: set[int] = field(default_factory=set)
    seen: set[int] = field(default_factory=set)


@dataclass(eq=False)
class ModelPeer:
    reply_in_sink: bool
    ack_in_sink: bool
    pause_in_sink: bool
    writable: bool = True
    subs: dict[str, ModelSub] = field(default_factory=dict)
    next_sub: int = 0


class ChannelMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.broker = Broker(BrokerConfig(default_prefetch=2, max_prefetch=MAX_PREFETCH))
        self.producer = self.broker.open_session(RecordingSink(), user("producer"))
        self.peers: dict[str, ModelPeer] = {}
        self.sessions: dict[str, Session] = {}
        self.published: set[int] = set()
        self.durables: dict[str, ModelDurable] = {}

    # -- the model's view of publishes and deliveries, checked as they happen ------------

    def on_published(self, message_id: str) -> None:
        self.saw_published(int(message_id.rsplit("-", 1)[1]))

    def saw_published(self, seq: int) -> None:
        """``seq`` was just published: every current subscription must get it."""
        if seq in self.published:
            return
        assert seq > max(self.published, default=0), "published out of order"
        self.published.add(seq)
        for peer in self.peers.values():
            for sub in peer.subs.values():
                if sub.durable is None:
                    sub.expected.append(seq)
        for durable in self.durables.values():
            durable.expected.add(seq)
            durable.waiting.add(seq)

    def on_deliver(self, session_id: str, delivery: Delivery) -> None:
        peer = self.peers[session_id]
        seq = delivery.message.seq
        self.saw_published(seq)
        sub = peer.subs[delivery.subscription_id]
        if sub.durable is None:
            assert not delivery.redelivered, "a channel never redelivers"
            assert len(sub.received) < len(sub.expected), "a message it was not there for"
            assert seq == sub.expected[len(sub.received)], "not in publish order"
            sub.received.append(seq)
        else:
            self._from_backlog(self.durables[sub.durable], seq, delivery.redelivered)
        if sub.ack_mode is AckMode.AUTO:
            assert delivery.ack_id is None
            if sub.durable is not None:
                self._settle_seq(self.durables[sub.durable], seq)
        else:
            assert delivery.ack_id is not None
            sub.outstanding.append((delivery.ack_id, seq))
            if sub.durable is not None:
                self.durables[sub.durable].held.add(seq)
            assert len(sub.outstanding) <= sub.prefetch, "prefetch window exceeded"
        session = self.sessions[session_id]
        if peer.reply_in_sink and delivery.message.headers != REPLY:
            self.on_published(send(session, T, REPLY, b"reply"))
        if peer.ack_in_sink and delivery.ack_id is not None:
            self._model_settle(sub, len(sub.outstanding) - 1, requeue=False)
            session.ack(delivery.ack_id)
        if peer.pause_in_sink:
            peer.writable = False
            session.set_writable(False)

    @staticmethod
    def _from_backlog(durable: ModelDurable, seq: int, redelivered: bool) -> None:
        assert seq in durable.waiting or seq in durable.returning, "not waiting in the backlog"
        assert seq <= min(durable.waiting, default=seq), "not the oldest waiting message"
        assert redelivered == (seq in durable.seen)
        durable.seen.add(seq)
        durable.waiting.discard(seq)
        durable.returning.discard(seq)

    @staticmethod
    def _settle_seq(durable: ModelDurable, seq: int) -> None:
        assert seq not in durable.settled, "settled twice"
        durable.settled.add(seq)

    def _model_settle(self, sub: ModelSub, index: int, *, requeue: bool) -> str:
        """Apply an ACK/NACK of ``sub.outstanding[index]`` to the model; return its ack id."""
        ack_id = sub.outstanding[index][0]
        if sub.ack_mode is AckMode.CLIENT:
            taken, sub.outstanding = sub.outstanding[: index + 1], sub.outstanding[index + 1 :]
        else:
            taken = [sub.outstanding.pop(index)]
        if sub.durable is not None:
            durable = self.durables[sub.durable]
            for _, seq in taken:
                durable.held.remove(seq)
                if requeue:
                    durable.waiting.add(seq)
                else:
                    self._settle_seq(durable, seq)
        return ack_id

    def _give_back(self, sub: ModelSub) -> None:
        """``sub`` ends: its unacked backlog messages return (live ones are dropped)."""
        if sub.durable is not None:
            durable = self.durables[sub.durable]
            for _, seq in sub.outstanding:
                durable.held.remove(seq)
                durable.returning.add(seq)
        sub.outstanding.clear()

    def _after_call(self) -> None:
        for durable in self.durables.values():
            durable.waiting |= durable.returning
            durable.returning.clear()

    def _pick_peer(self, index: int) -> tuple[str, ModelPeer]:
        session_id = sorted(self.peers)[index % len(self.peers)]
        return session_id, self.peers[session_id]

    def _all_subs(self) -> list[tuple[str, str]]:
        return [(sid, sub_id) for sid, peer in self.peers.items() for sub_id in peer.subs]

    def _attached(self, name: str) -> int:
        return sum(
            sub.durable == name for peer in self.peers.values() for sub in peer.subs.values()
        )

    def _subscribe(self, index: int, ack_mode: AckMode, prefetch: int, name: str | None) -> None:
        session_id, peer = self._pick_peer(index)
        if len(peer.subs) >= 3:
            return
        peer.next_sub += 1
        sub_id = f"s{peer.next_sub}"
        peer.subs[sub_id] = ModelSub(ack_mode, prefetch, name)
        if name is not None:
            self.durables.setdefault(name, ModelDurable())
        self.sessions[session_id].subscribe(sub_id, T, ack_mode, prefetch, durable_name=name)

    # -- rules ---------------------------------------------------------------------------

    @rule(count=st.integers(1, 3))
    def publish(self, count: int) -> None:
        for _ in range(count):
            self.on_published(self.producer.publish(T, (), b"m"))

    @precondition(lambda self: len(self.peers) < 3)
    @rule(reply_in_sink=st.booleans(), ack_in_sink=st.booleans(), pause_in_sink=st.booleans())
    def open_session(self, reply_in_sink: bool, ack_in_sink: bool, pause_in_sink: bool) -> None:
        sink = RecordingSink()
        session = self.broker.open_session(sink, user("consumer"))
        self.sessions[session.id] = session
        self.peers[session.id] = ModelPeer(reply_in_sink, ack_in_sink, pause_in_sink)
        sink.on_deliver = lambda delivery, sid=session.id: self.on_deliver(sid, delivery)

    @precondition(lambda self: bool(self.peers))
    @rule(
        index=st.integers(0, 9),
        ack_mode=st.sampled_from(list(AckMode)),
        prefetch=st.integers(1, MAX_PREFETCH),
    )
    def subscribe_live(self, index: int, ack_mode: AckMode, prefetch: int) -> None:
        self._subscribe(index, ack_mode, prefetch, None)

    @precondition(lambda self: bool(self.peers))
    @rule(
        index=st.integers(0, 9),
        ack_mode=st.sampled_from(list(AckMode)),
        prefetch=st.integers(1, MAX_PREFETCH),
        name=st.sampled_from(DURABLE_NAMES),
    )
    def subscribe_durable(self, index: int, ack_mode: AckMode, prefetch: int, name: str) -> None:
        self._subscribe(index, ack_mode, prefetch, name)

    @precondition(
        lambda self: any(s.outstanding for p in self.peers.values() for s in p.subs.values())
    )
    @rule(which=st.integers(0, 99), position=st.integers(0, 99), requeue=st.booleans())
    def settle(self, which: int, position: int, requeue: bool) -> None:
        candidates = [
            (sid, sub_id)
            for sid, sub_id in self._all_subs()
            if self.peers[sid].subs[sub_id].outstanding
        ]
        session_id, sub_id = candidates[which % len(candidates)]
        sub = self.peers[session_id].subs[sub_id]
        ack_id = self._model_settle(sub, position % len(sub.outstanding), requeue=requeue)
        session = self.sessions[session_id]
        if requeue:
            session.settle(ack_id, RELEASE)
        else:
            session.ack(ack_id)

    @precondition(lambda self: bool(self._all_subs()))
    @rule(index=st.integers(0, 99), forget=st.booleans())
    def unsubscribe(self, index: int, forget: bool) -> None:
        pairs = self._all_subs()
        session_id, sub_id = pairs[index % len(pairs)]
        sub = self.peers[session_id].subs.pop(sub_id)
        self._give_back(sub)
        # Forgetting ends the other sessions attached to it too; the model keeps to one.
        forget = forget and sub.durable is not None and self._attached(sub.durable) == 0
        self.sessions[session_id].unsubscribe(sub_id, forget=forget)
        if forget and sub.durable is not None:
            del self.durables[sub.durable]
        self._after_call()

    @precondition(lambda self: bool(self.peers))
    @rule(index=st.integers(0, 9), writable=st.booleans())
    def set_writable(self, index: int, writable: bool) -> None:
        session_id, peer = self._pick_peer(index)
        peer.writable = writable
        self.sessions[session_id].set_writable(writable)

    @precondition(lambda self: bool(self.peers))
    @rule(index=st.integers(0, 9))
    def close(self, index: int) -> None:
        session_id, peer = self._pick_peer(index)
        for sub in peer.subs.values():
            self._give_back(sub)
        self.sessions[session_id].close()
        del self.peers[session_id]
        self._after_call()

    # -- invariants ----------------------------------------------------------------------

    @invariant()
    def live_subscriptions_hold_nothing_back_they_can_take(self) -> None:
        for peer in self.peers.values():
            for sub in peer.subs.values():
                room = sub.ack_mode is AckMode.AUTO or len(sub.outstanding) < sub.prefetch
                if sub.durable is None and peer.writable and room:
                    assert sub.received == sub.expected, "a live subscription missed some"
        (stats,) = self.broker.statistics().channels or (None,)
        live = sum(s.durable is None for p in self.peers.values() for s in p.subs.values())
        assert (stats.subscribers if stats is not None else 0) == live

    @invariant()
    def every_durable_message_is_accounted_for_once(self) -> None:
        backlogs = {r.name: q for r, q in self.broker.durable_subscriptions("prop")}
        assert sorted(backlogs) == sorted(self.durables)
        for name, durable in self.durables.items():
            assert not durable.returning
            parts = (durable.waiting, durable.held, durable.settled)
            assert set().union(*parts) == durable.expected, f"{name} lost or gained messages"
            assert sum(map(len, parts)) == len(durable.expected)
            stats = backlogs[name].statistics()
            assert (stats.depth, stats.in_flight) == (len(durable.waiting), len(durable.held))

    @invariant()
    def unacked_per_session_matches(self) -> None:
        for session_id, peer in self.peers.items():
            unacked = sum(len(sub.outstanding) for sub in peer.subs.values())
            assert self.sessions[session_id].statistics().unacked == unacked

    # -- the end of every run ----------------------------------------------------------

    def teardown(self) -> None:
        """Close everyone; a fresh consumer of each durable subscription must get exactly
        what it never settled, oldest first, marked as delivered before or not."""
        while self.peers:
            self.close(0)
        for name, durable in self.durables.items():
            sink = RecordingSink()
            self.broker.open_session(sink, user("consumer")).subscribe(
                "drain", T, durable_name=name
            )
            seqs = [delivery.message.seq for delivery in sink.deliveries]
            assert seqs == sorted(durable.expected - durable.settled)
            assert [d.redelivered for d in sink.deliveries] == [s in durable.seen for s in seqs]
        self.broker.close()


ChannelMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestChannelInvariant = ChannelMachine.TestCase
