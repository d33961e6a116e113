"""The asyncio STOMP client: publish, subscribe, acknowledge, transactions, reconnect.

Usage::

    async with AsyncClient("stomp://alice:secret@127.0.0.1:61613") as client:
        await client.publish("/queue/jobs", "resize photo 42")
        async for message in await client.subscribe("/queue/jobs", ack="client-individual"):
            ...
            await message.ack()

Reconnection policy. A lost connection (network, broker restart, ERROR "server shutting
down") is hidden: the client reconnects with exponential backoff and subscribes again
with the same ids; a confirmed publish to a queue that was waiting for its receipt is
sent once more on the new connection with the same ``idempotency-key`` (so the queue holds
it once, whether or not the first attempt got in); anything else in flight fails with
:class:`BuzonConnectionError` (buffered messages that still need an ACK are dropped,
because the broker redelivers them). A broker ERROR is never hidden: the operation that caused it
raises :class:`ApiError`, and so does every subscription of that connection, since STOMP
ends the connection after an ERROR; the client then reconnects for new work unless the
login itself was refused.

Several brokers (``stomp://alice@h1:61613,h2:61613``, the nodes of a cluster) are tried in
the URL's order, so the first one listed is the preferred one: :meth:`AsyncClient.connect`
takes the first that accepts. After a lost connection the client starts with the broker
after the one it lost (that one is likely still down) and goes round the list; one round
where none accepts is one step of the backoff. A refused login does not fail over: the
same credentials would be refused everywhere, so it is raised at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import ssl as ssl_module
import uuid
from collections.abc import Callable, Mapping
from functools import partial

from buzon.client.errors import ApiError, BuzonConnectionError, LoginRefused
from buzon.client.messages import AckMode, Message, Subscription, Transaction
from buzon.client.protocol import StompProtocol
from buzon.client.timing import Delay, When, lease_ms, schedule
from buzon.client.tls import CaFile, client_context, failure_reason
from buzon.client.urls import StompAddress, parse_stomp_url
from buzon.errors import BuzonError, ErrorCode
from buzon.priority import HIGHEST_PRIORITY, PRIORITY_HEADER
from buzon.stomp import (
    Abort,
    Ack,
    Begin,
    Commit,
    Event,
    Headers,
    Nack,
    Send,
    Subscribe,
    Unsubscribe,
)
from buzon.stomp import Message as MessageFrame

DEFAULT_URL = "stomp://127.0.0.1:61613"
AUTO_CREATE = "auto-create"
"""The SEND / SUBSCRIBE header that, set to ``false``, stops the broker creating on first use."""
EXTEND_ADDRESS = "/buzon/extend"
"""Where a SEND extends a delivery's lease (never a queue or channel)."""
IDEMPOTENCY_KEY = "idempotency-key"
"""The SEND header that makes a repeated publish to a queue (within its ``dedup_window_ms``)
enqueue nothing new."""

# Login refusals: reconnecting with the same credentials cannot help.
_FATAL = frozenset(
    {
        ErrorCode.AUTH_FAILED,
        ErrorCode.ACCOUNT_DISABLED,
        ErrorCode.TOO_MANY_ATTEMPTS,
        ErrorCode.UNSUPPORTED_VERSION,
    }
)
# Broker ERRORs that mean "the broker went away", handled like a lost connection.
_TRANSIENT = frozenset({ErrorCode.SERVER_SHUTDOWN, ErrorCode.HEARTBEAT_TIMEOUT})


