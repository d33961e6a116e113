"""Every refusal the engine makes, with its error code, and that it leaves no trace."""

from __future__ import annotations

import dataclasses

import pytest

from buzon.broker import ACCEPT, REJECT, RELEASE, AckMode, Broker, BrokerConfig, parse_destination
from buzon.broker.destinations import new_record
from buzon.errors import BrokerError, ErrorCode, LocalProtocolError
from buzon.store import DestinationKind, QueuePolicy
from tests.broker.helpers import Peer, open_peer, user

Q = "/queue/errors"


@pytest.mark.parametrize(
    "destination",
    [
        "",
        "/queue/",
        "/topic/",
        "/queue",
        "queue/x",
        "/exchange/x",
        "/temp-queue/x",
        "/queue/a/b",
        "/queue/a b",
        "/queue/ä",
        "/queue/x\n",
        "/QUEUE/x",
        "/queue/" + "a" * 201,
    ],
)
def test_bad_destinations_are_refused(broker: Broker, destination: str) -> None:
    peer = open_peer(broker)
    for attempt in (
        lambda: peer.session.publish(destination, (), b""),
        lambda: peer.session.subscribe("s", destination),
        lambda: parse_destination(destination),
    ):
        with pytest.raises(BrokerError) as caught:
            attempt()
        assert caught.value.code is ErrorCode.BAD_DESTINATION
        assert repr(destination[:20])[:-1] in caught.value.detail
    stats = broker.statistics()
    assert (stats.queues, stats.channels) == ((), ())


@pytest.mark.parametrize(
    ("destination", "kind", "name"),
    [
        ("/queue/a", DestinationKind.QUEUE, "a"),
        ("/topic/x.y-z_1:2", DestinationKind.CHANNEL, "x.y-z_1:2"),
        ("/queue/" + "n" * 200, DestinationKind.QUEUE, "n" * 200),
    ],
)
def test_good_destinations(destination: str, kind: DestinationKind, name: str) -> None:
    assert parse_destination(destination) == (kind, name)


def test_queue_and_topic_of_the_same_name_are_different(broker: Broker) -> None:
    peer = open_peer(broker).subscribe("/topic/same", subscription_id="t")
    peer.subscribe("/queue/same", subscription_id="q")
    open_peer(broker).publish("/queue/same", b"1")
    assert [d.subscription_id for d in peer.deliveries] == ["q"]


def test_duplicate_subscription_id(broker: Broker) -> None:
    peer = open_peer(broker).subscribe(Q)
    with pytest.raises(BrokerError) as caught:
        peer.session.subscribe("sub", "/topic/other")
    assert caught.value.code is ErrorCode.DUPLICATE_SUBSCRIPTION
    assert "sub" in caught.value.detail
    assert [c.name for c in broker.statistics().channels] == []


def test_subscription_id_is_reusable_after_unsubscribe(broker: Broker) -> None:
    peer = open_peer(broker).subscribe(Q)
    peer.session.unsubscribe("sub")
    peer.subscribe("/topic/other")


def test_unknown_subscription(broker: Broker) -> None:
    peer = open_peer(broker).subscribe(Q)
    with pytest.raises(BrokerError) as caught:
        open_peer(broker).session.unsubscribe("sub")  # another session's id
    assert caught.value.code is ErrorCode.UNKNOWN_SUBSCRIPTION
    peer.session.unsubscribe("sub")
    with pytest.raises(BrokerError) as caught:
        peer.session.unsubscribe("sub")
    assert caught.value.code is ErrorCode.UNKNOWN_SUBSCRIPTION


def test_unknown_ack_ids(broker: Broker, producer: Peer) -> None:
    owner = open_peer(broker, "owner").subscribe(Q, AckMode.CLIENT_INDIVIDUAL)
    stranger = open_peer(broker, "stranger").subscribe(Q, AckMode.CLIENT_INDIVIDUAL)
    auto = open_peer(broker, "auto").subscribe("/queue/auto")
    producer.publish(Q, b"1")
    producer.publish("/queue/auto", b"2")
    ack_id = owner.ack_ids()[0]
    assert auto.deliveries[0].ack_id is None
    for session, candidate in [
        (owner.session, "never-issued"),
        (owner.session, ""),
        (stranger.session, ack_id),  # another session's ack id
    ]:
        for outcome in (ACCEPT, RELEASE, REJECT):
            with pytest.raises(BrokerError) as caught:
                session.settle(candidate, outcome)
            assert caught.value.code is ErrorCode.UNKNOWN_ACK_ID
    owner.session.ack(ack_id)
    with pytest.raises(BrokerError) as caught:
        owner.session.ack(ack_id)  # already settled
    assert caught.value.code is ErrorCode.UNKNOWN_ACK_ID


def test_ack_ids_die_with_their_subscription(broker: Broker, producer: Peer) -> None:
    peer = open_peer(broker).subscribe(Q, AckMode.CLIENT)
    producer.publish(Q, b"1")
    ack_id = peer.ack_ids()[0]
    peer.session.unsubscribe("sub")
    with pytest.raises(BrokerError) as caught:
        peer.session.ack(ack_id)
    assert caught.value.code is ErrorCode.UNKNOWN_ACK_ID


