"""The HTTP SDK against a real broker: results as dataclasses, errors as ErrorCodes."""

from __future__ import annotations

import pytest

import buzon.client
from buzon.client import (
    ApiError,
    BuzonConnectionError,
    ChannelInfo,
    DestinationKind,
    ManagementClient,
    Overflow,
    QueueInfo,
    QueuePolicy,
    broker_url,
)
from buzon.errors import BuzonError, ErrorCode, RequestError
from tests.cli.helpers import free_port
from tests.interop.broker_process import BrokerProcess

PASSWORD = "sdk-password-1"


def user_client(broker: BrokerProcess, admin: ManagementClient, name: str) -> ManagementClient:
    admin.register(name, PASSWORD)
    client = ManagementClient(broker.url)
    client.login(name, PASSWORD)
    return client


def test_creating_an_existing_queue_raises_destination_exists(
    admin_client: ManagementClient,
) -> None:
    created = admin_client.create_queue("sdk-dup")
    assert isinstance(created, QueueInfo)
    assert (created.name, created.address, created.owner) == ("sdk-dup", "/queue/sdk-dup", "admin")
    with pytest.raises(ApiError) as caught:
        admin_client.create_queue("sdk-dup")
    assert isinstance(caught.value, BuzonError)
    assert caught.value.code is ErrorCode.DESTINATION_EXISTS
    assert caught.value.status == 409
    assert "/queue/sdk-dup" in caught.value.detail


def test_broker_refusals_keep_their_codes(
    broker: BrokerProcess, admin_client: ManagementClient
) -> None:
    with ManagementClient(broker.url) as anonymous:
        with pytest.raises(ApiError) as wrong:
            anonymous.login("admin", "not-the-password")
        assert (wrong.value.code, wrong.value.status) == (ErrorCode.AUTH_FAILED, 401)
        with pytest.raises(ApiError) as nobody:
            anonymous.list_queues()
        assert nobody.value.code is ErrorCode.NOT_AUTHENTICATED
    with pytest.raises(ApiError) as missing:
        admin_client.get_channel("sdk-never-created")
    assert missing.value.code is ErrorCode.DESTINATION_NOT_FOUND
    with user_client(broker, admin_client, "sdk-plain") as plain:
        with pytest.raises(ApiError) as denied:
            plain.list_users()
        assert (denied.value.code, denied.value.status) == (ErrorCode.ACCESS_DENIED, 403)


def test_unknown_codes_and_foreign_answers_still_become_api_errors() -> None:
    newer = {"error": {"code": "FROM_THE_FUTURE", "message": "new", "detail": "x"}}
    error = ApiError.from_body(418, newer)
    assert (error.code, error.code_name, error.status) == (
        ErrorCode.INTERNAL_ERROR,
        "FROM_THE_FUTURE",
        418,
    )
    assert "FROM_THE_FUTURE" in str(error)
    proxy_page = ApiError.from_body(502, None)
    assert proxy_page.code is ErrorCode.INTERNAL_ERROR
    assert "HTTP 502" in proxy_page.detail


def test_unreachable_broker_is_a_connection_error_naming_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with ManagementClient(url) as client, pytest.raises(BuzonConnectionError) as caught:
        client.healthz()
    assert isinstance(caught.value, BuzonError)
    assert str(caught.value).startswith(f"cannot reach the broker at {url}: ")


def test_urls_are_normalised_and_bad_ones_refused() -> None:
    assert broker_url("http://127.0.0.1:8180/api/v1/") == "http://127.0.0.1:8180"
    assert broker_url(" HTTP://LocalHost:8180 ") == "http://localhost:8180"
    for bad in ("127.0.0.1:8180", "ftp://host", "http://", ""):
        with pytest.raises(RequestError):
            broker_url(bad)


def test_logout_revokes_the_token(broker: BrokerProcess, admin_client: ManagementClient) -> None:
    with user_client(broker, admin_client, "sdk-leaver") as client:
        token = client.token
        assert client.whoami().username == "sdk-leaver"
        client.logout()
    with ManagementClient(broker.url, token=token) as stale, pytest.raises(ApiError) as caught:
        stale.whoami()
    assert caught.value.code is ErrorCode.NOT_AUTHENTICATED


