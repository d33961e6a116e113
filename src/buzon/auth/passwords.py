"""argon2id hashing, with the cost parameters in one place.

argon2-cffi's defaults follow RFC 9106's second recommended option (64 MiB, 3 passes,
4 lanes): slow enough to make offline guessing expensive, and ~50 ms of CPU here, which is
why callers run it off the event loop with a cap on concurrent hashes.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_HASHER = PasswordHasher()


def hash_password(password: str) -> str:
    """Return an argon2id PHC string for ``password`` (salted; never reversible)."""
    return _HASHER.hash(password)


def verify_password(encoded: str, password: str) -> bool:
    """True when ``password`` matches ``encoded``; the comparison is constant-time."""
    try:
        return _HASHER.verify(encoded, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
