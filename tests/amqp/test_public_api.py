"""The public surface of buzon.amqp, and that it stays sans-IO."""

from __future__ import annotations

import subprocess
import sys

import buzon.amqp
from buzon.amqp import (
    CHANNEL_ERRORS,
    CONNECTION_ERRORS,
    BasicGet,
    BasicRecover,
    ChannelFlow,
    ReplyCode,
    TxSelect,
    method_ids,
)


def test_every_public_name_exists() -> None:
    assert len(buzon.amqp.__all__) == len(set(buzon.amqp.__all__))
    for name in buzon.amqp.__all__:
        assert hasattr(buzon.amqp, name), name


def test_every_reply_code_is_a_channel_or_a_connection_error() -> None:
    assert not CHANNEL_ERRORS & CONNECTION_ERRORS
    assert {*CHANNEL_ERRORS, *CONNECTION_ERRORS, ReplyCode.REPLY_SUCCESS} == set(ReplyCode)
    assert ReplyCode.NOT_FOUND.closes_connection is False
    assert ReplyCode.CHANNEL_ERROR.closes_connection is True


def test_importing_it_loads_no_io_and_no_engine() -> None:
    code = (
        "import sys, buzon.amqp\n"
        "loaded = [m for m in ('asyncio', 'socket', 'buzon.server', 'buzon.broker',"
        " 'buzon.store') if m in sys.modules]\n"
        "print(','.join(loaded))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    assert result.stdout.strip() == ""


def test_a_refusal_names_the_method_it_refuses_by_its_spec_ids() -> None:
    assert method_ids(BasicGet(1, "jobs", no_ack=False)) == (60, 70)
    assert method_ids(TxSelect(1)) == (90, 10)
    assert method_ids(BasicRecover(1, requeue=True, asynchronous=False)) == (60, 110)
    assert method_ids(BasicRecover(1, requeue=True, asynchronous=True)) == (60, 100)
    assert method_ids(ChannelFlow(1, active=True)) == (0, 0)  # answered by the codec itself
