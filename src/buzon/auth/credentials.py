"""The login check behind STOMP CONNECT.

For now the only account is the admin given at start (the user system arrives with the
user model). Every check costs one argon2id verification, also for an unknown login,
which is verified against a dummy hash, so timing does not reveal which logins exist.
"""

from __future__ import annotations

import hmac

from buzon.auth.passwords import hash_password, verify_password
from buzon.errors import AuthenticationFailed


class Credentials:
    """Known logins and their password hashes.

    Args:
        admin_user: the admin's login name.
        admin_password_hash: argon2id hash of the admin's password (never the password).
    """

    def __init__(self, admin_user: str, admin_password_hash: str) -> None:
        self._users = {admin_user: admin_password_hash}
        self._dummy_hash = hash_password("buzon-dummy-password-for-timing")

    @classmethod
    def with_admin(cls, user: str, password: str) -> Credentials:
        """Build credentials from a clear admin password, hashing it once now."""
        return cls(user, hash_password(password))

    def authenticate(self, login: str | None, passcode: str | None) -> str:
        """Check a login; blocking (~50 ms), so call it from a worker thread.

        Returns:
            The principal name.

        Raises:
            AuthenticationFailed: wrong, unknown or missing login or passcode (never says which).
        """
        name = login or ""
        stored = self._lookup(name)
        ok = verify_password(stored or self._dummy_hash, passcode or "")
        if not ok or stored is None:
            raise AuthenticationFailed()
        return name

    def _lookup(self, name: str) -> str | None:
        found: str | None = None
        for user, encoded in self._users.items():
            # compare every name in constant time so a near-miss costs the same as a miss
            if hmac.compare_digest(user.encode(), name.encode()):
                found = encoded
        return found
