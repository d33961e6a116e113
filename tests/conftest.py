from __future__ import annotations

import pytest

from buzon.auth import SecretHasher

# argon2id with its smallest cost: the algorithm under test is the same, and a suite that
# registers many users stays fast. Production parameters are exercised by the tests that
# start `buzon serve` as a process.
CHEAP_ARGON2 = {"time_cost": 1, "memory_cost": 1024}


@pytest.fixture
def hasher() -> SecretHasher:
    return SecretHasher(**CHEAP_ARGON2)
