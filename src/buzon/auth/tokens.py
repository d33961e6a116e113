"""Bearer tokens for the HTTP API: issue at login, check on every request, revoke at logout.

A token is 256 random bits in URL-safe text, shown to the client once. The store keeps only
its SHA-256: with that much entropy a fast hash is as safe as a slow one, and a request is
checked with one lookup instead of an argon2 run.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable

from buzon.store.base import Store
from buzon.store.records import TokenRecord

# A prefix lets secret scanners (and people) recognise a leaked buzon token.
TOKEN_PREFIX = "bzt_"  # noqa: S105 (a public marker, not a secret)
TOKEN_BYTES = 32


def token_hash(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


class Tokens:
    """Issues and checks tokens.

    Args:
        store: where token hashes live.
        ttl: seconds a token is valid after login.
        clock: Unix time (tests pass their own).
    """

    def __init__(self, store: Store, ttl: float, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._ttl = ttl
        self._clock = clock

    async def issue(self, user_id: str) -> tuple[str, float]:
        """Create a token for ``user_id``; return it and its expiry (Unix time)."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
        now = self._clock()
        expires_at = now + self._ttl
        await self._store.add_token(TokenRecord(token_hash(token), user_id, now, expires_at))
        return token, expires_at

    async def user_id(self, token: str) -> str | None:
        """Whose token this is, or None if it is unknown, revoked or expired."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 100:
            return None
        record = await self._store.token(token_hash(token))
        if record is None or record.expires_at <= self._clock():
            return None
        return record.user_id

    async def revoke(self, token_hash: str) -> None:
        """Forget a token by its hash (logout); an unknown one is ignored."""
        await self._store.delete_token(token_hash)

    async def purge_expired(self) -> int:
        """Forget every expired token; return how many."""
        return await self._store.delete_expired_tokens(self._clock())
