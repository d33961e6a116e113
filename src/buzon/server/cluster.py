"""This server as one node of a cluster: several nodes sharing one PostgreSQL database.

What the nodes share lives in the database (``store/postgres``); what each node does to
stay in step with the others is here:

- it joins as a new *run* (a row in ``nodes``) with a slot that numbers its messages apart
  from everyone else's, and says it is alive every ``heartbeat`` seconds;
- it listens for the others' notifications: messages any node may claim (its queues with
  demand claim them), channel messages (delivered to its own subscribers), and changes to
  users, tokens, destinations and durable subscriptions (applied within a second);
- every second it counts the unclaimed messages per queue: queue depths across the
  cluster, and a safety net for a notification lost while the listening connection was
  being made again;
- it declares dead the nodes silent longer than ``--node-timeout`` and hands their claimed
  messages back to every node, marked redelivered (only after it has itself been
  reachable that long: a database that was away for everyone must not make every node
  look dead to the first one back);
- at a clean stop it gives back what it claimed.

A database that cannot be reached stops none of this for good: each job retries on its
next turn, and the listening connection is made again with back-off.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import asyncpg

from buzon.broker.backlog import from_store
from buzon.broker.channel import Channel
from buzon.broker.journal import stored
from buzon.broker.message import ACCEPT, RELEASE, Disposition, Message, Outcome
from buzon.errors import BrokerError, BuzonError, ErrorCode
from buzon.server.cluster_view import node_name
from buzon.server.context import ServerContext
from buzon.server.periodic import every
from buzon.store.postgres import (
    CATALOG_CHANNEL,
    FEED_CHANNEL,
    LEASES_CHANNEL,
    MESSAGES_CHANNEL,
    PING_CHANNEL,
    SLOTS,
    PostgresStore,
)

log = logging.getLogger("buzon.server")

FEED_PAGE = 1_000
"""Channel feed rows read per query."""
FEED_END = 2**62
"""An id above any feed row's (the open end of a catch-up range)."""
FEED_KEEP = 60.0
"""Seconds feed rows are kept (every live node reads them within milliseconds)."""
SETTLE_WAIT = 5.0
"""Seconds a node waits for another to answer a forwarded settlement of pull leases."""
MAX_RECEIPT = 64
"""Longest receipt a node issues (a run id, a dot, 22 characters): longer ones are unknown."""
COUNT_PERIOD = 1.0
"""Seconds between counts of unclaimed messages (longer when a count is slow)."""


def first_seq(slot: int, earlier: int) -> int:
    """Where a run in ``slot`` starts numbering: above the clock in microseconds (so
    nodes' seqs interleave roughly in time) and above the highest seq an earlier run in
    that slot reached, with the slot as its residue."""
    floor = max(int(time.time() * 1_000_000) * SLOTS, earlier + SLOTS)
    return floor - floor % SLOTS + slot