def test_publish_pull_ack_and_nack(admin_client: ManagementClient) -> None:
    admin_client.create_queue("sdk-work")
    admin_client.publish("/queue/sdk-work", "text", headers={"kind": "greeting"})
    admin_client.publish("/queue/sdk-work", b"\xff\x00binary")
    admin_client.publish_json("/queue/sdk-work", {"n": [1, 2]})
    pulled = admin_client.pull("sdk-work", max_messages=10, lease_ms=5_000)
    assert [m.body for m in pulled] == [b"text", b"\xff\x00binary", b'{"n":[1,2]}']
    assert pulled[0].text == "text"
    assert pulled[0].headers["kind"] == "greeting"
    assert pulled[2].json() == {"n": [1, 2]}
    assert pulled[2].headers["content-type"] == "application/json"
    assert admin_client.nack("sdk-work", pulled[0].receipt) == 1
    assert admin_client.ack("sdk-work", pulled[1].receipt, pulled[2].receipt) == 2
    again = admin_client.pull("sdk-work", max_messages=10, wait_ms=1_000)
    assert [(m.body, m.redelivered) for m in again] == [(b"text", True)]
    admin_client.ack("sdk-work", again[0].receipt)
    assert admin_client.get_queue("sdk-work").depth == 0
    with pytest.raises(ApiError) as stale:
        admin_client.ack("sdk-work", again[0].receipt)
    assert stale.value.code is ErrorCode.UNKNOWN_RECEIPT
    with pytest.raises(RequestError):
        admin_client.publish("sdk-work", "no address prefix")


def test_access_keys_guard_other_users(
    broker: BrokerProcess, admin_client: ManagementClient
) -> None:
    with user_client(broker, admin_client, "sdk-owner") as owner:
        created = owner.create_destination(
            DestinationKind.CHANNEL, "sdk-guarded", access_key="right-key-1"
        )
        assert isinstance(created, ChannelInfo)
        assert created.protected
    with user_client(broker, admin_client, "sdk-other") as other:
        with pytest.raises(ApiError) as missing:
            other.publish("/topic/sdk-guarded", "hi")
        assert missing.value.code is ErrorCode.ACCESS_KEY_REQUIRED
        with pytest.raises(ApiError) as wrong:
            other.publish("/topic/sdk-guarded", "hi", access_key="wrong-key")
        assert wrong.value.code is ErrorCode.ACCESS_KEY_WRONG
        assert other.publish("/topic/sdk-guarded", "hi", access_key="right-key-1")
        with pytest.raises(RequestError):
            other.publish("/topic/sdk-guarded", "hi", access_key="clé-non-ascii")


def test_users_and_broker_state(admin_client: ManagementClient) -> None:
    created = admin_client.register("sdk-managed", PASSWORD)
    assert (created.username, created.role, created.disabled) == ("sdk-managed", "user", False)
    assert admin_client.update_user("sdk-managed", disabled=True).disabled
    assert "sdk-managed" in [u.username for u in admin_client.list_users()]
    admin_client.delete_user("sdk-managed")
    with pytest.raises(ApiError) as gone:
        admin_client.update_user("sdk-managed", role="admin")
    assert gone.value.code is ErrorCode.USER_NOT_FOUND
    assert admin_client.healthz() == "ok"
    overview = admin_client.overview()
    assert overview.version == buzon.__version__
    assert overview.users >= 1
    assert admin_client.connections() == []
    kinds = {d.kind for d in admin_client.list_destinations(DestinationKind.QUEUE)}
    assert kinds <= {DestinationKind.QUEUE}


def test_queue_policies_and_purge_through_the_client(admin_client: ManagementClient) -> None:
    policy = QueuePolicy(max_length=3, overflow=Overflow.DROP_HEAD, message_ttl_ms=60_000)
    created = admin_client.create_queue("sdk-policy", policy=policy)
    assert created.policy == policy
    assert admin_client.get_queue("sdk-policy").policy == policy
    for n in range(5):
        admin_client.publish("/queue/sdk-policy", str(n))
    assert admin_client.get_queue("sdk-policy").depth == 3  # the oldest two were dropped
    assert admin_client.purge_queue("sdk-policy") == 3
    assert admin_client.get_queue("sdk-policy").depth == 0
