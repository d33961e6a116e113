"""Channels that route: types, pattern subscriptions, queue bindings, their grants."""

from __future__ import annotations

import dataclasses

import pytest

from buzon.broker import REJECT, AckMode, Broker, BrokerConfig, Queue
from buzon.broker.addresses import parse_address, routing_key_of
from buzon.broker.destinations import new_record
from buzon.broker.policy import feed_grant
from buzon.errors import BrokerError, ErrorCode
from buzon.store import (
    DEFAULT_POLICY,
    BindingRecord,
    ChannelType,
    DestinationKind,
    DestinationRecord,
    QueuePolicy,
)
from tests.broker.helpers import Clock, HeldLog, found, open_peer, user


def channel(
    broker: Broker, name: str, kind: ChannelType, owner: str = "alice"
) -> DestinationRecord:
    record = dataclasses.replace(
        new_record(DestinationKind.CHANNEL, name, user(owner).id, None, 1.0), channel_type=kind
    )
    broker.add_destination(record)
    return record


def queue(
    broker: Broker, name: str, owner: str = "alice", policy: QueuePolicy = DEFAULT_POLICY
) -> DestinationRecord:
    record = dataclasses.replace(
        new_record(DestinationKind.QUEUE, name, user(owner).id, None, 1.0), policy=policy
    )
    broker.add_destination(record)
    return record


def bind(
    broker: Broker,
    chan: DestinationRecord,
    q: DestinationRecord,
    key: str,
    owner: str = "alice",
    queue_grant: str | None = None,
) -> BindingRecord:
    record = BindingRecord(chan.id, q.id, key, user(owner).id, 1.0, None, queue_grant)
    broker.bind(record)
    return record


def depth(broker: Broker, name: str) -> int:
    target = broker.destination(DestinationKind.QUEUE, name)
    assert isinstance(target, Queue)
    return target.statistics().depth


def test_topic_pattern_subscribers_get_what_matches_and_plain_ones_everything(
    broker: Broker,
) -> None:
    channel(broker, "logs", ChannelType.TOPIC)
    errors = open_peer(broker, "e").subscribe("/topic/logs/*.error")
    app = open_peer(broker, "a").subscribe("/topic/logs/app.#")
    everything = open_peer(broker, "all").subscribe("/topic/logs")
    producer = open_peer(broker, "p")
    for key in ("app.error", "db.error", "app", "app.info.x", "db.info"):
        producer.publish(f"/topic/logs/{key}", key.encode())
    producer.publish("/topic/logs", b"no key")
    assert errors.bodies() == [b"app.error", b"db.error"]
    assert app.bodies() == [b"app.error", b"app", b"app.info.x"]
    assert len(everything.bodies()) == 6
    first = errors.deliveries[0].message
    assert (first.destination, first.routing_key) == ("/topic/logs/app.error", "app.error")
    assert everything.deliveries[-1].message.destination == "/topic/logs"
    assert broker.statistics().channels[0].subscribers == 3


def test_direct_channel_routes_by_equal_key_and_fanout_ignores_keys(broker: Broker) -> None:
    channel(broker, "colors", ChannelType.DIRECT)
    channel(broker, "all", ChannelType.FANOUT)
    red = open_peer(broker, "r").subscribe("/topic/colors/red")
    star = open_peer(broker, "s").subscribe("/topic/colors/*")
    fan = open_peer(broker, "f").subscribe("/topic/all/red")
    producer = open_peer(broker, "p")
    producer.publish("/topic/colors/red", b"1")
    producer.publish("/topic/colors/blue", b"2")
    producer.publish("/topic/all/blue", b"3")
    assert red.bodies() == [b"1"]
    assert star.bodies() == []  # '*' is no wildcard in a direct channel
    assert fan.bodies() == [b"3"]


def test_unsubscribing_a_pattern_subscription_stops_it(broker: Broker) -> None:
    channel(broker, "logs", ChannelType.TOPIC)
    peer = open_peer(broker).subscribe("/topic/logs/#")
    producer = open_peer(broker, "p")
    producer.publish("/topic/logs/a", b"1")
    peer.session.unsubscribe("sub")
    producer.publish("/topic/logs/a", b"2")
    assert peer.bodies() == [b"1"]
    assert broker.statistics().channels[0].subscribers == 0


def test_a_channel_used_with_a_key_is_created_on_first_use_as_fanout(broker: Broker) -> None:
    peer = open_peer(broker).subscribe("/topic/fresh/a.*")
    open_peer(broker, "p").publish("/topic/fresh/zzz", b"x")
    assert peer.bodies() == [b"x"]
    target = broker.destination(DestinationKind.CHANNEL, "fresh")
    assert target is not None
    assert target.record.channel_type is ChannelType.FANOUT