class ClusterNode:
    """This process's membership of its cluster.

    Args:
        ctx: the server's shared state.
        store: the shared store.
        revalidate: ends the sessions whose login no longer holds (a user or a token
            changed on another node).
    """

    def __init__(
        self,
        ctx: ServerContext,
        store: PostgresStore,
        revalidate: Callable[[], Coroutine[Any, Any, None]],
    ) -> None:
        self._ctx = ctx
        self._store = store
        self._revalidate = revalidate
        self._timeout = ctx.settings.node_timeout
        self._heartbeat = max(0.5, self._timeout / 5)
        self._listener: asyncpg.Connection | None = None
        self._feed_after = 0  # the newest feed row read (where a catch-up starts)
        # (origin, first id, last id) announced and not read yet; origin None: any other
        self._feed_ranges: collections.deque[tuple[int | None, int, int]] = collections.deque()
        self._feed_reading = False
        self._feed_seen: dict[int, int] = {}  # per node run: the newest of its rows delivered
        self._syncing = False
        self._sync_again = False
        self._rechecking = False
        self._recheck_again = False
        self._healthy_since: float | None = None
        self._heard = time.monotonic()  # when the listener last heard anything
        self._tasks: list[asyncio.Task[None]] = []
        self._asked: dict[str, asyncio.Future[tuple[str, str] | None]] = {}
        self._runs: set[int] = set()  # the run ids this process joined as
        self.name = ""

    async def join(self) -> None:
        """Register this run, number messages in its slot, start listening and the jobs.

        Raises:
            StoreError: STORAGE_UNAVAILABLE.
        """
        ctx = self._ctx
        self.name = node_name(ctx)
        node_id, slot, earlier = await self._store.register_node(self.name, ctx.listeners)
        ctx.broker.number_messages(first_seq(slot, earlier), SLOTS)
        ctx.broker.leases.prefix = f"{node_id}."
        self._runs.add(node_id)
        ctx.broker.feed_channels(self._feed)
        self._feed_after = await self._store.feed_position()
        self._listener = await self._store.listen(self._notified)
        self._healthy_since = time.monotonic()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(every(self._heartbeat, self._beat)),
            loop.create_task(every(self._heartbeat, self._reap)),
            loop.create_task(self._counting()),
            loop.create_task(every(FEED_KEEP / 4, self._trim)),
        ]
        log.info("joined the cluster as node %s (run %d, slot %d)", self.name, node_id, slot)

    async def leave(self) -> None:
        """Stop the jobs and give back what this node claimed (a clean stop); nothing if
        it never joined."""
        if not self._runs:
            return
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close(timeout=2)
            self._listener = None
        try:
            await self._store.leave()
        except BuzonError as exc:
            log.warning("could not give back this node's claims (the others will): %s", exc)

    # -- notifications --------------------------------------------------------------------

    def _notified(self, channel: str, payload: str) -> None:
        self._heard = time.monotonic()
        broker = self._ctx.broker
        if channel == MESSAGES_CHANNEL:
            broker.messages_available(None if payload == "*" else set(payload.split(",")))
        elif channel == FEED_CHANNEL:
            self._feed_notified(payload)
        elif channel == CATALOG_CHANNEL:
            kind, _, key = payload.partition(":")
            if kind == "destinations":
                self._ctx.spawn(self._sync())
            elif kind == "token":
                # logged out on another node: so are its connections here
                broker.close_sessions_with_token(
                    key, ErrorCode.PERMISSIONS_CHANGED, "the token was revoked (logged out)"
                )
            else:
                self._ctx.spawn(self._recheck_logins())
        elif channel == LEASES_CHANNEL:
            self._leases_message(payload)

    async def peek_unclaimed(self, queue_id: str, limit: int) -> list[tuple[Message, bool]]:
        """The oldest messages of a queue that no node holds: ``(message, redelivered)``."""
        found = await self._store.peek_unclaimed(queue_id, limit, time.time())
        return [(from_store(item), item.redelivered) for item in found]

    # -- pull leases held by other nodes ----------------------------------------------------

    def holder_node(self, receipt: str) -> int | None:
        """The run id of the node holding a pull lease, when it is another node's."""
        node, dot, _ = receipt.partition(".")
        if not dot or not node.isdigit() or int(node) in self._runs:
            return None  # this process's, leased by this run or one before a rejoin
        return int(node)

    async def settle_remote(
        self,
        node: int,
        holder: str,
        queue: str,
        receipts: Sequence[str],
        outcome: Outcome,
    ) -> None:
        """Ask node ``node`` to settle the pull leases it holds for ``holder`` as
        ``outcome`` says; all or none.

        Raises:
            BrokerError: UNKNOWN_RECEIPT (also for a node that is gone: its leased messages
                went back to the queue), DESTINATION_NOT_FOUND.
            StoreError: STORAGE_UNAVAILABLE when the node did not answer in time.
        """
        if any(len(receipt) > MAX_RECEIPT for receipt in receipts):
            raise BrokerError(ErrorCode.UNKNOWN_RECEIPT, "a receipt is not one buzon issued")
        ask = secrets.token_hex(8)
        request = {
            "to": node,
            "from": self._store.node_id,
            "ask": ask,
            "holder": holder,
            "queue": queue,
            "receipts": list(receipts),
            # the wire keeps the form of an ack (requeue false) or nack with a refusal
            "requeue": outcome.disposition is not Disposition.ACCEPT,
            "refusal": [
                outcome.disposition is not Disposition.REJECT,
                outcome.delay_ms,
                outcome.error,
            ],
        }
        answer: asyncio.Future[tuple[str, str] | None] = asyncio.get_running_loop().create_future()
        self._asked[ask] = answer
        try:
            await self._store.notify(LEASES_CHANNEL, json.dumps(request))
            async with asyncio.timeout(SETTLE_WAIT):
                refused = await answer
        except TimeoutError:
            raise BrokerError(
                ErrorCode.UNKNOWN_RECEIPT,
                f"receipt {receipts[0][:40]!r}: the node holding it did not answer",
            ) from None
        finally:
            self._asked.pop(ask, None)
        if refused is not None:
            code = ErrorCode.__members__.get(refused[0], ErrorCode.UNKNOWN_RECEIPT)
            raise BrokerError(code, refused[1])

    def _leases_message(self, payload: str) -> None:
        try:
            message = json.loads(payload)
        except ValueError:
            return
        if not isinstance(message, dict) or message.get("to") not in self._runs:
            return
        if "answer" in message:
            answer = self._asked.get(str(message.get("ask")))
            if answer is not None and not answer.done():
                refused = message["answer"]
                answer.set_result(None if refused is None else (refused[0], refused[1]))
            return
        receipts = message.get("receipts")
        if not isinstance(receipts, list) or not all(isinstance(r, str) for r in receipts):
            return  # not a request a node sent: nothing to answer
        refused_by: tuple[str, str] | None = None
        try:
            self._ctx.broker.settle_held(
                str(message["holder"]),
                str(message["queue"]),
                receipts,
                _outcome(bool(message["requeue"]), message.get("refusal")),
            )
        except BrokerError as exc:
            refused_by = (exc.code.name, exc.detail)
        except KeyError:
            return
        reply = {"to": message.get("from"), "ask": message.get("ask"), "answer": refused_by}
        self._ctx.spawn(self._reply(json.dumps(reply)))

    async def _reply(self, payload: str) -> None:
        with contextlib.suppress(BuzonError):
            await self._store.notify(LEASES_CHANNEL, payload)

    async def _relisten(self) -> None:
        """Make the listening connection again if it broke, or went deaf (a cut that
        closed nothing: the ping this node sends itself each heartbeat stopped coming
        back), then catch up on what may have been missed meanwhile (in tasks of their
        own: the heartbeat must not wait for them)."""
        listener = self._listener
        deaf = time.monotonic() - self._heard > 3 * self._heartbeat
        if listener is not None and not listener.is_closed() and not deaf:
            await self._store.notify(PING_CHANNEL, str(self._store.node_id))
            return
        if listener is not None:
            listener.terminate()
        self._listener = await self._store.listen(self._notified)
        self._heard = time.monotonic()
        log.info("listening to the cluster again")
        self._ctx.broker.messages_available(None)
        self._ctx.spawn(self._sync())
        self._ctx.spawn(self._recheck_logins())
        self._catch_up()
        self._ctx.spawn(self._read_feed())

    # -- the channel feed -----------------------------------------------------------------

    def _feed(self, channel: Channel, message: Message) -> None:
        """A channel message published here goes to the other nodes too."""
        self._store.feed(channel.record.id, stored(channel.record.id, message))

    def _feed_notified(self, payload: str) -> None:
        """Another node committed feed rows: ``origin:first:last``."""
        origin, _, span = payload.partition(":")
        first, _, last = span.partition(":")
        if not (origin.isdigit() and first.isdigit() and last.isdigit()):
            return
        if int(origin) != self._store.node_id:
            self._feed_ranges.append((int(origin), int(first), int(last)))
            self._ctx.spawn(self._read_feed())

    def _catch_up(self) -> None:
        """After the listening connection was made again: every row since the last read
        (a row of a commit that came late in that gap may be missed)."""
        self._feed_ranges.append((None, self._feed_after + 1, FEED_END))

    async def _read_feed(self) -> None:
        """Deliver the other nodes' channel messages to this node's subscribers, range by
        range in the order their commits were announced (one reader at a time)."""
        if self._feed_reading:
            return
        self._feed_reading = True
        try:
            while self._feed_ranges:
                origin, first, last = self._feed_ranges.popleft()
                while True:
                    rows = await self._store.read_feed(origin, first, last, FEED_PAGE)
                    for row_id, source, channel_id, item in rows:
                        self._feed_after = max(self._feed_after, row_id)
                        # a node's rows commit in id order: one at or below the last read
                        # of that node was delivered (by a catch-up, say)
                        if row_id > self._feed_seen.get(source, 0):
                            self._feed_seen[source] = row_id
                            self._ctx.broker.deliver_remote(channel_id, from_store(item))
                    if len(rows) < FEED_PAGE:
                        break
                    first = rows[-1][0] + 1
        except BuzonError as exc:
            log.warning("reading the channel feed failed: %s", exc)
        finally:
            self._feed_reading = False

    async def _trim(self) -> None:
        await self._store.trim_feed(FEED_KEEP)

    # -- the catalog ------------------------------------------------------------------------

    async def _sync(self) -> None:
        """Apply the stored destinations and durable subscriptions (another node changed
        them); runs one at a time, again if asked meanwhile."""
        if self._syncing:
            self._sync_again = True
            return
        self._syncing = True
        try:
            while True:
                self._sync_again = False
                await self._ctx.resources.sync()
                if not self._sync_again:
                    return
        except BuzonError as exc:
            log.warning("reading the cluster's destinations failed: %s", exc)
        finally:
            self._syncing = False

    async def _recheck_logins(self) -> None:
        """A user changed on another node: check the logins of this node's sessions once,
        however many changes were announced while a check ran (it reads every user)."""
        if self._rechecking:
            self._recheck_again = True
            return
        self._rechecking = True
        try:
            while True:
                self._recheck_again = False
                await self._revalidate()
                if not self._recheck_again:
                    return
        except BuzonError as exc:
            log.warning("checking logins against the cluster's users failed: %s", exc.detail)
        finally:
            self._rechecking = False

    # -- liveness ---------------------------------------------------------------------------

    async def _beat(self) -> None:
        ctx = self._ctx
        try:
            await self._store.heartbeat(len(ctx.connections), ctx.broker.last_seq)
        except BuzonError as exc:
            if self._healthy_since is not None:
                log.warning("cluster heartbeat failed: %s", exc.detail)
            self._healthy_since = None
            if "declared this node dead" in exc.detail:
                await self._rejoin()
            return
        if self._healthy_since is None:
            self._healthy_since = time.monotonic()
            log.info("cluster heartbeat resumed")
        await self._relisten()

    async def _rejoin(self) -> None:
        """The others declared this node dead (it was silent too long) and gave away its
        claims: join again as a new run. Messages it still holds may be delivered twice."""
        node_id, slot, earlier = await self._store.register_node(self.name, self._ctx.listeners)
        self._ctx.broker.number_messages(first_seq(slot, earlier), SLOTS)
        self._ctx.broker.leases.prefix = f"{node_id}."
        self._runs.add(node_id)
        self._healthy_since = time.monotonic()
        log.warning(
            "rejoined the cluster as run %d (slot %d) after being declared dead", node_id, slot
        )

    async def _reap(self) -> None:
        since = self._healthy_since
        if since is None or time.monotonic() - since < self._timeout:
            return
        dead = await self._store.reap(self._timeout)
        if dead:
            log.warning(
                "nodes %s were silent for %.0f s: their unacked messages go to other consumers",
                dead,
                self._timeout,
            )

    async def _counting(self) -> None:
        """Count unclaimed messages per queue every second (less often when slow), and
        adopt scheduled messages no node holds."""
        while True:
            started = time.monotonic()
            try:
                counts = await self._store.unclaimed()
                self._ctx.broker.refresh_unclaimed(counts)
                unheld = await self._store.unheld_scheduled()
                if unheld:
                    self._ctx.broker.adopt_scheduled(unheld)
            except BuzonError:
                pass  # the heartbeat reports the database's absence
            took = time.monotonic() - started
            await asyncio.sleep(max(COUNT_PERIOD, 20 * took))


def _outcome(settled_back: bool, forwarded: object) -> Outcome:
    """The outcome a forwarded settlement asks: an ack (``requeue`` false), or a nack with
    the refusal it carries (a plain one if it carries none readable)."""
    if not settled_back:
        return ACCEPT
    if not isinstance(forwarded, list) or len(forwarded) != 3:
        return RELEASE
    requeue, delay, error = forwarded
    if (
        not isinstance(requeue, bool)
        or not (delay is None or (isinstance(delay, int) and delay >= 0))
        or not (error is None or isinstance(error, str))
    ):
        return RELEASE
    return Outcome(Disposition.RELEASE if requeue else Disposition.REJECT, delay, error)
