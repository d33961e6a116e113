"""The ``buzon_broker`` pytest fixture: a real broker for each test that asks for one.

Registered as a pytest plugin when buzon is installed; it imports the broker only when a
test uses the fixture, so other test suites pay nothing for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from buzon.testing import RunningBrokerSync


@pytest.fixture
def buzon_broker() -> Iterator[RunningBrokerSync]:
    """A broker on free loopback ports with in-memory storage (see :mod:`buzon.testing`)."""
    from buzon.testing import broker_sync  # imported when used, not at plugin load

    with broker_sync() as running:
        yield running