@pytest.mark.parametrize(
    "destination", ["/topic/logs/", "/topic/logs/" + "k" * 256, "/topic/logs/a\x01b", "/queue/q/k"]
)
def test_bad_keys_are_refused(broker: Broker, destination: str) -> None:
    producer = open_peer(broker, "p")
    with pytest.raises(BrokerError) as caught:
        producer.publish(destination, b"x")
    assert caught.value.code is ErrorCode.BAD_DESTINATION


def test_a_255_byte_key_is_fine_and_durable_subscriptions_take_no_pattern(
    broker: Broker,
) -> None:
    channel(broker, "logs", ChannelType.TOPIC)
    peer = open_peer(broker).subscribe("/topic/logs/#")
    open_peer(broker, "p").publish("/topic/logs/" + "é" * 127 + "k", b"x")
    assert peer.bodies() == [b"x"]
    with pytest.raises(BrokerError) as caught:
        open_peer(broker).session.subscribe("d", "/topic/logs/a.*", durable_name="inbox")
    assert caught.value.code is ErrorCode.BAD_HEADER_VALUE


def test_one_publish_feeds_every_bound_queue_once(broker: Broker) -> None:
    chan = channel(broker, "orders", ChannelType.TOPIC)
    billing, shipping = queue(broker, "billing"), queue(broker, "shipping")
    bind(broker, chan, billing, "order.*")
    bind(broker, chan, billing, "order.#")  # a second matching binding: still once
    bind(broker, chan, shipping, "order.shipped")
    producer = open_peer(broker, "p")
    producer.publish("/topic/orders/order.created", b"c")
    producer.publish("/topic/orders/order.shipped", b"s")
    producer.publish("/topic/orders/invoice.sent", b"i")
    assert depth(broker, "billing") == 2
    assert depth(broker, "shipping") == 1
    worker = open_peer(broker, "w").subscribe("/queue/billing", AckMode.CLIENT_INDIVIDUAL)
    assert worker.bodies() == [b"c", b"s"]
    assert worker.deliveries[0].message.routing_key == "order.created"
    assert [b.record.key for b in broker.bindings("orders")] == [
        "order.#",
        "order.*",
        "order.shipped",
    ]


def test_unbinding_and_deleting_either_side_removes_bindings(broker: Broker) -> None:
    chan = channel(broker, "orders", ChannelType.FANOUT)
    jobs = queue(broker, "jobs")
    bind(broker, chan, jobs, "")
    producer = open_peer(broker, "p")
    producer.publish("/topic/orders", b"1")
    broker.unbind("orders", "jobs", "")
    producer.publish("/topic/orders", b"2")
    assert depth(broker, "jobs") == 1
    with pytest.raises(BrokerError) as caught:
        broker.unbind("orders", "jobs", "")
    assert caught.value.code is ErrorCode.NOT_FOUND
    bind(broker, chan, jobs, "")
    broker.delete_destination(DestinationKind.QUEUE, "jobs")
    assert broker.bindings("orders") == []
    producer.publish("/topic/orders", b"3")  # nothing breaks
    again = queue(broker, "jobs")
    bind(broker, chan, again, "")
    broker.delete_destination(DestinationKind.CHANNEL, "orders")
    assert depth(broker, "jobs") == 0  # the queue stays, empty, unbound
    with pytest.raises(BrokerError):
        bind(broker, chan, again, "")


def test_a_full_bound_queue_misses_the_message_and_the_others_get_it(broker: Broker) -> None:
    chan = channel(broker, "news", ChannelType.FANOUT)
    small = queue(broker, "small", policy=QueuePolicy(durable=False, max_length=1))
    big = queue(broker, "big", policy=QueuePolicy(durable=False))
    bind(broker, chan, small, "")
    bind(broker, chan, big, "")
    live = open_peer(broker).subscribe("/topic/news")
    producer = open_peer(broker, "p")
    producer.publish("/topic/news", b"1", b"2")
    assert (depth(broker, "small"), depth(broker, "big")) == (1, 2)
    assert live.bodies() == [b"1", b"2"]
    assert broker.statistics().channels[0].dropped == 1


