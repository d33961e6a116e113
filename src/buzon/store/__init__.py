"""Persistence behind one interface: the Store contract and its implementations."""

from buzon.store.base import MessageKey, MessageLog, Store
from buzon.store.memory import MemoryStore
from buzon.store.records import (
    DEFAULT_POLICY,
    DestinationKind,
    DestinationRecord,
    DurableSubscriptionRecord,
    Overflow,
    QueuePolicy,
    Role,
    StoredMessage,
    TokenRecord,
    UserRecord,
)
from buzon.store.tickets import DONE, Ticket

__all__ = [
    "DEFAULT_POLICY",
    "DONE",
    "DestinationKind",
    "DestinationRecord",
    "DurableSubscriptionRecord",
    "MemoryStore",
    "MessageKey",
    "MessageLog",
    "Overflow",
    "QueuePolicy",
    "Role",
    "Store",
    "StoredMessage",
    "Ticket",
    "TokenRecord",
    "UserRecord",
]
