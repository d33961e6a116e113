"""A durable subscription's backlog is an ordinary fan-out target: a message published from
inside a delivery of the same channel reaches it too, after the message being delivered."""

from __future__ import annotations

from buzon.broker import AckMode, Broker
from tests.broker.helpers import Delivery, Peer, open_peer, send

T = "/topic/talk"
REPLY = (("reply", "yes"),)


def replying(peer: Peer) -> Peer:
    """Make ``peer`` answer every message that is not a reply with a reply on ``T``."""

    def answer(delivery: Delivery) -> None:
        if delivery.message.headers != REPLY:
            send(peer.session, T, REPLY, b"re: " + delivery.message.body)

    peer.sink.on_deliver = answer
    return peer


def away(broker: Broker, owner: str) -> None:
    """``owner`` creates a durable subscription and leaves: its backlog keeps filling."""
    peer = open_peer(broker, owner)
    peer.session.subscribe("sub", T, durable_name="inbox")
    peer.session.close()


def back(broker: Broker, owner: str) -> list[bytes]:
    peer = open_peer(broker, owner)
    peer.session.subscribe("sub", T, AckMode.CLIENT_INDIVIDUAL, durable_name="inbox")
    return peer.bodies()


def test_a_reply_from_a_live_subscriber_reaches_the_durable_backlog(broker: Broker) -> None:
    away(broker, "alice")
    replying(open_peer(broker, "bob")).subscribe(T)
    open_peer(broker, "carol").publish(T, b"question")
    assert back(broker, "alice") == [b"question", b"re: question"]


def test_a_reply_from_a_durable_subscriber_reaches_every_target_in_order(
    broker: Broker,
) -> None:
    replier = replying(open_peer(broker, "bob"))
    replier.session.subscribe("sub", T, durable_name="answers")
    away(broker, "alice")
    live = open_peer(broker, "dave").subscribe(T)
    open_peer(broker, "carol").publish(T, b"q1", b"q2")
    assert live.bodies() == [b"q1", b"re: q1", b"q2", b"re: q2"]
    assert replier.bodies() == [b"q1", b"re: q1", b"q2", b"re: q2"]
    assert back(broker, "alice") == [b"q1", b"re: q1", b"q2", b"re: q2"]
