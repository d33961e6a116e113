"""Access keys: hashed at creation, checked off the event loop, wrong guesses limited.

A key is checked once per connection and destination (the callers remember the grant), so
the argon2id cost is paid once, not per message. Wrong keys are limited like passwords
(:class:`GuessLimiter`), per (destination, source address) and per source address, not per
user: registering more accounts gives a guesser no more tries, and a guesser's address
never delays the owner's users elsewhere.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from buzon.auth.access import Principal
from buzon.auth.passwords import SecretHasher
from buzon.auth.ratelimit import GuessLimiter, GuessLimits
from buzon.errors import AccessDenied, AuthError, ErrorCode
from buzon.store.records import DestinationRecord

MIN_KEY = 8
MAX_KEY = 1024


class AccessKeys:
    """Hashes and checks destination access keys.

    Args:
        hasher: argon2id, off the event loop.
        limits: how fast wrong keys may be tried.
        monotonic: for the waits.
    """

    def __init__(
        self,
        hasher: SecretHasher,
        *,
        limits: GuessLimits | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._hasher = hasher
        self._limiter = GuessLimiter(limits, clock=monotonic)

    async def hash(self, key: str) -> str:
        """Hash a new access key.

        Raises:
            AuthError: WEAK_PASSWORD when it is shorter than 8 or longer than 1024
                characters.
        """
        if not MIN_KEY <= len(key) <= MAX_KEY:
            raise AuthError(
                ErrorCode.WEAK_PASSWORD, f"access keys are {MIN_KEY} to {MAX_KEY} characters"
            )
        return await self._hasher.hash(key)

    async def check(
        self, principal: Principal, record: DestinationRecord, key: str, address: str
    ) -> None:
        """Accept ``key`` for ``record`` from ``principal`` at ``address`` (a client IP).

        Raises:
            AuthenticationFailed: TOO_MANY_ATTEMPTS after too many wrong keys for ``record``
                from ``address``.
            AccessDenied: ACCESS_KEY_WRONG.
        """
        async with self._limiter.attempt(record.id, address) as attempt:
            stored = record.key_hash
            ok = len(key) <= MAX_KEY and await self._hasher.verify(stored, key)
            if not ok or stored is None:
                raise AccessDenied(
                    ErrorCode.ACCESS_KEY_WRONG,
                    f"wrong access key for {record.kind} {record.name!r}",
                )
            attempt.succeeded()
