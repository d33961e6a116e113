from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from buzon.client import ManagementClient
from tests.cli.helpers import ADMIN_PASSWORD, Cli
from tests.interop.broker_process import BrokerProcess, broker_process


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """One real broker per test module: starting one costs about a second."""
    cwd = tmp_path_factory.mktemp("broker")
    with broker_process(env={"BUZON_ADMIN_PASSWORD": ADMIN_PASSWORD}, cwd=cwd) as process:
        yield process
        assert process.stop() == 0


@pytest.fixture(scope="module")
def admin_client(broker: BrokerProcess) -> Iterator[ManagementClient]:
    """The SDK logged in as the admin, for setting up what a test needs."""
    with ManagementClient(broker.url) as client:
        client.login("admin", ADMIN_PASSWORD)
        yield client


@pytest.fixture
def cli_for(broker: BrokerProcess, tmp_path: Path) -> Callable[[str], Cli]:
    """A ``Cli`` per person, each with a config directory of their own."""

    def make(person: str) -> Cli:
        return Cli(broker.url, tmp_path / person / "config")

    return make
