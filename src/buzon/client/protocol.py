"""One STOMP connection of the client: transport bytes to and from the sans-IO core.

Everything about STOMP (framing, states, heart-beat deadlines) is in
:class:`buzon.stomp.StompConnection`; this module moves bytes, keeps the futures of
CONNECTED and of each RECEIPT, runs the heart-beat timer, and tells its owner about
deliveries and about the end of the connection. Reads pause when a subscription's buffer
is full (see :meth:`StompProtocol.hold`), so a slow application slows the broker down
instead of growing this process's memory.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import cast

from buzon.client.errors import ApiError, BuzonConnectionError
from buzon.errors import BuzonError, ErrorCode
from buzon.stomp import (
    Connected,
    Disconnect,
    Error,
    Event,
    Message,
    Receipt,
    Role,
    StompConnection,
)

_BY_MESSAGE = {code.message: code for code in ErrorCode}


def error_from_frame(event: Error) -> ApiError:
    """The exception an ERROR frame stands for, with the broker's code."""
    headers = dict(reversed(event.headers))
    name = headers.get("code", "")
    code = ErrorCode.__members__.get(name) or _BY_MESSAGE.get(
        event.message, ErrorCode.INTERNAL_ERROR
    )
    detail = event.body.decode("utf-8", "replace")
    if code is ErrorCode.INTERNAL_ERROR and event.message != code.message:
        # not one of ours (another broker): its message header is its reason
        said = [event.message] if event.message else []
        said += [] if detail.strip() in ("", event.message) else [detail.strip()]
        detail = ": ".join(said)
    return ApiError(code, detail, status=code.http_status, code_name=name or code.name)