def test_a_changed_queue_key_suspends_a_binding_made_with_the_old_one(broker: Broker) -> None:
    chan = channel(broker, "news", ChannelType.FANOUT, owner="bob")
    protected = dataclasses.replace(queue(broker, "inbox", owner="carol"), key_hash="hash-1")
    broker.update_destination(protected)
    bind(broker, chan, protected, "", owner="bob", queue_grant=feed_grant(protected))
    producer = open_peer(broker, "p")
    producer.publish("/topic/news", b"1")
    changed = dataclasses.replace(protected, key_hash="hash-2")
    broker.update_destination(changed)
    assert [b.active for b in broker.bindings("news")] == [False]
    producer.publish("/topic/news", b"2")
    assert depth(broker, "inbox") == 1
    broker.update_destination(dataclasses.replace(changed, key_hash=None))  # public again
    producer.publish("/topic/news", b"3")
    assert depth(broker, "inbox") == 2
    broker.update_destination(changed)
    bind(broker, chan, changed, "", owner="bob", queue_grant=feed_grant(changed))  # again
    producer.publish("/topic/news", b"4")
    assert depth(broker, "inbox") == 3


def test_persistent_messages_are_written_once_per_bound_durable_queue() -> None:
    log = HeldLog()
    broker = Broker(BrokerConfig(), log=log)
    chan = channel(broker, "orders", ChannelType.TOPIC)
    a, b = queue(broker, "a"), queue(broker, "b")
    transient = queue(broker, "t", policy=QueuePolicy(durable=False))
    bind(broker, chan, a, "#")
    bind(broker, chan, a, "x.*")
    bind(broker, chan, b, "x.y")
    bind(broker, chan, transient, "#")
    open_peer(broker, "p").publish("/topic/orders/x.y", b"kept")
    assert depth(broker, "a") == 0  # not before it is durable
    log.resolve()
    assert sorted(key[0] for key in log.kept) == sorted([a.id, b.id])
    assert (depth(broker, "a"), depth(broker, "b"), depth(broker, "t")) == (1, 1, 1)
    # a restart: the stored messages come back with their routing key
    restarted = Broker(BrokerConfig(), log=HeldLog())
    for record in (chan, a, b):
        restarted.add_destination(record)
    assert restarted.restore(found(list(log.kept.values())), cleanly=True) == 2
    peer = open_peer(restarted, "w").subscribe("/queue/b")
    assert peer.deliveries[0].message.routing_key == "x.y"
    assert peer.deliveries[0].message.destination == "/topic/orders/x.y"


def test_a_failed_write_reaches_no_bound_queue() -> None:
    log = HeldLog()
    broker = Broker(BrokerConfig(), log=log)
    chan = channel(broker, "orders", ChannelType.FANOUT)
    a = queue(broker, "a")
    bind(broker, chan, a, "")
    producer = open_peer(broker, "p")
    producer.publish("/topic/orders", b"lost")
    log.resolve(ErrorCode.STORAGE_UNAVAILABLE)
    producer2 = open_peer(broker, "p2")
    producer2.publish("/topic/orders", b"ok")
    log.resolve()
    worker = open_peer(broker, "w").subscribe("/queue/a")
    assert worker.bodies() == [b"ok"]


def test_a_binding_made_while_a_write_is_pending_does_not_break_its_arrival() -> None:
    log = HeldLog()
    broker = Broker(BrokerConfig(), log=log)
    chan = channel(broker, "orders", ChannelType.FANOUT)
    a, b = queue(broker, "a"), queue(broker, "b")
    bind(broker, chan, a, "")
    open_peer(broker, "p").publish("/topic/orders", b"m")
    broker.unbind("orders", "a", "")  # admitted and written for a: it still arrives there
    bind(broker, chan, b, "")  # not written for b: it arrives there in memory
    log.resolve()
    assert (depth(broker, "a"), depth(broker, "b")) == (1, 1)


def test_a_message_written_for_a_queue_unbound_before_it_arrives_still_arrives() -> None:
    log = HeldLog()
    broker = Broker(BrokerConfig(), log=log)
    chan = channel(broker, "orders", ChannelType.FANOUT)
    a = queue(broker, "a")
    bind(broker, chan, a, "")
    open_peer(broker, "p").publish("/topic/orders", b"m")
    broker.unbind("orders", "a", "")  # the channel has no binding left
    log.resolve()
    assert depth(broker, "a") == 1
    assert [key[0] for key in log.kept] == [a.id]


def test_a_transaction_publishes_with_its_routing_keys_at_commit(broker: Broker) -> None:
    channel(broker, "logs", ChannelType.TOPIC)
    peer = open_peer(broker).subscribe("/topic/logs/*.error")
    producer = open_peer(broker, "p")
    producer.session.begin("t")
    producer.publish("/topic/logs/db.error", b"staged", transaction="t")
    producer.publish("/topic/logs/db.info", b"other", transaction="t")
    assert peer.bodies() == []
    producer.session.commit("t")
    assert peer.bodies() == [b"staged"]
    assert peer.deliveries[0].message.routing_key == "db.error"


