"""The blocking STOMP client: :class:`AsyncClient` driven from a private event-loop thread.

Not a second implementation: every call is submitted to the asyncio client running on a
daemon thread, and waits for its result. Use it from scripts and threads::

    with Client("stomp://alice:secret@127.0.0.1:61613") as client:
        client.publish("/queue/jobs", "resize photo 42")
        for message in client.subscribe("/queue/jobs", ack="client-individual"):
            handle(message.body)
            message.ack()
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from buzon.client.aio import DEFAULT_URL, AsyncClient
from buzon.client.messages import (
    AckMode,
    KeepAlive,
    Message,
    Subscription,
    SubscriptionClosed,
    Transaction,
)
from buzon.client.timing import Delay

if TYPE_CHECKING:
    from types import TracebackType

T = TypeVar("T")


class _LoopThread:
    """An event loop running on its own daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="buzon-client", daemon=True
        )
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


class BlockingMessage:
    """A delivered message, with blocking :meth:`ack` and :meth:`nack`.

    It has the fields of :class:`buzon.client.Message`: ``destination``, ``message_id``,
    ``subscription``, ``headers``, ``body``, ``text``, ``redelivered`` and ``ack_id``.
    """

    def __init__(self, runner: _LoopThread, message: Message) -> None:
        self._runner = runner
        self.message = message

    @property
    def destination(self) -> str:
        return self.message.destination

    @property
    def message_id(self) -> str:
        return self.message.message_id

    @property
    def subscription(self) -> str:
        return self.message.subscription

    @property
    def headers(self) -> Mapping[str, str]:
        return self.message.headers

    @property
    def body(self) -> bytes:
        return self.message.body

    @property
    def text(self) -> str:
        return self.message.text

    @property
    def redelivered(self) -> bool:
        return self.message.redelivered

    @property
    def ack_id(self) -> str | None:
        return self.message.ack_id

    def __repr__(self) -> str:
        return f"BlockingMessage({self.message!r})"

    def ack(self, *, transaction: BlockingTransaction | None = None, confirm: bool = False) -> None:
        """See :meth:`buzon.client.Message.ack`."""
        tx = None if transaction is None else transaction.transaction
        self._runner.run(self.message.ack(transaction=tx, confirm=confirm))

    def nack(
        self,
        *,
        transaction: BlockingTransaction | None = None,
        confirm: bool = False,
        requeue: bool = True,
        delay: Delay | None = None,
        error: str | None = None,
    ) -> None:
        """See :meth:`buzon.client.Message.nack`."""
        tx = None if transaction is None else transaction.transaction
        refusal = self.message.nack(
            transaction=tx, confirm=confirm, requeue=requeue, delay=delay, error=error
        )
        self._runner.run(refusal)

    def extend(self, seconds: float | None = None, *, confirm: bool = False) -> None:
        """See :meth:`buzon.client.Message.extend`."""
        self._runner.run(self.message.extend(seconds, confirm=confirm))

    def keep_alive(self, seconds: float, every: float | None = None) -> BlockingKeepAlive:
        """``with message.keep_alive(30):``; see :meth:`buzon.client.Message.keep_alive`
        (the extensions run on the client's own thread while the block runs)."""
        return BlockingKeepAlive(self._runner, self.message.keep_alive(seconds, every))


class BlockingKeepAlive:
    """The extensions of :meth:`BlockingMessage.keep_alive`; a context manager."""

    def __init__(self, runner: _LoopThread, keep_alive: KeepAlive) -> None:
        self._runner = runner
        self._keep_alive = keep_alive

    def __enter__(self) -> BlockingKeepAlive:
        self._runner.run(self._keep_alive.__aenter__())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._runner.run(self._keep_alive.__aexit__(exc_type, exc, traceback))


class BlockingSubscription:
    """A subscription as a blocking iterator; see :class:`buzon.client.Subscription`."""

    def __init__(self, runner: _LoopThread, subscription: Subscription) -> None:
        self._runner = runner
        self.subscription = subscription
        self.id = subscription.id
        self.destination = subscription.destination

    def __iter__(self) -> Iterator[BlockingMessage]:
        while True:
            try:
                yield self.get()
            except SubscriptionClosed:
                return

    def get(self, timeout: float | None = None) -> BlockingMessage:
        """The next message, waiting up to ``timeout`` seconds (None: for ever).

        Raises:
            TimeoutError, SubscriptionClosed, ApiError, BuzonConnectionError: as
                :meth:`buzon.client.Subscription.get`.
        """
        return BlockingMessage(self._runner, self._runner.run(self.subscription.get(timeout)))

    def unsubscribe(self, *, forget: bool = False) -> None:
        """See :meth:`buzon.client.Subscription.unsubscribe`."""
        self._runner.run(self.subscription.unsubscribe(forget=forget))


class BlockingTransaction:
    """A transaction; use as ``with client.transaction() as tx:`` (commit, or abort on error)."""

    def __init__(self, runner: _LoopThread, transaction: Transaction) -> None:
        self._runner = runner
        self.transaction = transaction

    def __enter__(self) -> BlockingTransaction:
        self._runner.run(self.transaction.__aenter__())
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._runner.run(self.transaction.__aexit__(kind, error, traceback))

    def publish(
        self,
        destination: str,
        body: bytes | str,
        *,
        headers: Mapping[str, str] | None = None,
        create: bool = True,
        idempotency_key: str | bool = True,
    ) -> None:
        self._runner.run(
            self.transaction.publish(
                destination,
                body,
                headers=headers,
                create=create,
                idempotency_key=idempotency_key,
            )
        )

    def commit(self) -> None:
        self._runner.run(self.transaction.commit())

    def abort(self) -> None:
        self._runner.run(self.transaction.abort())


class Client:
    """The blocking twin of :class:`buzon.client.AsyncClient`; same arguments.

    ``with Client(url) as client:`` connects and closes. Each method blocks until the
    asyncio client's coroutine of the same name finishes, and raises what it raises.
    """

    def __init__(self, url: str = DEFAULT_URL, **options: Any) -> None:
        self._runner = _LoopThread()
        self._client = self._runner.run(_made(url, options))

    def __enter__(self) -> Client:
        self.connect()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def connected(self) -> bool:
        return self._client.connected

    @property
    def broker(self) -> str | None:
        """See :attr:`buzon.client.AsyncClient.broker`."""
        return self._client.broker

    def connect(self) -> None:
        self._runner.run(self._client.connect())

    def close(self) -> None:
        """Disconnect cleanly and stop the private event loop."""
        try:
            self._runner.run(self._client.close())
        finally:
            self._runner.stop()

    def publish(self, destination: str, body: bytes | str, **options: Any) -> None:
        """See :meth:`buzon.client.AsyncClient.publish` (same keyword arguments)."""
        self._runner.run(self._client.publish(destination, body, **options))

    def subscribe(
        self, destination: str, *, ack: AckMode = "auto", **options: Any
    ) -> BlockingSubscription:
        """See :meth:`buzon.client.AsyncClient.subscribe` (same keyword arguments)."""
        subscription = self._runner.run(self._client.subscribe(destination, ack=ack, **options))
        return BlockingSubscription(self._runner, subscription)

    def transaction(self) -> BlockingTransaction:
        return BlockingTransaction(self._runner, self._client.transaction())


async def _made(url: str, options: dict[str, Any]) -> AsyncClient:
    """Build the asyncio client on its own loop (its events belong to that loop)."""
    return AsyncClient(url, **options)
