"""Durable channel subscriptions: a backlog that fills while its owner is away."""

from __future__ import annotations

import pytest

from buzon.broker import AckMode, Broker, BrokerConfig
from buzon.errors import BrokerError, ErrorCode
from buzon.store import DestinationKind, DurableSubscriptionRecord, StoredMessage
from tests.broker.helpers import HeldLog, Peer, found, open_peer

T = "/topic/audit"


def durable(peer: Peer, name: str = "trail", ack: AckMode = AckMode.AUTO) -> Peer:
    peer.session.subscribe("sub", T, ack, durable_name=name)
    return peer


def test_messages_published_while_away_arrive_on_return_in_order(broker: Broker) -> None:
    recorded: list[tuple[DurableSubscriptionRecord, bool]] = []
    broker.on_durable.append(lambda record, created: recorded.append((record, created)))
    first = durable(open_peer(broker, "alice"))
    plain = open_peer(broker, "bob").subscribe(T)
    producer = open_peer(broker, "carol")
    producer.publish(T, b"1")
    first.session.close()
    plain.session.close()
    producer.publish(T, b"2", b"3")
    again = durable(open_peer(broker, "alice"))
    assert first.bodies() == [b"1"]
    assert again.bodies() == [b"2", b"3"]
    assert plain.bodies() == [b"1"]  # an ordinary subscription got only what it was there for
    ((record, created),) = recorded  # created once, reused on return
    assert (record.name, record.owner_id, created) == ("trail", "id-alice", True)


def test_each_owner_has_their_own_subscription_of_a_name(broker: Broker) -> None:
    alice = durable(open_peer(broker, "alice"))
    alice.session.close()
    open_peer(broker, "carol").publish(T, b"for alice")
    bob = durable(open_peer(broker, "bob"))  # same name, another user: a new, empty one
    assert bob.bodies() == []
    assert durable(open_peer(broker, "alice")).bodies() == [b"for alice"]


def test_the_backlog_is_bounded_and_drops_the_oldest() -> None:
    broker = Broker(BrokerConfig(durable_backlog_max=2))
    durable(open_peer(broker, "alice")).session.close()
    open_peer(broker, "carol").publish(T, b"1", b"2", b"3")
    assert durable(open_peer(broker, "alice")).bodies() == [b"2", b"3"]


def test_unacked_backlog_messages_come_back_redelivered(broker: Broker) -> None:
    first = durable(open_peer(broker, "alice"), ack=AckMode.CLIENT_INDIVIDUAL)
    open_peer(broker, "carol").publish(T, b"important")
    first.session.close()
    again = durable(open_peer(broker, "alice"), ack=AckMode.CLIENT_INDIVIDUAL)
    assert again.bodies() == [b"important"]
    assert again.flags() == [True]


def test_forgetting_deletes_the_subscription_and_its_backlog(broker: Broker) -> None:
    dropped: list[bool] = []
    broker.on_durable.append(lambda _, created: dropped.append(created))
    peer = durable(open_peer(broker, "alice"))
    open_peer(broker, "carol").publish(T, b"seen")
    peer.session.unsubscribe("sub", forget=True)
    open_peer(broker, "carol").publish(T, b"nobody keeps this")
    assert durable(open_peer(broker, "alice")).bodies() == []
    assert dropped == [True, False, True]


def test_durable_is_for_channels_only(broker: Broker) -> None:
    with pytest.raises(BrokerError) as refused:
        open_peer(broker).session.subscribe("s", "/queue/q", durable_name="x")
    assert refused.value.code is ErrorCode.BAD_HEADER_VALUE


def test_deleting_the_channel_ends_durable_consumers(broker: Broker) -> None:
    peer = durable(open_peer(broker, "alice"))
    broker.delete_destination(DestinationKind.CHANNEL, "audit")
    assert [code for code, _ in peer.sink.close_requests] == [ErrorCode.DESTINATION_DELETED]
    assert broker.durable_subscriptions("audit") == []


def test_backlogs_are_logged_per_subscription_and_recovered() -> None:
    log = HeldLog()
    broker = Broker(BrokerConfig(), log=log)
    created: list[DurableSubscriptionRecord] = []
    broker.on_durable.append(lambda record, _: created.append(record))
    for owner in ("alice", "bob"):
        durable(open_peer(broker, owner)).session.close()
    open_peer(broker, "carol").publish(T, b"kept twice")
    log.resolve()
    assert sorted(key[0] for key in log.kept) == sorted(r.id for r in created)
    # a restart: a new engine restores the channel, the subscriptions, then the messages
    restarted = Broker(BrokerConfig(), log=HeldLog())
    channel = broker.destination(DestinationKind.CHANNEL, "audit")
    assert channel is not None
    restarted.add_destination(channel.record)
    assert restarted.restore_durables(created) == 2
    messages: list[StoredMessage] = list(log.kept.values())
    assert restarted.restore(found(messages), cleanly=True) == 2
    assert durable(open_peer(restarted, "alice")).bodies() == [b"kept twice"]
    names = [(r.name, q.statistics().depth) for r, q in restarted.durable_subscriptions("audit")]
    assert names == [("trail", 0), ("trail", 1)]
