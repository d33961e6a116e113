from __future__ import annotations

import pytest

from buzon.auth import Credentials
from tests.server.harness import ADMIN, PASSWORD


@pytest.fixture(scope="session")
def credentials() -> Credentials:
    """Hashed once per run: argon2id is deliberately slow."""
    return Credentials.with_admin(ADMIN, PASSWORD)