def test_subscriptions_per_session_are_bounded() -> None:
    broker = Broker(BrokerConfig(max_subscriptions_per_session=2))
    peer = open_peer(broker).subscribe(Q, subscription_id="1").subscribe(Q, subscription_id="2")
    with pytest.raises(BrokerError) as caught:
        peer.subscribe(Q, subscription_id="3")
    assert caught.value.code is ErrorCode.LIMIT_EXCEEDED
    peer.session.unsubscribe("1")
    peer.subscribe(Q, subscription_id="3")


@pytest.mark.parametrize("prefetch", [0, -1, 10_001])
@pytest.mark.parametrize("ack_mode", list(AckMode))
def test_prefetch_out_of_range(broker: Broker, prefetch: int, ack_mode: AckMode) -> None:
    peer = open_peer(broker)
    with pytest.raises(BrokerError) as caught:
        peer.subscribe(Q, ack_mode, prefetch=prefetch)
    assert caught.value.code is ErrorCode.BAD_HEADER_VALUE
    assert broker.statistics().queues == ()
    peer.subscribe(Q, ack_mode, prefetch=10_000)


def test_commands_on_a_closed_session_are_a_local_error(broker: Broker) -> None:
    peer = open_peer(broker).subscribe(Q)
    peer.session.close()
    peer.session.close()  # idempotent
    peer.session.set_writable(True)  # ignored
    with pytest.raises(LocalProtocolError):
        peer.session.publish(Q, (), b"")
    with pytest.raises(LocalProtocolError):
        peer.session.subscribe("other", Q)
    assert peer.session.closed


def test_sessions_are_refused_after_broker_close(broker: Broker) -> None:
    broker.close()
    with pytest.raises(BrokerError) as caught:
        open_peer(broker)
    assert caught.value.code is ErrorCode.SERVER_SHUTDOWN


@pytest.mark.parametrize(
    "overrides",
    [
        {"default_prefetch": 0},
        {"max_prefetch": 0},
        {"default_prefetch": 11, "max_prefetch": 10},
        {"channel_max_pending": 0},
        {"queue_low_water_bytes": 2, "queue_high_water_bytes": 1},
        {"queue_low_water_bytes": -1},
        {"max_open_transactions": 0},
    ],
)
def test_config_is_validated(overrides: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="must"):
        BrokerConfig(**overrides)  # type: ignore[arg-type]


def test_messages_got_are_held_apart_from_the_subscription_limit() -> None:
    broker = Broker(BrokerConfig(max_subscriptions_per_session=2))
    peer = open_peer(broker)
    for name in ("a", "b", "c"):
        peer.session.publish(f"/queue/{name}", (), name.encode())
    held = [peer.session.get(name, ack=True) for name in ("a", "b")]
    # holding what was got from two queues leaves both subscriptions free
    peer.subscribe("/queue/x", subscription_id="1").subscribe("/queue/y", subscription_id="2")
    assert peer.session.statistics().subscriptions == 2
    with pytest.raises(BrokerError) as caught:
        peer.session.get("c", ack=True)  # a third queue's message would be held too
    assert caught.value.code is ErrorCode.LIMIT_EXCEEDED
    assert peer.session.get("c", ack=False) is not None  # nothing was taken: it is there
    peer.session.publish("/queue/c", (), b"c")
    got = held[0]
    assert got is not None
    assert got[1] is not None
    peer.session.ack(got[1])  # settled: what held it makes room
    third = peer.session.get("c", ack=True)
    assert third is not None
    assert third[0].body == b"c"


def test_what_was_got_from_a_deleted_queue_is_gone_whatever_its_settlement() -> None:
    broker = Broker(BrokerConfig())
    policy = QueuePolicy(durable=False, dead_letter_queue="jobs.dlq")
    record = dataclasses.replace(
        new_record(DestinationKind.QUEUE, "jobs", user("alice").id, None, 1.0), policy=policy
    )
    broker.add_destination(record)
    peer = open_peer(broker)
    peer.session.publish("/queue/jobs", (), b"got")
    got = peer.session.get("jobs", ack=True)
    assert got is not None
    assert got[1] is not None
    broker.delete_destination(DestinationKind.QUEUE, "jobs")
    peer.session.settle(got[1], REJECT)  # not dead-lettered: its queue is gone
    assert peer.session.statistics().unacked == 0
    assert [q.name for q in broker.statistics().queues] == []  # no dead-letter queue made
    peer.session.publish("/queue/jobs", (), b"again")  # a new queue of that name
    again = peer.session.get("jobs", ack=True)
    assert again is not None
    assert again[0].body == b"again"


def test_a_shared_prefetch_leaves_messages_got_out_of_its_count() -> None:
    broker = Broker(BrokerConfig())
    peer = open_peer(broker)
    for body in (b"1", b"2"):
        peer.session.publish("/queue/work", (), body)
    assert peer.session.get("work", ack=True) is not None  # held, then a global qos of 1
    peer.session.set_shared_prefetch(1)
    peer.subscribe("/queue/work", AckMode.CLIENT_INDIVIDUAL)
    assert [d.message.body for d in peer.deliveries] == [b"2"]
