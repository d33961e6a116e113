"""What the STOMP client hands out: messages, subscriptions and transactions.

A :class:`Subscription` is an async iterator over a bounded buffer. When the buffer is
full the client stops reading from the broker (the broker then stops sending, or, for a
channel subscriber that falls too far behind, disconnects it); when the application has
taken half of it, reading resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from buzon.client.timing import Delay, delay_ms, lease_ms
from buzon.errors import BuzonError, ErrorCode

if TYPE_CHECKING:
    from types import TracebackType

    from buzon.client.aio import AsyncClient

ERROR_CHARS = 1024
"""The characters of a NACK's ``error`` the broker keeps."""


AckMode = Literal["auto", "client", "client-individual"]


@dataclass(frozen=True, slots=True, eq=False)
class Message:
    """One delivered message.

    Attributes:
        destination: where it was published (``/queue/...`` or ``/topic/...``).
        message_id: the broker's id for it.
        subscription: the id of the subscription it came on.
        headers: the publisher's headers (and ``content-type`` when given).
        body: the body.
        redelivered: the broker delivered it before and it came back.
        ack_id: what ACK/NACK name it by; None in ack mode ``auto``.
    """

    destination: str
    message_id: str
    subscription: str
    headers: Mapping[str, str]
    body: bytes
    redelivered: bool
    ack_id: str | None
    _owner: Subscription = field(repr=False)
    _generation: int = field(repr=False)

    @property
    def text(self) -> str:
        """The body decoded as UTF-8."""
        return self.body.decode()

    async def ack(self, *, transaction: Transaction | None = None, confirm: bool = False) -> None:
        """Acknowledge: the broker forgets the message (and, in ack mode ``client``, every
        earlier one of this subscription). Does nothing in ack mode ``auto``.

        Args:
            transaction: settle inside this transaction (applied at its commit).
            confirm: wait until the broker confirms it handled the ACK.

        Raises:
            BuzonConnectionError: the connection it came on is gone (it will be
                redelivered), or no confirmation in time.
            ApiError: the broker refused it.
        """
        await self._owner.client.settle(self, ack=True, transaction=transaction, confirm=confirm)

    async def nack(
        self,
        *,
        transaction: Transaction | None = None,
        confirm: bool = False,
        requeue: bool = True,
        delay: Delay | None = None,
        error: str | None = None,
    ) -> None:
        """Refuse: a queue message goes back to the queue and is redelivered (marked
        redelivered), after the queue's retry back-off if it has one; a channel message is
        dropped. Arguments and errors as :meth:`ack`, and:

        Args:
            requeue: False sends it to the queue's dead-letter queue at once (reason
                ``rejected``; dropped when the queue has none).
            delay: redeliver it no earlier than this (seconds or a ``timedelta``),
                instead of the queue's back-off.
            error: why it failed, kept with the message (``x-last-error`` once it is
                dead-lettered); the broker keeps the first 1024 characters.

        Raises:
            ValueError: a negative ``delay``, or one with ``requeue=False``.
        """
        refusal: list[tuple[str, str]] = []
        if not requeue:
            if delay is not None:
                raise ValueError("a delay is for a redelivery: not with requeue=False")
            refusal.append(("requeue", "false"))
        if delay is not None:
            refusal.append(("requeue-delay", str(delay_ms(delay))))
        if error is not None:
            # only what the broker keeps: a longer header line would end the connection
            refusal.append(("error", error[:ERROR_CHARS]))
        await self._owner.client.settle(
            self, ack=False, transaction=transaction, confirm=confirm, refusal=tuple(refusal)
        )

    async def extend(self, seconds: float | None = None, *, confirm: bool = False) -> None:
        """Keep the lease: the broker waits ``seconds`` more from now (default: the
        subscription's ack timeout) before it takes the message back for not being
        acknowledged. Does nothing in ack mode ``auto``, nor for a message whose lease
        already ran out (it went back to the queue; ACKing it later is ignored).

        Args:
            seconds: the new time left; at most the broker's scheduling bound (30 days).
            confirm: wait until the broker confirms it handled the extension.

        Raises:
            BuzonConnectionError: as :meth:`ack`.
        """
        await self._owner.client.extend(self, seconds, confirm=confirm)

    def keep_alive(self, seconds: float, every: float | None = None) -> KeepAlive:
        """Extend the lease while a block runs: ``async with message.keep_alive(30):``.

        On entry and then every ``every`` seconds (default: half of ``seconds``) the lease
        is extended to ``seconds`` from then, so a handler slower than the ack timeout
        keeps its message, and a handler that hangs (or a process that dies) loses it
        ``seconds`` later. Leaving the block stops the extensions; ACK or NACK as usual.
        """
        return KeepAlive(self, seconds, seconds / 2 if every is None else every)


