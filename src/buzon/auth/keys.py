"""Access keys: hashed at creation, checked off the event loop, wrong guesses limited.

A key is checked once per connection and destination (the callers remember the grant), so
the argon2id cost is paid once, not per message. Wrong keys count against the user in a
:class:`FailureLimiter`, so guessing a key over many connections or HTTP requests is as
slow as guessing a password.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from buzon.auth.access import Principal
from buzon.auth.passwords import SecretHasher
from buzon.auth.ratelimit import FailureLimiter
from buzon.errors import AccessDenied, AuthenticationFailed, AuthError, ErrorCode
from buzon.store.records import DestinationRecord

MIN_KEY = 8
MAX_KEY = 1024


class AccessKeys:
    """Hashes and checks destination access keys.

    Args:
        hasher: argon2id, off the event loop.
        max_failures: wrong keys one user may present within ``window`` seconds.
        window: seconds a wrong key counts.
        monotonic: for the failure window.
    """

    def __init__(
        self,
        hasher: SecretHasher,
        *,
        max_failures: int = 10,
        window: float = 300.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._hasher = hasher
        self._failures = FailureLimiter(max_failures, window, clock=monotonic)

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

    async def check(self, principal: Principal, record: DestinationRecord, key: str) -> None:
        """Accept ``key`` for ``record``, or raise.

        Raises:
            AuthenticationFailed: TOO_MANY_ATTEMPTS after too many wrong keys.
            AccessDenied: ACCESS_KEY_WRONG.
        """
        wait = self._failures.retry_after(principal.id)
        if wait is not None:
            raise AuthenticationFailed(
                ErrorCode.TOO_MANY_ATTEMPTS, f"retry in {math.ceil(wait)} s", wait
            )
        stored = record.key_hash
        ok = len(key) <= MAX_KEY and await self._hasher.verify(stored, key)
        if not ok or stored is None:
            self._failures.failed(principal.id)
            raise AccessDenied(
                ErrorCode.ACCESS_KEY_WRONG, f"wrong access key for {record.kind} {record.name!r}"
            )