class AsyncClient:
    """A STOMP connection to buzon that survives broker restarts.

    Args:
        url: ``stomp://[user:pass@]host[:port]`` or ``stomp+ssl://...``; several brokers
            as ``stomp://[user:pass@]host[:port],host[:port]...`` (tried in that order).
        login: user name (overrides the URL's).
        passcode: password (overrides the URL's).
        host: the STOMP virtual host.
        heart_beat: ``(send, receive)`` heart-beat wishes in ms (0 = none).
        reconnect: reconnect and resubscribe after a lost connection.
        max_reconnect_delay: the backoff's ceiling, in seconds.
        timeout: seconds to wait for the connection and for each confirmation.
        ssl: the TLS context for ``stomp+ssl`` (default: the system's trust store, host
            name checked).
        ca_file: for ``stomp+ssl``, a PEM file of the CA certificates to trust instead of
            the system's (a private CA); the host name is still checked.

    Raises:
        RequestError: BAD_REQUEST for an invalid URL, ``ssl`` or ``ca_file`` with a
            ``stomp://`` URL, both of them at once, or an unreadable CA file.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        login: str | None = None,
        passcode: str | None = None,
        host: str = "/",
        heart_beat: tuple[int, int] = (10_000, 10_000),
        reconnect: bool = True,
        max_reconnect_delay: float = 5.0,
        timeout: float = 10.0,
        ssl: ssl_module.SSLContext | None = None,
        ca_file: CaFile | None = None,
    ) -> None:
        address = parse_stomp_url(url)
        self.url = address.display  # never shows credentials
        self._addresses = address.addresses
        self._next = 0  # the index of the broker to try first
        self._login = login if login is not None else address.login
        self._passcode = passcode if passcode is not None else address.passcode
        self._host = host
        self._heart_beat = heart_beat
        self._reconnect = reconnect
        self._max_delay = max_reconnect_delay
        self.timeout = timeout
        self._ssl = client_context(address.display, address.tls, ssl, ca_file)
        self._protocol: StompProtocol | None = None
        self._broker: StompAddress | None = None
        self._ready = asyncio.Event()
        self._generation = 0
        self._subscriptions: dict[str, Subscription] = {}
        self._transactions: set[str] = set()  # ids of those begun on the current connection
        self._paused: set[Subscription] = set()
        self._ids = itertools.count(1)
        self._reconnecting: asyncio.Task[None] | None = None
        self._fatal: BuzonError | None = None
        self._closed = False

    async def __aenter__(self) -> AsyncClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        """Whether a logged-in connection is up right now."""
        return self._ready.is_set()

    @property
    def broker(self) -> str | None:
        """``host:port`` of the broker this client is connected to; None while it is not."""
        return None if self._broker is None else self._broker.host_port

    async def connect(self) -> None:
        """Connect and log in.

        With several brokers, the first one that accepts (in the URL's order).

        Raises:
            LoginRefused: the broker refused the login (AUTH_FAILED, ...); with several, at
                once for a wrong password, a disabled account or too many attempts, else
                when every broker refused.
            BuzonConnectionError: no broker can be reached in time (each one's reason).
        """
        await self._open()

    async def close(self) -> None:
        """Disconnect cleanly (everything sent before is handled by the broker first)."""
        self._closed = True
        if self._reconnecting is not None:
            self._reconnecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnecting
        protocol, self._protocol = self._protocol, None
        self._broker = None
        self._ready.clear()
        if protocol is not None:
            await protocol.disconnect(self.timeout)
        for subscription in list(self._subscriptions.values()):
            subscription.end(None)
        self._subscriptions.clear()

    # -- publishing ----------------------------------------------------------------------

    async def publish(
        self,
        destination: str,
        body: bytes | str,
        *,
        headers: Mapping[str, str] | None = None,
        access_key: str | None = None,
        persistent: bool | None = None,
        content_type: str | None = None,
        confirm: bool = True,
        transaction: Transaction | None = None,
        timeout: float | None = None,
        create: bool = True,
        delay: Delay | None = None,
        deliver_at: When | None = None,
        idempotency_key: str | bool = True,
        priority: int | None = None,
    ) -> None:
        """Publish to ``/queue/<name>`` or ``/topic/<name>``.

        Args:
            destination: where to.
            body: bytes, or text (sent as UTF-8 with ``text/plain`` unless
                ``content_type`` says otherwise).
            headers: your own headers, passed to consumers.
            access_key: the destination's key, when someone else's key protects it.
            persistent: ask for (True) or against (False) storage on disk; the broker's
                default when None.
            content_type: the body's media type.
            confirm: wait for the broker's receipt (the message is accepted, and stored if
                persistent) before returning.
            transaction: stage it in this transaction.
            timeout: seconds to wait for the receipt (default: the client's timeout).
            create: False sends ``auto-create:false``: a missing destination is an error
                (DESTINATION_NOT_FOUND) even where the broker creates on first use.
            delay: queues: deliver no earlier than this long from now (seconds or a
                ``timedelta``); the message is stored at once.
            deliver_at: queues: or no earlier than this moment (an aware ``datetime`` or
                Unix seconds); a moment past delivers at once.
            idempotency_key: for a queue, True (the default) sends a new random key, so
                that the client may resend this publish after a lost connection without
                the queue holding it twice; a string sends that key (reuse it when you
                publish the same thing again yourself, e.g. after an error); False sends
                none (and a lost connection is not retried). Channels ignore keys.
            priority: 0 (lowest) to 9: a queue hands out higher priorities first, in
                publish order within one; the broker's default (4) when None.

        Raises:
            ApiError: the broker refused it (access key, missing destination, a delay
                beyond the broker's bound or on a channel, ...).
            BuzonConnectionError: no receipt in time, or the connection was lost first
                (and, with a key, again on the next connection).
            ValueError: both ``delay`` and ``deliver_at``, a negative one, or a
                ``priority`` that is not an integer from 0 to 9 (nothing was sent).
        """
        timing = schedule(delay, deliver_at)
        _check_priority(priority)
        if isinstance(body, str):
            payload = body.encode()
            content_type = content_type or "text/plain;charset=utf-8"
        else:
            payload = body
        extra = dict(headers or {})
        if content_type is not None:
            extra["content-type"] = content_type
        if access_key is not None:
            extra["access-key"] = access_key
        if persistent is not None:
            extra["persistent"] = "true" if persistent else "false"
        if priority is not None:
            extra[PRIORITY_HEADER] = str(priority)
        if not create:
            extra[AUTO_CREATE] = "false"
        if timing is not None:
            extra[timing[0]] = str(timing[1])
        key = extra.get(IDEMPOTENCY_KEY) or _key_for(destination, idempotency_key)
        if key is not None:
            extra[IDEMPOTENCY_KEY] = key
        tx = None if transaction is None else transaction.id
        pairs = tuple(extra.items())
        if not confirm:
            await self._send(Send(destination, pairs, payload, None, tx), transaction)
            return
        # resending is safe only with a key, and a transaction dies with its connection
        retry = key is not None and transaction is None and self._reconnect
        send = partial(Send, destination, pairs, payload)
        await self._confirmed(lambda receipt: send(receipt, tx), timeout, transaction, retry)

    async def _confirmed(
        self,
        make: Callable[[str], Event],
        timeout: float | None,
        transaction: Transaction | None,
        retry: bool,
    ) -> None:
        """Send and wait for the receipt; ``retry``: once more on the next connection if
        this one is lost first."""
        while True:
            try:
                await self._request(make, timeout, transaction)
                return
            except (BuzonConnectionError, ApiError) as exc:
                lost = not isinstance(exc, ApiError) or exc.code in _TRANSIENT
                if not (retry and lost) or self.connected or self._closed or self._fatal:
                    raise  # refused, a timeout on a live connection, or nothing to reconnect to
                retry = False  # once: the next connection's outcome is the answer

    # -- subscribing ---------------------------------------------------------------------

    async def subscribe(
        self,
        destination: str,
        *,
        ack: AckMode = "auto",
        prefetch: int | None = None,
        access_key: str | None = None,
        buffer: int = 1000,
        headers: Mapping[str, str] | None = None,
        durable: str | None = None,
        create: bool = True,
        ack_timeout: float | None = None,
    ) -> Subscription:
        """Subscribe to a queue (each message to one consumer) or a channel (to all).

        Args:
            destination: ``/queue/<name>`` or ``/topic/<name>``.
            ack: ``auto`` (settled on delivery), ``client`` (ACK is cumulative) or
                ``client-individual``.
            prefetch: unacknowledged messages the broker may send ahead (client modes).
            access_key: the destination's key, when someone else's key protects it.
            buffer: messages held here before the client stops reading from the broker.
            headers: more SUBSCRIBE headers.
            durable: for a channel, the name of your durable subscription: the broker
                keeps what is published while you are away and hands it over on your
                next subscribe with that name (``unsubscribe(forget=True)`` deletes it).
            create: False: a missing destination is an error, as for :meth:`publish`
                (also when resubscribing after a reconnect).
            ack_timeout: seconds (client modes, queues): a message not acknowledged
                within this long goes back to the queue, and may go to another consumer
                (at most the queue's ``ack_timeout_ms``; default: that one). Keep a
                lease with :meth:`Message.extend` or :meth:`Message.keep_alive`.

        Returns:
            the subscription, once the broker confirmed it.

        Raises:
            ApiError: refused (access key, missing destination, bad prefetch).
            BuzonConnectionError: no confirmation in time.
        """
        extra = dict(headers or {})
        if prefetch is not None:
            extra["prefetch-count"] = str(prefetch)
        if access_key is not None:
            extra["access-key"] = access_key
        if durable is not None:
            extra["subscription-name"] = durable
        if not create:
            extra[AUTO_CREATE] = "false"
        if ack_timeout is not None:
            extra["ack-timeout-ms"] = str(lease_ms(ack_timeout, "ack_timeout"))
        subscription = Subscription(
            self, f"s{next(self._ids)}", destination, ack, tuple(extra.items()), max(buffer, 1)
        )
        self._subscriptions[subscription.id] = subscription
        try:
            await self._request(lambda receipt: _subscribe_frame(subscription, receipt), None)
        except BaseException:
            self._subscriptions.pop(subscription.id, None)
            raise
        return subscription

    async def unsubscribe(self, subscription: Subscription, *, forget: bool = False) -> None:
        """End a subscription (see :meth:`Subscription.unsubscribe`)."""
        if self._subscriptions.pop(subscription.id, None) is None:
            return
        subscription.end(None)
        self._paused.discard(subscription)
        extra = (("durable", "true"),) if forget else ()
        if self.connected:
            await self._request(lambda receipt: Unsubscribe(subscription.id, receipt, extra), None)
        self.buffer_drained(subscription)

    # -- settling and transactions ---------------------------------------------------------

    async def settle(
        self,
        message: Message,
        *,
        ack: bool,
        transaction: Transaction | None,
        confirm: bool,
        refusal: Headers = (),
    ) -> None:
        """ACK or NACK a message (see :meth:`Message.ack`); ``refusal``: the NACK's headers
        (see :meth:`Message.nack`)."""
        if message.ack_id is None:
            return
        if message._generation != self._generation or not self.connected:
            raise BuzonConnectionError(
                self.url, "the connection this message came on is gone; it will be redelivered"
            )
        ack_id = message.ack_id
        tx = None if transaction is None else transaction.id

        def frame(receipt: str | None) -> Ack | Nack:
            if ack:
                return Ack(ack_id, tx, receipt)
            return Nack(ack_id, tx, receipt, headers=refusal)

        if confirm:
            await self._request(frame, None, transaction)
        else:
            await self._send(frame(None), transaction)

    async def extend(self, message: Message, seconds: float | None, *, confirm: bool) -> None:
        """Extend a message's lease (see :meth:`Message.extend`)."""
        ms = None if seconds is None else lease_ms(seconds, "seconds")
        if message.ack_id is None:
            return
        if message._generation != self._generation or not self.connected:
            raise BuzonConnectionError(
                self.url, "the connection this message came on is gone; it will be redelivered"
            )
        pairs: tuple[tuple[str, str], ...] = (("ack", message.ack_id),)
        if ms is not None:
            pairs += (("extend-ms", str(ms)),)
        if confirm:
            await self._request(lambda receipt: Send(EXTEND_ADDRESS, pairs, b"", receipt), None)
        else:
            await self._send(Send(EXTEND_ADDRESS, pairs, b""))

    def transaction(self) -> Transaction:
        """A new transaction; use it as ``async with client.transaction() as tx:``."""
        return Transaction(self, f"t{next(self._ids)}")

    async def begin(self, transaction: Transaction) -> None:
        """Open ``transaction`` on the broker (done by ``async with``)."""
        await self._connection(None)  # after a reconnect in progress: on the new connection
        self._transactions.add(transaction.id)
        try:
            await self._request(lambda receipt: Begin(transaction.id, receipt), None, transaction)
        except BaseException:
            self._transactions.discard(transaction.id)
            raise

    async def finish(self, transaction: Transaction, *, commit: bool) -> None:
        """Commit or abort ``transaction`` and wait for the broker's confirmation."""
        kind = Commit if commit else Abort
        try:
            await self._request(lambda receipt: kind(transaction.id, receipt), None, transaction)
        finally:
            self._transactions.discard(transaction.id)

    # -- flow control --------------------------------------------------------------------

    def buffer_drained(self, subscription: Subscription) -> None:
        """A subscription's buffer has room again: resume reading if nothing else is full."""
        self._paused.discard(subscription)
        if not self._paused and self._protocol is not None:
            self._protocol.hold(False)

    def _on_message(self, frame: MessageFrame) -> None:
        subscription = self._subscriptions.get(frame.subscription)
        if subscription is None:
            return  # unsubscribed meanwhile
        message = Message(
            destination=frame.destination,
            message_id=frame.message_id,
            subscription=frame.subscription,
            headers=dict(reversed(frame.headers)),
            body=frame.body,
            redelivered=frame.redelivered,
            ack_id=frame.ack,
            _owner=subscription,
            _generation=self._generation,
        )
        if subscription.deliver(message) and self._protocol is not None:
            self._paused.add(subscription)
            self._protocol.hold(True)

    # -- connecting ------------------------------------------------------------------------

    async def _open(self) -> None:
        """Connect to the first broker that accepts, going round the list from ``_next``.

        Raises:
            LoginRefused: at once for a refusal every broker would give (:data:`_FATAL`),
                else the first refusal when no broker accepted.
            BuzonConnectionError: no broker could be reached (each one's reason).
        """
        count = len(self._addresses)
        unreachable: list[tuple[StompAddress, BuzonConnectionError]] = []
        refused: LoginRefused | None = None
        for step in range(count):
            index = (self._next + step) % count
            address = self._addresses[index]
            try:
                protocol = await self._open_one(address)
            except BuzonConnectionError as failure:
                unreachable.append((address, failure))
                continue
            except LoginRefused as refusal:
                if refusal.code in _FATAL:
                    raise
                refused = refused or refusal
                continue
            self._next = index
            self._attach(protocol, address)
            return
        if refused is not None:
            raise refused
        if count == 1:
            raise unreachable[0][1]
        reasons = "; ".join(
            f"{address.host_port}: {failure.detail}" for address, failure in unreachable
        )
        raise BuzonConnectionError(self.url, reasons)

    async def _open_one(self, address: StompAddress) -> StompProtocol:
        """A logged-in connection to ``address``; its end is reported only once attached."""

        def ended(reason: BuzonError | None) -> None:
            self._on_end(protocol, reason)

        loop = asyncio.get_running_loop()
        protocol = StompProtocol(
            url=address.display,
            login=self._login,
            passcode=self._passcode,
            host=self._host,
            heart_beat=self._heart_beat,
            on_message=self._on_message,
            on_end=ended,
        )
        try:
            async with asyncio.timeout(self.timeout):
                await loop.create_connection(
                    lambda: protocol,
                    address.host,
                    address.port,
                    ssl=self._ssl,
                    server_hostname=address.host if self._ssl is not None else None,
                )
                await protocol.connected
        except (OSError, TimeoutError) as exc:
            protocol.abort()
            reason = "timed out" if isinstance(exc, TimeoutError) else failure_reason(exc)
            raise BuzonConnectionError(address.display, reason) from None
        except ApiError as refused:
            raise LoginRefused(address.host_port, refused) from None
        return protocol

    def _attach(self, protocol: StompProtocol, address: StompAddress) -> None:
        """Make ``protocol`` the connection and subscribe again on it."""
        self._generation += 1
        self._protocol = protocol
        self._broker = address
        self._paused.clear()
        self._transactions.clear()
        for subscription in self._subscriptions.values():
            subscription.forget_unacked()
            protocol.send(_subscribe_frame(subscription, None))
        self._ready.set()

    def _on_end(self, protocol: StompProtocol, reason: BuzonError | None) -> None:
        if protocol is not self._protocol:
            return  # an attempt that never became the connection: _open reports it
        self._ready.clear()
        self._protocol = None
        self._broker = None
        if self._closed or reason is None:
            return
        transient = not isinstance(reason, ApiError) or reason.code in _TRANSIENT
        if transient:  # that broker went away: try it last
            self._next = (self._next + 1) % len(self._addresses)
        if isinstance(reason, ApiError) and reason.code in _FATAL:
            self._fatal = reason
        if not transient or self._fatal is not None or not self._reconnect:
            for subscription in list(self._subscriptions.values()):
                subscription.end(reason)
            self._subscriptions.clear()
        if self._fatal is None and self._reconnect and self._reconnecting is None:
            self._reconnecting = asyncio.get_running_loop().create_task(self._reconnect_loop())

    async def _reconnect_loop(self) -> None:
        delay = 0.1
        try:
            while not self._closed:
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                try:
                    await self._open()
                    return
                except ApiError as refused:
                    if refused.code in _FATAL:
                        self._fatal = refused
                        for subscription in list(self._subscriptions.values()):
                            subscription.end(refused)
                        return
                except BuzonConnectionError:
                    pass
                delay = min(delay * 2, self._max_delay)
        finally:
            self._reconnecting = None

    async def _connection(self, timeout: float | None) -> StompProtocol:
        """The live connection, waiting for a reconnect in progress."""
        if self._closed:
            raise BuzonConnectionError(self.url, "the client is closed")
        if self._fatal is not None:
            raise self._fatal
        if not self._ready.is_set():
            if not self._reconnect or self._reconnecting is None:
                raise BuzonConnectionError(self.url, "not connected")
            try:
                async with asyncio.timeout(timeout if timeout is not None else self.timeout):
                    await self._ready.wait()
            except TimeoutError:
                raise BuzonConnectionError(self.url, "reconnecting took too long") from None
        protocol = self._protocol
        if protocol is None:
            raise BuzonConnectionError(self.url, "not connected")
        return protocol

    def _check_transaction(self, transaction: Transaction | None) -> None:
        """Refuse to name a transaction begun on a connection that is gone.

        The broker dropped it with that connection; naming it on the new one would get an
        ERROR, which would end the new connection and every subscription with it.
        """
        if transaction is not None and transaction.id not in self._transactions:
            raise BuzonConnectionError(
                self.url, "the connection this transaction began on is gone; nothing of it applies"
            )

    async def _send(self, event: Event, transaction: Transaction | None = None) -> None:
        protocol = await self._connection(None)
        self._check_transaction(transaction)
        protocol.send(event)

    async def _request(
        self,
        make: Callable[[str], Event],
        timeout: float | None,
        transaction: Transaction | None = None,
    ) -> None:
        protocol = await self._connection(timeout)
        self._check_transaction(transaction)
        receipt = protocol.next_receipt_id()
        protocol.send(make(receipt))
        done = protocol.expect_receipt(receipt)  # no RECEIPT can arrive before we yield
        try:
            async with asyncio.timeout(timeout if timeout is not None else self.timeout):
                await done
        except TimeoutError:
            raise BuzonConnectionError(self.url, "no receipt from the broker in time") from None


def _check_priority(priority: int | None) -> None:
    """Refuse a priority the broker would refuse, before anything is sent.

    Raises:
        ValueError: not None and not an integer from 0 to 9.
    """
    if priority is not None and (
        isinstance(priority, bool)
        or not isinstance(priority, int)
        or not 0 <= priority <= HIGHEST_PRIORITY
    ):
        raise ValueError(f"priority must be an integer from 0 to {HIGHEST_PRIORITY}")


def _key_for(destination: str, given: str | bool) -> str | None:
    """The idempotency key a publish sends: the caller's, a new one, or none (channels
    ignore keys, so none is made up for them)."""
    if isinstance(given, str):
        return given
    if given and destination.startswith("/queue/"):
        return str(uuid.uuid4())
    return None


def _subscribe_frame(subscription: Subscription, receipt: str | None) -> Subscribe:
    return Subscribe(
        subscription.destination,
        subscription.id,
        subscription.ack_mode,
        subscription.headers,
        receipt,
    )
