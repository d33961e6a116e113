"""MemoryStore: the reference Store, kept in dicts; nothing survives the process.

Used by tests, the in-process broker for users' own test suites, and ``buzon serve`` until
the SQLite store arrives. Every method completes without awaiting, so each call is atomic
on the event loop.
"""

from __future__ import annotations

import dataclasses

from buzon.errors import ErrorCode, StoreError
from buzon.store.records import DestinationKind, DestinationRecord, TokenRecord, UserRecord


class MemoryStore:
    """A :class:`~buzon.store.base.Store` in memory."""

    def __init__(self) -> None:
        self._users: dict[str, UserRecord] = {}  # by id
        self._user_ids: dict[str, str] = {}  # name -> id
        self._tokens: dict[str, TokenRecord] = {}  # by hash
        self._destinations: dict[tuple[DestinationKind, str], DestinationRecord] = {}

    async def open(self) -> None:
        """Nothing to prepare."""

    async def close(self) -> None:
        """Nothing to release."""

    # -- users ---------------------------------------------------------------------------

    async def add_user(self, user: UserRecord) -> None:
        if user.name in self._user_ids:
            raise StoreError(ErrorCode.USERNAME_TAKEN, f"user {user.name!r} exists")
        self._users[user.id] = user
        self._user_ids[user.name] = user.id

    async def user_by_name(self, name: str) -> UserRecord | None:
        user_id = self._user_ids.get(name)
        return None if user_id is None else self._users[user_id]

    async def user_by_id(self, user_id: str) -> UserRecord | None:
        return self._users.get(user_id)

    async def users(self) -> list[UserRecord]:
        return sorted(self._users.values(), key=lambda user: user.name)

    async def update_user(self, user: UserRecord) -> None:
        old = self._users.get(user.id)
        if old is None:
            raise StoreError(ErrorCode.USER_NOT_FOUND, f"user id {user.id!r}")
        self._users[user.id] = dataclasses.replace(user, name=old.name)

    async def delete_user(self, user_id: str) -> None:
        user = self._users.pop(user_id, None)
        if user is None:
            raise StoreError(ErrorCode.USER_NOT_FOUND, f"user id {user_id!r}")
        del self._user_ids[user.name]
        for token_hash in [h for h, t in self._tokens.items() if t.user_id == user_id]:
            del self._tokens[token_hash]

    # -- tokens --------------------------------------------------------------------------

    async def add_token(self, token: TokenRecord) -> None:
        self._tokens[token.token_hash] = token

    async def token(self, token_hash: str) -> TokenRecord | None:
        return self._tokens.get(token_hash)

    async def delete_token(self, token_hash: str) -> None:
        self._tokens.pop(token_hash, None)

    async def delete_expired_tokens(self, now: float) -> int:
        expired = [h for h, t in self._tokens.items() if t.expires_at <= now]
        for token_hash in expired:
            del self._tokens[token_hash]
        return len(expired)

    # -- destinations --------------------------------------------------------------------

    async def add_destination(self, record: DestinationRecord) -> None:
        key = (record.kind, record.name)
        if key in self._destinations:
            raise StoreError(ErrorCode.DESTINATION_EXISTS, f"{record.kind} {record.name!r}")
        self._destinations[key] = record

    async def destination(self, kind: DestinationKind, name: str) -> DestinationRecord | None:
        return self._destinations.get((kind, name))

    async def destinations(self) -> list[DestinationRecord]:
        return [self._destinations[key] for key in sorted(self._destinations)]

    async def delete_destination(self, destination_id: str) -> None:
        for key, record in list(self._destinations.items()):
            if record.id == destination_id:
                del self._destinations[key]
