from __future__ import annotations

import pytest

from buzon.auth import Credentials, hash_password, verify_password
from buzon.errors import AuthenticationFailed, ErrorCode


def test_hash_is_argon2id_salted_and_verifies() -> None:
    first, second = hash_password("correct horse"), hash_password("correct horse")
    assert first.startswith("$argon2id$")
    assert first != second
    assert "correct horse" not in first
    assert verify_password(first, "correct horse")
    assert not verify_password(first, "correct hors")
    assert not verify_password("not a hash", "correct horse")


def test_admin_logs_in_and_everything_else_fails_alike(credentials: Credentials) -> None:
    assert credentials.authenticate("admin", "test-password-123") == "admin"
    failures = []
    for login, passcode in [("admin", "wrong"), ("nobody", "test-password-123"), (None, None)]:
        with pytest.raises(AuthenticationFailed) as caught:
            credentials.authenticate(login, passcode)
        failures.append((caught.value.code, str(caught.value)))
    assert failures == [(ErrorCode.AUTH_FAILED, "authentication failed")] * 3
