"""``create=False`` (the ``auto-create:false`` header): a missing destination is an error for
that frame, even on a broker that creates on first use, and nothing is created."""

from __future__ import annotations

from typing import Any

import pytest

from buzon.client import ApiError, Client
from buzon.errors import ErrorCode
from buzon.testing import RunningBrokerSync


def names(broker: RunningBrokerSync) -> set[str]:
    """Every queue and channel the broker has, as addresses."""
    management = broker.management
    return {d.address for d in [*management.list_queues(), *management.list_channels()]}


def use(client: Client, call: str, destination: str, **options: Any) -> None:
    """Subscribe to ``destination`` or publish to it."""
    if call == "subscribe":
        client.subscribe(destination, **options)
    else:
        client.publish(destination, "x", **options)


def refused(client: Client, call: str, destination: str, **options: Any) -> ErrorCode:
    """The code of the ERROR that :func:`use` got."""
    with pytest.raises(ApiError) as caught:
        use(client, call, destination, **options)
    return caught.value.code


@pytest.mark.parametrize("call", ["subscribe", "publish"])
@pytest.mark.parametrize("destination", ["/queue/typo", "/topic/typo"])
def test_a_missing_destination_is_an_error_and_stays_missing(
    buzon_broker: RunningBrokerSync, call: str, destination: str
) -> None:
    before = names(buzon_broker)
    with buzon_broker.client() as client:
        assert refused(client, call, destination, create=False) is ErrorCode.DESTINATION_NOT_FOUND
    assert names(buzon_broker) == before
    with buzon_broker.client() as client:  # without the option, the broker's setting rules
        use(client, call, destination)
    assert names(buzon_broker) == before | {destination}


def test_the_header_works_on_existing_destinations_and_is_not_delivered(
    buzon_broker: RunningBrokerSync,
) -> None:
    buzon_broker.management.create_queue("present")
    with buzon_broker.client() as client:
        inbox = client.subscribe("/queue/present", create=False)
        client.publish("/queue/present", "hello", create=False, headers={"kind": "greeting"})
        message = inbox.get(timeout=5)
    assert message.text == "hello"
    assert message.headers["kind"] == "greeting"
    assert "auto-create" not in message.headers


def test_a_transaction_never_creates_with_it(buzon_broker: RunningBrokerSync) -> None:
    # The transaction's abort (the ERROR ended its connection) must not hide the reason.
    with (
        buzon_broker.client() as client,
        pytest.raises(ApiError) as caught,
        client.transaction() as tx,
    ):
        tx.publish("/queue/tx-typo", "x", create=False)
    assert caught.value.code is ErrorCode.DESTINATION_NOT_FOUND
    assert "/queue/tx-typo" not in names(buzon_broker)


def test_a_value_other_than_true_or_false_is_refused(buzon_broker: RunningBrokerSync) -> None:
    with buzon_broker.client() as client:
        code = refused(client, "publish", "/queue/odd", headers={"auto-create": "no"})
    assert code is ErrorCode.BAD_HEADER_VALUE
    assert "/queue/odd" not in names(buzon_broker)
