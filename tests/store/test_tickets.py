"""A shared write ticket runs every callback, whatever one of them does."""

from __future__ import annotations

import logging

import pytest

from buzon.errors import BuzonError, ErrorCode, StoreError
from buzon.server.receipts import ReceiptGate
from buzon.store import Ticket


def test_a_raising_callback_is_logged_once_and_the_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ticket = Ticket()
    ran: list[str] = []
    sent: list[str] = []

    def gone(receipt: str) -> None:
        raise RuntimeError("the connection is gone")

    broken = ReceiptGate("c7", gone, lambda: None, lambda error: None)
    healthy = ReceiptGate("c8", sent.append, lambda: None, lambda error: None)
    ticket.add_callback(lambda done: ran.append("first"))
    broken.wrote(ticket)
    broken.confirm("x")
    healthy.wrote(ticket)
    healthy.confirm("y")
    ticket.add_callback(lambda done: ran.append("last"))

    with caplog.at_level(logging.ERROR, logger="buzon.store"):
        ticket.resolve()

    assert ran == ["first", "last"]
    assert sent == ["y"]
    failures = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert len(failures) == 1
    assert "ReceiptGate(c7)" in failures[0].getMessage()


def test_every_callback_learns_of_a_failed_write() -> None:
    ticket = Ticket()
    seen: list[BuzonError | None] = []

    def raising(done: Ticket) -> None:
        raise ValueError("boom")

    ticket.add_callback(raising)
    ticket.add_callback(lambda done: seen.append(done.error))
    error = StoreError(ErrorCode.STORAGE_UNAVAILABLE, "disk gone")
    ticket.resolve(error)
    assert seen == [error]
