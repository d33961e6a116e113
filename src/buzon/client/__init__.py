"""The Python SDK of buzon: STOMP clients for messaging, and a client for the HTTP API.

Messaging (asyncio; :class:`Client` is the blocking twin with the same methods)::

    from buzon.client import AsyncClient

    async with AsyncClient("stomp://alice:secret@127.0.0.1:61613") as client:
        await client.publish("/queue/jobs", "resize photo 42")
        async for message in await client.subscribe("/queue/jobs", ack="client-individual"):
            print(message.text)
            await message.ack()

Management over HTTP::

    from buzon.client import ManagementClient

    with ManagementClient("http://127.0.0.1:8180") as client:
        client.login("alice", password)
        client.create_queue("jobs")

Errors: :class:`ApiError` when the broker refuses (its ``code`` is a
:class:`buzon.errors.ErrorCode`; :class:`LoginRefused` for a refused STOMP login),
:class:`BuzonConnectionError` when it cannot be reached,
:class:`SubscriptionClosed` when a subscription ended normally; all derive from
:class:`buzon.errors.BuzonError`.
"""

from buzon.client.aio import AsyncClient
from buzon.client.errors import ApiError, BuzonConnectionError, LoginRefused
from buzon.client.http import ManagementClient, broker_url
from buzon.client.messages import Message, Subscription, SubscriptionClosed, Transaction
from buzon.client.records import (
    BindingInfo,
    ChannelInfo,
    ConnectionInfo,
    Destination,
    DestinationKind,
    DurableSubscriptionInfo,
    NodeInfo,
    Overview,
    PeekedMessage,
    PulledMessage,
    QueueInfo,
    RatePoint,
    RedriveInfo,
    ScheduledMessage,
    Token,
    User,
)
from buzon.client.sync import BlockingMessage, BlockingSubscription, BlockingTransaction, Client
from buzon.store.records import Overflow, QueuePolicy

__all__ = [
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
