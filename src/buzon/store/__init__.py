"""Persistence behind one interface: the Store contract and its implementations."""

from buzon.store.base import Store
from buzon.store.memory import MemoryStore
from buzon.store.records import (
    DestinationKind,
    DestinationRecord,
    Role,
    TokenRecord,
    UserRecord,
)

__all__ = [
    "DestinationKind",
    "DestinationRecord",
    "MemoryStore",
    "Role",
    "Store",
    "TokenRecord",
    "UserRecord",
]
