"""``buzon queue ...`` and ``buzon channel ...`` as a script runs them, against a real broker."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from buzon.client import ApiError, DestinationKind, ManagementClient
from buzon.errors import ErrorCode
from tests.cli.helpers import ADMIN_PASSWORD, Cli
from tests.interop.broker_process import BrokerProcess

PASSWORD = "cli-dest-password"
OWNER, OTHER = "dest-owner", "dest-other"
ADDRESS = {DestinationKind.QUEUE: "/queue/", DestinationKind.CHANNEL: "/topic/"}
COUNTERS = {DestinationKind.QUEUE: "depth", DestinationKind.CHANNEL: "subscribers"}

pytestmark = pytest.mark.parametrize("kind", list(DestinationKind), ids=str)


@pytest.fixture(scope="module")
def people(admin_client: ManagementClient) -> None:
    for name in (OWNER, OTHER):
        admin_client.register(name, PASSWORD)


@pytest.fixture
def owner(people: None, cli_for: Callable[[str], Cli]) -> Cli:
    cli = cli_for(OWNER)
    cli.login(OWNER, PASSWORD)
    return cli


@pytest.fixture
def other(people: None, cli_for: Callable[[str], Cli]) -> Cli:
    cli = cli_for(OTHER)
    cli.login(OTHER, PASSWORD)
    return cli


def test_owner_creates_lists_inspects_and_deletes(
    owner: Cli, admin_client: ManagementClient, kind: DestinationKind
) -> None:
    name = f"life-{kind}"
    address = ADDRESS[kind] + name
    assert owner.ok(kind, "create", name).strip() == f"created {kind} {name} ({address})"
    assert owner.fails(kind, "create", name) == (
        f"buzon: destination already exists: {address} exists"
    )
    assert name in owner.ok(kind, "list")
    listed = {d["name"]: d for d in json.loads(owner.ok(kind, "list", "--json"))}
    assert listed[name]["owner"] == OWNER
    assert listed[name]["protected"] is False
    assert address in owner.ok(kind, "info", name)
    info = json.loads(owner.ok(kind, "info", name, "--json"))
    assert (info["address"], info["kind"], info[COUNTERS[kind]]) == (address, kind.value, 0)
    assert owner.ok(kind, "delete", name).strip() == f"deleted {kind} {name}"
    with pytest.raises(ApiError) as caught:
        admin_client.get_destination(kind, name)
    assert caught.value.code is ErrorCode.DESTINATION_NOT_FOUND


def test_an_access_key_from_stdin_or_an_argument_guards_it(
    owner: Cli, broker: BrokerProcess, kind: DestinationKind
) -> None:
    from_stdin, from_argument = f"keyed-stdin-{kind}", f"keyed-arg-{kind}"
    args = (kind, "create", from_stdin, "--access-key-stdin", "--json")
    assert json.loads(owner.ok(*args, stdin="stdin-key-123\n"))["protected"] is True
    created = owner.ok(kind, "create", from_argument, "--access-key", "arg-key-1234")
    assert "protected by an access key" in created
    with ManagementClient(broker.url, basic=(OTHER, PASSWORD)) as other:
        with pytest.raises(ApiError) as caught:
            other.publish(ADDRESS[kind] + from_stdin, "hi")
        assert caught.value.code is ErrorCode.ACCESS_KEY_REQUIRED
        assert other.publish(ADDRESS[kind] + from_stdin, "hi", access_key="stdin-key-123")
        assert other.publish(ADDRESS[kind] + from_argument, "hi", access_key="arg-key-1234")


def test_only_the_owner_or_an_admin_may_delete(
    owner: Cli,
    other: Cli,
    cli_for: Callable[[str], Cli],
    admin_client: ManagementClient,
    kind: DestinationKind,
) -> None:
    name = f"owned-{kind}"
    owner.ok(kind, "create", name)
    assert other.fails(kind, "delete", name) == (
        f"buzon: access denied: only the owner or an admin may delete {ADDRESS[kind]}{name}"
    )
    assert admin_client.get_destination(kind, name).owner == OWNER
    admin = cli_for("admin")
    admin.login("admin", ADMIN_PASSWORD)
    admin.ok(kind, "delete", name)
    assert name not in [d.name for d in admin_client.list_destinations(kind)]


def test_commands_need_a_login(cli_for: Callable[[str], Cli], kind: DestinationKind) -> None:
    stranger = cli_for("stranger")
    line = stranger.fails(kind, "create", f"anonymous-{kind}")
    assert line == (
        f"buzon: not logged in to {stranger.url}; run: buzon user login --url {stranger.url}"
    )