class KeepAlive:
    """The extensions of :meth:`Message.keep_alive`; an async context manager."""

    def __init__(self, message: Message, seconds: float, every: float) -> None:
        if not 0 < lease_ms(every, "every") < lease_ms(seconds, "seconds"):
            raise ValueError(
                "keep_alive must extend more often than the lease lasts: every < seconds"
            )
        self.message = message
        self.seconds = seconds
        self.every = every
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> KeepAlive:
        await self.message.extend(self.seconds, confirm=True)
        self._task = asyncio.get_running_loop().create_task(self._extend())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _extend(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            try:
                await self.message.extend(self.seconds)
            except BuzonError:
                return  # the connection is gone: the message will be redelivered anyway


class Subscription:
    """Messages from one queue or channel, in order, as an async iterator.

    Made by :meth:`AsyncClient.subscribe`. Iteration ends after :meth:`unsubscribe` or when the
    client closes; it raises the broker's error if the broker ended it (a deleted
    destination, a slow consumer, an error on the connection).
    """

    def __init__(
        self,
        client: AsyncClient,
        subscription_id: str,
        destination: str,
        ack: AckMode,
        headers: tuple[tuple[str, str], ...],
        buffer: int,
    ) -> None:
        self.client = client
        self.id = subscription_id
        self.destination = destination
        self.ack_mode = ack
        self.headers = headers
        self._buffer = buffer
        self._messages: deque[Message] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._ended = False
        self._error: BuzonError | None = None

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Message:
        try:
            return await self.get()
        except SubscriptionClosed:
            raise StopAsyncIteration from None

    async def get(self, timeout: float | None = None) -> Message:
        """The next message, waiting up to ``timeout`` seconds (None: for ever).

        Raises:
            TimeoutError: nothing arrived in time.
            SubscriptionClosed: it was unsubscribed or the client closed.
            ApiError: the broker ended the subscription.
            BuzonConnectionError: the connection was lost and is not coming back.
        """
        async with asyncio.timeout(timeout):
            while not self._messages:
                if self._ended:
                    if self._error is not None:
                        raise self._error
                    raise SubscriptionClosed(
                        ErrorCode.UNKNOWN_SUBSCRIPTION, f"{self.id} to {self.destination} ended"
                    )
                self._waiter = asyncio.get_running_loop().create_future()
                try:
                    await self._waiter
                finally:
                    self._waiter = None
        message = self._messages.popleft()
        if len(self._messages) <= self._buffer // 2:
            self.client.buffer_drained(self)
        return message

    @property
    def buffered(self) -> int:
        """Messages received and not taken yet."""
        return len(self._messages)

    async def unsubscribe(self, *, forget: bool = False) -> None:
        """End the subscription; unacknowledged queue messages go back to the queue.

        Args:
            forget: for a durable subscription, delete it on the broker too (its backlog
                goes); without it, the broker keeps collecting for your next subscribe.
        """
        await self.client.unsubscribe(self, forget=forget)

    # -- what the client calls -----------------------------------------------------------

    def deliver(self, message: Message) -> bool:
        """Buffer a message; return True when the buffer is now full."""
        self._messages.append(message)
        self._wake()
        return len(self._messages) >= self._buffer

    def end(self, error: BuzonError | None) -> None:
        """No more messages will come; ``error`` says why, None for a normal end."""
        if not self._ended:
            self._ended = True
            self._error = error
            self._wake()

    def forget_unacked(self) -> None:
        """Drop buffered messages that need an ACK: after a reconnect the broker redelivers
        them, and an ACK over the new connection could not name them."""
        if self.ack_mode != "auto":
            self._messages.clear()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class SubscriptionClosed(BuzonError):
    """The subscription ended normally: unsubscribed, or its client closed."""


class Transaction:
    """Publishes, ACKs and NACKs applied together at :meth:`commit`, or not at all.

    Use as ``async with client.transaction() as tx:``: it begins on entry, commits when the
    block ends normally and aborts when it raises.
    """

    def __init__(self, client: AsyncClient, transaction_id: str) -> None:
        self.client = client
        self.id = transaction_id
        self._finished = False

    async def __aenter__(self) -> Transaction:
        await self.client.begin(self)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._finished:
            return
        if error is None:
            await self.commit()
            return
        # The block's own error is the one to see: when the broker refused a frame with an
        # ERROR, the connection (and the transaction with it) is gone, so the abort fails too.
        with contextlib.suppress(BuzonError):
            await self.abort()

    async def publish(
        self,
        destination: str,
        body: bytes | str,
        *,
        headers: Mapping[str, str] | None = None,
        create: bool = True,
        idempotency_key: str | bool = True,
    ) -> None:
        """Stage a publish; nobody receives it before :meth:`commit` (``create`` and
        ``idempotency_key`` as for :meth:`AsyncClient.publish`)."""
        await self.client.publish(
            destination,
            body,
            headers=headers,
            transaction=self,
            create=create,
            idempotency_key=idempotency_key,
        )

    async def commit(self) -> None:
        """Apply everything staged, in order; waits for the broker's confirmation."""
        self._finished = True
        await self.client.finish(self, commit=True)

    async def abort(self) -> None:
        """Drop everything staged; waits for the broker's confirmation."""
        self._finished = True
        await self.client.finish(self, commit=False)