def test_addresses_parse_into_kind_name_and_key() -> None:
    parsed = parse_address("/topic/logs/app.*")
    assert (parsed.kind, parsed.name, parsed.key) == (DestinationKind.CHANNEL, "logs", "app.*")
    assert (parsed.base, str(parsed)) == ("/topic/logs", "/topic/logs/app.*")
    assert str(parse_address("/queue/jobs")) == "/queue/jobs"
    assert parse_address("/topic/a/b/c").key == "b/c"  # everything after the name's '/'
    assert routing_key_of("/topic/logs/app.error") == "app.error"
    assert routing_key_of("/topic/logs") == routing_key_of("/queue/jobs") == ""


def test_a_changed_channel_key_suspends_a_binding_made_with_the_old_one(broker: Broker) -> None:
    protected = dataclasses.replace(
        channel(broker, "feed", ChannelType.FANOUT, owner="carol"), key_hash="hash-1"
    )
    broker.update_destination(protected)
    inbox = queue(broker, "inbox", owner="bob")
    record = BindingRecord(protected.id, inbox.id, "", user("bob").id, 1.0, feed_grant(protected))
    broker.bind(record)
    producer = open_peer(broker, "carol")
    producer.publish("/topic/feed", b"1")
    broker.update_destination(dataclasses.replace(protected, key_hash="hash-2"))
    producer.publish("/topic/feed", b"2")
    assert depth(broker, "inbox") == 1
    assert [b.active for b in broker.bindings("feed")] == [False]


def test_a_routed_message_dead_letters_naming_its_queue_as_its_origin(broker: Broker) -> None:
    chan = channel(broker, "orders", ChannelType.TOPIC)
    policy = QueuePolicy(durable=False, dead_letter_queue="billing.dlq")
    bind(broker, chan, queue(broker, "billing", policy=policy), "order.#")
    open_peer(broker, "p").publish("/topic/orders/order.created", b"bad")
    worker = open_peer(broker, "w").subscribe("/queue/billing", AckMode.CLIENT_INDIVIDUAL)
    worker.session.settle(worker.ack_ids()[0], REJECT)
    dead = open_peer(broker, "d").subscribe("/queue/billing.dlq")
    headers = dict(dead.deliveries[0].message.headers)
    assert headers["x-original-destination"] == "/queue/billing"  # what a redrive needs


@pytest.mark.parametrize("durable", [True, False])
def test_a_bound_queue_applies_its_ttl_to_what_is_routed_to_it(durable: bool) -> None:
    clock = Clock()
    log = HeldLog()
    broker = Broker(BrokerConfig(), clock=clock, log=log)
    chan = channel(broker, "ticks", ChannelType.FANOUT)
    short = queue(broker, "short", policy=QueuePolicy(durable=durable, message_ttl_ms=1000))
    keep = queue(broker, "keep", policy=QueuePolicy(durable=durable))
    bind(broker, chan, short, "")
    bind(broker, chan, keep, "")
    open_peer(broker, "p").publish("/topic/ticks", b"t")
    log.resolve()
    if durable:  # written with the expiry of each queue
        kept = {key[0]: m.expires_at for key, m in log.kept.items()}
        assert kept == {short.id: clock.now + 1, keep.id: None}
    clock.now += 2
    broker.expire_messages(clock.now)
    assert (depth(broker, "short"), depth(broker, "keep")) == (0, 1)


def test_a_dead_letter_channel_routing_back_into_its_queue_does_not_loop() -> None:
    clock = Clock()
    broker = Broker(BrokerConfig(), clock=clock)
    chan = channel(broker, "retries", ChannelType.FANOUT)
    policy = QueuePolicy(durable=False, message_ttl_ms=1000, dead_letter_exchange="retries")
    loop = queue(broker, "loop", policy=policy)
    bind(broker, chan, loop, "")
    open_peer(broker, "p").publish("/queue/loop", b"m")
    clock.now += 2
    broker.expire_messages(clock.now)  # expired once: routed back in, as asked
    assert depth(broker, "loop") == 1
    for _ in range(3):
        clock.now += 2
        broker.expire_messages(clock.now)  # expired again from the same queue: dropped
    assert depth(broker, "loop") == 0
    (stats,) = (q for q in broker.statistics().queues if q.name == "loop")
    assert (stats.published, stats.dead_lettered) == (2, 1)
