"""The work of one redrive: take from the dead-letter queue, publish, wait until
durable, settle; and the record of how far it got (see ``redrive`` for the whole story).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from buzon.auth import Principal
from buzon.broker import Broker, Headers, Message, Queue
from buzon.broker.policy import ORIGIN_HEADER, first
from buzon.errors import BrokerError, BuzonError, ErrorCode
from buzon.server.publish_headers import split_publish
from buzon.server.queue_waits import wait_ready
from buzon.store import DestinationKind, DestinationRecord, Ticket
from buzon.store.tickets import settled

REDRIVE_COUNT_HEADER = "x-redrive-count"
"""How many times a message was redriven (1 after the first redrive)."""

BATCH = 100
"""Messages taken from the dead-letter queue at once when no rate holds them back."""

READ_WAIT = 1.0
"""Seconds to wait for a paged dead-letter queue to read its next messages back."""

MAX_EMPTY_WAITS = 5
"""Waits in a row with nothing to take, while the queue still counts messages (held
elsewhere: another node's claims), after which the run ends as done."""

MAX_ASIDE = 10 * BATCH
"""Dead letters that arrived during the run held aside at most (met while older messages
of lower priorities wait behind them); past it, the run ends."""

FULL_WAIT = 0.05
"""Seconds between looks at the broker's memory while it is over its high-water mark."""

SETTLE_WAIT = 5.0
"""Seconds a cancelled run still waits for the copies it wrote, to settle their
originals instead of returning them (which would duplicate them)."""

Authorize = Callable[[DestinationRecord], Awaitable[frozenset[str]]]
"""Checks the access key presented with the request for a protected target, once per
target; returns the grants to publish with (see ``grants_for``)."""


class RedriveState(enum.StrEnum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


@dataclass(eq=False, slots=True)
class Redrive:
    """One redrive and how far it got.

    Attributes:
        id: random, unguessable.
        queue: the dead-letter queue it empties.
        to: the target queue, or None for each message's ``x-original-destination``.
        rate_per_s: messages per second at most, or None for as fast as it goes.
        limit: most messages to move, or None.
        owner_id: the user who started it (they and admins may see or cancel it).
        started_by: their name.
        total: how many it will move: ``min(limit, messages waiting at the start)``.
        moved: how many are in their target now.
        state: running, done or failed.
        error: why it failed.
        cancelled_by: who cancelled it (it failed for that reason).
        started_at: Unix time.
        finished_at: Unix time, once finished.
    """

    id: str
    queue: str
    to: str | None
    rate_per_s: int | None
    limit: int | None
    owner_id: str
    started_by: str
    total: int
    moved: int = 0
    state: RedriveState = RedriveState.RUNNING
    error: str | None = None
    cancelled_by: str | None = None
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    def finish(self, error: str | None = None) -> None:
        if self.state is RedriveState.RUNNING:
            self.state = RedriveState.DONE if error is None else RedriveState.FAILED
            self.error = error
            self.finished_at = time.time()


RENAMED = {"idempotency-key": "x-original-idempotency-key"}
"""Publish options kept as history only: a redriven message carrying its publisher's
``idempotency-key`` would be taken for a duplicate of itself by its original queue (and
dropped) within the key's window."""


def redriven_headers(headers: Headers) -> Headers:
    """The headers of a redriven message: its history kept, ``x-redrive-count`` one
    higher, no ``expires`` (the target's TTL applies afresh), and the publish options of
    :data:`RENAMED` renamed so that they are not applied again."""
    count = 0
    kept = []
    seen = False
    for name, value in headers:
        if name == REDRIVE_COUNT_HEADER:
            if not seen and value.isascii() and value.isdigit() and len(value) <= 9:
                count = int(value)
            seen = True
        elif name != "expires":
            kept.append((RENAMED.get(name, name), value))
    return ((REDRIVE_COUNT_HEADER, str(count + 1)), *kept)


def origin_of(message: Message) -> str:
    """The queue a dead-lettered message came from.

    Raises:
        BrokerError: BAD_DESTINATION when it has no ``x-original-destination`` or that is
            not a queue.
    """
    origin = first(message.headers, ORIGIN_HEADER)
    if origin is None:
        raise BrokerError(
            ErrorCode.BAD_DESTINATION,
            f"message {message.id} has no {ORIGIN_HEADER} header: redrive it with 'to'",
        )
    name = origin.removeprefix("/queue/")
    if name == origin or not name:
        raise BrokerError(
            ErrorCode.BAD_DESTINATION,
            f"message {message.id} came from {origin[:200]}, not a queue: redrive it with 'to'",
        )
    return name


class Mover:
    """The work of one redrive: take, publish, wait until durable, settle.

    Args:
        boundary: the last message number given when the run started (later ones
            arrived after it), or None on a cluster, where each node numbers its own.
    """

    def __init__(
        self,
        broker: Broker,
        principal: Principal,
        source: Queue,
        to: str | None,
        authorize: Authorize,
        boundary: int | None,
    ) -> None:
        self._broker = broker
        self._principal = principal
        self._source = source
        self._to = to
        self._authorize = authorize
        self._boundary = boundary
        # grants per target, by the target's id and key hash (a new key asks again)
        self._grants: dict[tuple[str, str | None], frozenset[str]] = {}
        self._moved: Callable[[int], None] = lambda count: None
        # taken, arrived after the start: out of the way until the run ends (a queue
        # with priorities hands them out before older messages of lower priorities)
        self._aside: list[Message] = []

    async def check_targets(self, total: int) -> None:
        """Check ``to``, or the original destinations of the first waiting messages (those
        in memory), so that an obvious refusal is the request's answer.

        Raises:
            as :meth:`Redrives.start`.
        """
        if self._to is not None:
            await self._target(self._to)
            return
        seen = set()
        for message, _ in self._source.peek(min(total, BATCH)):
            name = origin_of(message)
            if name not in seen:
                seen.add(name)
                await self._target(name)

    async def _target(self, name: str) -> tuple[Queue, frozenset[str]]:
        """The queue ``name`` and the grants to publish there with.

        Raises:
            BrokerError: DESTINATION_NOT_FOUND; BAD_DESTINATION for the dead-letter queue.
            AccessDenied: the caller may not publish there.
        """
        target = self._broker.destination(DestinationKind.QUEUE, name)
        if not isinstance(target, Queue):
            raise BrokerError(ErrorCode.DESTINATION_NOT_FOUND, f"/queue/{name[:80]} does not exist")
        if target is self._source:
            raise BrokerError(
                ErrorCode.BAD_DESTINATION, f"/queue/{name[:80]} is the dead-letter queue itself"
            )
        record = target.record
        known = (record.id, record.key_hash)
        grants = self._grants.get(known)
        if grants is None:
            grants = await self._authorize(record)
            self._grants[known] = grants
        self._broker.check_publish(self._principal, target.address, grants)
        return target, grants

    async def run(self, redrive: Redrive, redriven: Counter[str]) -> None:
        """Move messages until ``total`` are moved, the queue has no more of them, or
        something fails; record the outcome in ``redrive``."""

        def moved(count: int) -> None:
            redrive.moved += count
            redriven[self._source.name] += count

        self._moved = moved
        try:
            try:
                await self._move_all(redrive)
            finally:
                aside, self._aside = self._aside, []
                if aside:
                    self._source.return_taken(aside)
        except BuzonError as exc:
            redrive.finish(exc.detail or exc.code.message)
        except asyncio.CancelledError:
            cancelled = redrive.cancelled_by
            redrive.finish(
                "the broker stopped" if cancelled is None else f"cancelled by {cancelled}"
            )
            raise
        except Exception as exc:  # a bug: this run fails, the server goes on
            redrive.finish(f"internal error ({type(exc).__name__})")
            raise
        else:
            redrive.finish()

    async def _move_all(self, redrive: Redrive) -> None:
        loop = asyncio.get_running_loop()
        source = self._source
        rate = redrive.rate_per_s
        start = loop.time()
        empty_waits = 0
        while redrive.moved < redrive.total:
            self._check_source()
            if self._broker.over_high_water:  # as a publisher would be held back
                await asyncio.sleep(FULL_WAIT)
                continue
            room = min(redrive.total - redrive.moved, BATCH)
            if rate is not None:
                due = int((loop.time() - start) * rate) + 1 - redrive.moved
                if due <= 0:
                    await asyncio.sleep(start + redrive.moved / rate - loop.time())
                    continue
                room = min(room, due)
            taken = [message for message, _ in source.take(room)]
            if not taken:
                if not source.statistics().depth or empty_waits >= MAX_EMPTY_WAITS:
                    return  # the rest left the queue meanwhile
                empty_waits += 1
                await wait_ready(source, loop.time() + READ_WAIT)
                continue
            empty_waits = 0
            if not await self._move(taken):
                return

    def _check_source(self) -> None:
        if self._source.deleted:
            raise BrokerError(
                ErrorCode.DESTINATION_DELETED, f"{self._source.address} was deleted during the run"
            )

    async def _move(self, taken: list[Message]) -> bool:
        """Publish ``taken`` to their targets, wait until the copies are durable, then
        settle: moved ones leave the dead-letter queue, the rest go back to it.

        Returns:
            whether to go on (not too many that arrived after the start were met).

        Raises:
            BuzonError: why a message could not be moved (it and the rest went back).
        """
        source = self._source
        boundary = self._boundary
        later = [m for m in taken if boundary is not None and m.seq > boundary]
        # one that arrived after the start ends the run, unless older messages of lower
        # priorities still wait behind it (a queue hands out its highest priority first)
        done = any(not source.waiting_below(m.priority) for m in later)
        if later:
            self._aside.extend(later)
            taken = [m for m in taken if boundary is None or m.seq <= boundary]
        sent: list[tuple[Message, Queue, Ticket | None]] = []
        failure: BuzonError | None = None
        cancelled = False
        try:
            for message in taken:
                target, grants = await self._target(self._to or origin_of(message))
                self._check_source()
                headers, options = split_publish(redriven_headers(message.headers))
                ticket = self._broker.publish(
                    self._principal, target.address, headers, message.body, grants, options
                ).ticket
                sent.append((message, target, ticket))
        except BuzonError as exc:
            failure = _stopped_at(taken[len(sent)], source, exc)
        except asyncio.CancelledError:
            cancelled = True
        finally:
            unsent = taken[len(sent) :]
            if unsent:
                source.return_taken(unsent)
        await self._settle(sent, cancelled=cancelled)
        if failure is not None:
            raise failure
        return not done and len(self._aside) < MAX_ASIDE

    async def _settle(
        self, sent: Sequence[tuple[Message, Queue, Ticket | None]], *, cancelled: bool
    ) -> None:
        """Wait for the copies' writes, then ack the originals of those durable in a live
        target and return the others. A cancel meanwhile still settles (within
        :data:`SETTLE_WAIT`), then ends the run.

        Raises:
            BrokerError: a copy was not written, or its target was deleted meanwhile.
            asyncio.CancelledError: the run was cancelled.
        """
        waiting = asyncio.get_running_loop().create_task(
            _outcomes([ticket for _, _, ticket in sent])
        )
        try:
            outcomes = await asyncio.shield(waiting)
        except asyncio.CancelledError:
            cancelled = True
            try:
                async with asyncio.timeout(SETTLE_WAIT):
                    outcomes = await waiting
            except TimeoutError:
                outcomes = [False] * len(sent)
        source = self._source
        done: list[Message] = []
        back: list[Message] = []
        lost: tuple[Message, Queue] | None = None
        for (message, target, _), ok in zip(sent, outcomes, strict=True):
            if ok and not target.deleted:
                done.append(message)
            else:
                back.append(message)
                lost = lost or (message, target)
        if back:
            source.return_taken(back)
        if done and not source.deleted:
            source.ack_taken(done)
        elif done:
            source.return_taken(done)  # dropped with the queue; the copies are moved
        self._moved(len(done))
        if cancelled:
            raise asyncio.CancelledError
        self._check_source()
        if lost is not None:
            message, target = lost
            why = "was deleted during the run" if target.deleted else "could not store it"
            raise BrokerError(
                ErrorCode.DESTINATION_DELETED if target.deleted else ErrorCode.STORAGE_UNAVAILABLE,
                f"message {message.id}: {target.address} {why}; it stays in {source.address}",
            )


async def _outcomes(tickets: Sequence[Ticket | None]) -> list[bool]:
    """Whether each write became durable (None: nothing to write)."""
    outcomes = []
    for ticket in tickets:
        if ticket is not None:
            with contextlib.suppress(Exception):
                await settled(ticket)
        outcomes.append(ticket is None or (ticket.done and ticket.error is None))
    return outcomes


def _stopped_at(message: Message, source: Queue, exc: BuzonError) -> BuzonError:
    """The error a run ends with when ``message`` cannot be moved."""
    why = exc.detail or exc.code.message
    return BrokerError(exc.code, f"message {message.id}: {why}; it stays in {source.address}")
