from __future__ import annotations

import pytest

from buzon.auth import SecretHasher
from tests.certificates import TlsFiles, make_tls_files

# argon2id with its smallest cost: the algorithm under test is the same, and a suite that
# registers many users stays fast. Production parameters are exercised by the tests that
# start `buzon serve` as a process.
CHEAP_ARGON2 = {"time_cost": 1, "memory_cost": 1024}


@pytest.fixture
def hasher() -> SecretHasher:
    return SecretHasher(**CHEAP_ARGON2)


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A private CA and a certificate it signed for 127.0.0.1 and localhost, made once."""
    return make_tls_files(tmp_path_factory.mktemp("tls"))
