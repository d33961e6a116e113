from __future__ import annotations

import pytest

from buzon.broker import Broker
from tests.broker.helpers import Peer, open_peer


@pytest.fixture
def broker() -> Broker:
    return Broker()


@pytest.fixture
def producer(broker: Broker) -> Peer:
    return open_peer(broker, "producer")
