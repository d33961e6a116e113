"""A fresh broker per test, an HTTP client on its API, and the admin's credentials."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from buzon.auth import SecretHasher
from buzon.server.app import BuzonServer
from tests.http.helpers import Auth, admin_auth, api
from tests.server.harness import running_server


@pytest.fixture
async def server(hasher: SecretHasher) -> AsyncIterator[BuzonServer]:
    async with running_server(hasher) as server:
        yield server


@pytest.fixture
async def http(server: BuzonServer) -> AsyncIterator[httpx.AsyncClient]:
    async with api(server.http_port) as client:
        yield client


@pytest.fixture
async def admin(http: httpx.AsyncClient) -> Auth:
    return await admin_auth(http)
