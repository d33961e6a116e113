from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from buzon.auth import SecretHasher
from tests.certificates import TlsFiles, make_tls_files
from tests.postgres_server import PostgresServer, postgres_bin, postgres_server

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


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A private PostgreSQL server for this test process (skipped where PostgreSQL is not
    installed, unless BUZON_REQUIRE_POSTGRES is set, as in CI). It runs with fsync=off:
    what a killed server must keep still reaches the kernel before a commit returns."""
    if postgres_bin() is None:
        if os.environ.get("BUZON_REQUIRE_POSTGRES"):
            pytest.fail("PostgreSQL is required (BUZON_REQUIRE_POSTGRES) but not installed")
        pytest.skip("PostgreSQL is not installed")
    with postgres_server(fsync=False) as server:
        yield server


@pytest.fixture
def database_url(postgres: PostgresServer) -> str:
    """The URL of a fresh, empty database owned by an ordinary role."""
    return postgres.new_database()