class StompProtocol(asyncio.Protocol):
    """The client side of one connection.

    Args:
        url: the broker's address, for error messages.
        login: user name for CONNECT.
        passcode: password for CONNECT.
        host: the virtual host.
        heart_beat: our ``(cx, cy)`` in ms.
        on_message: called with every MESSAGE.
        on_end: called once when the connection is over, with the broker's ERROR (as
            ApiError) or a BuzonConnectionError, or None after a clean close.
    """

    def __init__(
        self,
        *,
        url: str,
        login: str | None,
        passcode: str | None,
        host: str,
        heart_beat: tuple[int, int],
        on_message: Callable[[Message], None],
        on_end: Callable[[BuzonError | None], None],
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._conn = StompConnection(Role.CLIENT, heart_beat=heart_beat)
        self._url = url
        self._login = login
        self._passcode = passcode
        self._host = host
        self._on_message = on_message
        self._on_end = on_end
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._receipts: dict[str, asyncio.Future[None]] = {}
        self._receipt_ids = itertools.count(1)
        self._error: BuzonError | None = None
        self._closing = False
        self._ended = False
        self._held = False  # the owner wants reading paused
        self._paused = False  # reading is paused now
        self.connected: asyncio.Future[Connected] = self._loop.create_future()

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport; uvloop's does not subclass asyncio.Transport, so no isinstance.
        self._transport = cast(asyncio.Transport, transport)
        self._conn.connect(login=self._login, passcode=self._passcode, host=self._host)
        self._flush()

    def data_received(self, data: bytes) -> None:
        conn = self._conn
        conn.receive_data(data, self._loop.time())
        while (event := conn.next_event()) is not None:
            self._handle(event)
        if conn.close_expected() and self._error is None:
            self._error = BuzonConnectionError(self._url, "the broker sent an invalid frame")
        self._flush()

    def eof_received(self) -> bool | None:
        self._conn.receive_eof()
        while (event := self._conn.next_event()) is not None:
            self._handle(event)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._closing and self._error is None:
            self._finish(None)
        else:
            self._finish(self._error or BuzonConnectionError(self._url, "connection lost"))

    def _finish(self, reason: BuzonError | None) -> None:
        """The connection is over (ERROR received, or closed): fail what waits, tell once."""
        if self._ended:
            return
        self._ended = True
        if self._timer is not None:
            self._timer.cancel()
        failure = reason or BuzonConnectionError(self._url, "connection closed")
        if not self.connected.done():
            self.connected.set_exception(failure)
            self.connected.exception()  # the caller may have given up waiting: no warning
        for future in self._receipts.values():
            if not future.done():
                future.set_exception(failure)
        self._receipts.clear()
        self._on_end(reason)

    # -- what the owner calls -------------------------------------------------------------

    def send(self, event: Event) -> None:
        """Queue an event and write it now.

        Raises:
            BuzonConnectionError: the connection is ending (after an ERROR, or closed).
        """
        if self._ended or self._conn.close_expected():
            raise BuzonConnectionError(self._url, "the connection is closing")
        self._conn.send(event)
        self._flush()

    def next_receipt_id(self) -> str:
        return f"r{next(self._receipt_ids)}"

    def expect_receipt(self, receipt_id: str) -> asyncio.Future[None]:
        """A future resolved by the RECEIPT for ``receipt_id`` (or failed with the ERROR)."""
        future: asyncio.Future[None] = self._loop.create_future()
        self._receipts[receipt_id] = future
        self._apply_hold()
        return future

    def hold(self, held: bool) -> None:
        """Ask to stop reading (a subscription's buffer is full) or to read again.

        Reading stops only while no RECEIPT is awaited: a confirmation must be read even
        when the application is behind on its messages, or a publish made while consuming
        would wait for ever. So the buffer bound is exact except while confirmations are
        in flight.
        """
        self._held = held
        self._apply_hold()

    def _apply_hold(self) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        paused = self._held and not self._receipts
        if paused is not self._paused:
            self._paused = paused
            if paused:
                transport.pause_reading()
            else:
                transport.resume_reading()

    async def disconnect(self, timeout: float) -> None:
        """Say DISCONNECT, wait for its receipt (everything sent before it was handled),
        then close."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        self._closing = True
        receipt_id = self.next_receipt_id()
        done = self.expect_receipt(receipt_id)
        try:
            self.send(Disconnect(receipt=receipt_id))
            async with asyncio.timeout(timeout):
                await done
        except (BuzonError, TimeoutError):
            pass  # closing anyway
        finally:
            transport.close()

    def abort(self) -> None:
        """Cut the connection now."""
        self._closing = True
        if self._transport is not None:
            self._transport.abort()

    # -- internals -----------------------------------------------------------------------

    def _handle(self, event: Event) -> None:
        if isinstance(event, Message):
            self._on_message(event)
        elif isinstance(event, Receipt):
            future = self._receipts.pop(event.receipt_id, None)
            if future is not None and not future.done():
                future.set_result(None)
            self._apply_hold()
        elif isinstance(event, Connected):
            self._arm_timer()
            if not self.connected.done():
                self.connected.set_result(event)
        elif isinstance(event, Error):
            self._refused(event)

    def _refused(self, event: Error) -> None:
        """STOMP ends the connection after an ERROR: end it now, not when the socket
        closes, so nothing more is sent on it. An ERROR naming a receipt refuses that frame
        alone: the others waiting for theirs have an unknown outcome, as when a connection
        is lost (they may be resent). One naming none (a write that failed, a broken
        protocol) is the answer of everything waiting."""
        self._error = error = error_from_frame(event)
        if event.receipt_id is not None:
            future = self._receipts.pop(event.receipt_id, None)
            if future is not None and not future.done():
                future.set_exception(error)
            lost = BuzonConnectionError(self._url, f"the connection ended on an ERROR: {error}")
            for other in self._receipts.values():
                if not other.done():
                    other.set_exception(lost)
        self._finish(error)
        if self._transport is not None:
            self._transport.close()

    def _flush(self) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        data = self._conn.data_to_send()
        if data:
            transport.write(data)
        if self._conn.close_expected():
            transport.close()

    def _arm_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self._conn.get_timer()
        if deadline is not None:
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._conn.handle_timer(self._loop.time())
        if self._conn.close_expected() and self._error is None:
            self._error = BuzonConnectionError(self._url, "the broker stopped sending heart-beats")
        self._flush()
        self._arm_timer()
