"""The SDK's public surface is pinned: users write code against these names."""

from __future__ import annotations

import buzon.client
import buzon.testing


def test_client_names_are_pinned() -> None:
    assert buzon.client.__all__ == [
        "ApiError",
        "AsyncClient",
        "BindingInfo",
        "BlockingMessage",
        "BlockingSubscription",
        "BlockingTransaction",
        "BuzonConnectionError",
        "ChannelInfo",
        "Client",
        "ConnectionInfo",
        "Destination",
        "DestinationKind",
        "DurableSubscriptionInfo",
        "LoginRefused",
        "ManagementClient",
        "Message",
        "NodeInfo",
        "Overflow",
        "Overview",
        "PeekedMessage",
        "PulledMessage",
        "QueueInfo",
        "QueuePolicy",
        "RatePoint",
        "RedriveInfo",
        "ScheduledMessage",
        "Subscription",
        "SubscriptionClosed",
        "Token",
        "Transaction",
        "User",
        "broker_url",
    ]
    for name in buzon.client.__all__:
        assert getattr(buzon.client, name).__doc__, f"{name} is undocumented"


def test_blocking_client_has_the_shape_of_the_async_one() -> None:
    def public(cls: type) -> set[str]:
        return {name for name in vars(cls) if not name.startswith("_")}

    shared = {"connect", "close", "connected", "publish", "subscribe", "transaction"}
    assert shared <= public(buzon.client.AsyncClient)
    assert shared <= public(buzon.client.Client)


def test_testing_names() -> None:
    assert callable(buzon.testing.broker)
    assert callable(buzon.testing.broker_sync)
