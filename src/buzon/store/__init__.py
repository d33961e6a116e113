"""Persistence behind one interface: the Store contract and its implementations."""

from buzon.store.base import ClaimLog, MessageKey, MessageLog, PagedLog, Store
from buzon.store.memory import MemoryStore
from buzon.store.records import (
    DEFAULT_POLICY,
    BindingRecord,
    ChannelType,
    DestinationKind,
    DestinationRecord,
    DurableSubscriptionRecord,
    IdempotencyKey,
    NodeRecord,
    Overflow,
    Page,
    QueuePolicy,
    Role,
    StoredBacklog,
    StoredMessage,
    TailCount,
    TokenRecord,
    UserRecord,
)
from buzon.store.tickets import DONE, Ticket

__all__ = [
    "DEFAULT_POLICY",
    "DONE",
    "BindingRecord",
    "ChannelType",
    "ClaimLog",
    "DestinationKind",
    "DestinationRecord",
    "DurableSubscriptionRecord",
    "IdempotencyKey",
    "MemoryStore",
    "MessageKey",
    "MessageLog",
    "NodeRecord",
    "Overflow",
    "Page",
    "PagedLog",
    "QueuePolicy",
    "Role",
    "Store",
    "StoredBacklog",
    "StoredMessage",
    "TailCount",
    "Ticket",
    "TokenRecord",
    "UserRecord",
]
