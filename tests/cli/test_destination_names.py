"""The CLI and the SDK refuse names a URL cannot carry (``.``, ``..``) with a clear error."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from buzon.client import ApiError, DestinationKind, ManagementClient
from buzon.errors import ErrorCode
from tests.cli.helpers import ADMIN_PASSWORD, Cli

ALL_DOTS = [".", ".."]


@pytest.mark.parametrize("name", ALL_DOTS)
@pytest.mark.parametrize("kind", list(DestinationKind), ids=str)
def test_the_cli_refuses_an_all_dot_name(
    cli_for: Callable[[str], Cli], admin_client: ManagementClient, kind: DestinationKind, name: str
) -> None:
    cli = cli_for("admin")
    cli.login("admin", ADMIN_PASSWORD)
    line = cli.fails(kind, "create", name)
    assert line.startswith("buzon: invalid destination: ")
    assert "not only dots" in line
    assert admin_client.list_destinations(kind) == []


@pytest.mark.parametrize("name", ALL_DOTS)
def test_the_sdk_refuses_an_all_dot_name(admin_client: ManagementClient, name: str) -> None:
    for create in (admin_client.create_queue, admin_client.create_channel):
        with pytest.raises(ApiError) as caught:
            create(name)
        assert caught.value.code is ErrorCode.BAD_DESTINATION
        assert "not only dots" in str(caught.value)
