"""argon2id hashing of passwords and access keys, with the cost parameters in one place.

argon2-cffi's defaults follow RFC 9106's second recommended option (64 MiB, 3 passes,
4 lanes): slow enough to make offline guessing expensive, and about 50 ms of CPU here. So
:class:`SecretHasher` runs every hash in a worker thread and lets only a few run at once:
a storm of logins queues up instead of starving message traffic of both cores.
"""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# At most this many hashes run at once; more wait their turn.
MAX_CONCURRENT_HASHES = 2


class SecretHasher:
    """argon2id for secrets (passwords, access keys), off the event loop.

    Args:
        time_cost: argon2 passes.
        memory_cost: argon2 memory in KiB.
        max_concurrent: hashes allowed to run at the same time.
    """

    def __init__(
        self,
        *,
        time_cost: int = 3,
        memory_cost: int = 64 * 1024,
        max_concurrent: int = MAX_CONCURRENT_HASHES,
    ) -> None:
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_cost)
        self._slots = asyncio.Semaphore(max_concurrent)
        self._dummy: str | None = None

    def hash_now(self, secret: str) -> str:
        """Hash on the calling thread (start-up, before the loop serves anyone)."""
        return self._hasher.hash(secret)

    async def hash(self, secret: str) -> str:
        """Return an argon2id PHC string for ``secret`` (salted; never reversible)."""
        async with self._slots:
            return await asyncio.to_thread(self._hasher.hash, secret)

    async def verify(self, encoded: str | None, secret: str) -> bool:
        """True when ``secret`` matches ``encoded``; constant-time in the secret.

        Args:
            encoded: the stored hash, or None when there is none (an unknown user): the
                secret is then checked against a dummy hash, so the answer (False) takes
                as long as a wrong password would.
            secret: what the peer presented.
        """
        if encoded is None:
            if self._dummy is None:
                self._dummy = await self.hash("buzon: no such account")
            encoded = self._dummy
            secret += "\0"  # never matches, whatever the peer sent
        async with self._slots:
            return await asyncio.to_thread(self._verify, encoded, secret)

    def _verify(self, encoded: str, secret: str) -> bool:
        try:
            return self._hasher.verify(encoded, secret)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
