from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cluster.nodes import Cluster


@pytest.fixture
def cluster(database_url: str) -> Iterator[Cluster]:
    """Nodes on a fresh database; each node still running at the end must stop cleanly."""
    nodes = Cluster(database_url)
    try:
        yield nodes
        codes = nodes.stop()
        print("\n".join(nodes.logs()))
        assert all(code == 0 for code in codes.values()), f"unclean stops: {codes}"
    finally:
        nodes.close()
