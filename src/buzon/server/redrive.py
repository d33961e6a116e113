"""Redrive: move a dead-letter queue's messages back to where they came from, or to a
named queue, in the server, at a steady pace.

Strategy. A redrive is an asyncio task that consumes from the dead-letter queue the way
an HTTP puller does (:meth:`Queue.take`, then :meth:`Queue.ack_taken` or
:meth:`Queue.return_taken`) and publishes each message as a new one through the engine's
own publish path (:meth:`Broker.publish`: the same access check, bounds and journal as
any HTTP publish). A message leaves the dead-letter queue only once its copy is durably
in the target, so a crash in between may duplicate a message and never loses one
(at-least-once); anything taken and not moved goes back, in its order.

What it moves: at most ``limit`` of the messages waiting when it starts. On one node
messages are numbered in arrival order, so a message numbered after the start (a dead
letter arriving meanwhile) ends the run, unless older messages of lower priorities still
wait behind it (it is held aside, and goes back when the run ends); on a cluster the count
alone bounds it. Messages
that leave the queue meanwhile (consumed, expired, purged) are not waited for: the run
ends ``done`` with ``moved`` below ``total``.

Pacing: message k (from 0) moves no earlier than ``k / rate_per_s`` seconds after the
start, so there is no burst at the beginning and the average is the rate.

Failing: a message whose target is missing, refuses the caller (access key), is full or
is the dead-letter queue itself stops the run as ``failed`` with an error naming it; that
message and those after it stay in the dead-letter queue, those already moved stay moved.
A cancel (``DELETE``) ends it ``failed``, its error saying who cancelled it.

Redrives live in this node's memory (:class:`Redrives`), under random ids; finished ones
are kept an hour (at most :data:`MAX_FINISHED`), then forgotten.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import Counter, OrderedDict

from buzon.auth import Action, Decision, Principal, decide
from buzon.broker import Broker, Queue
from buzon.errors import AccessDenied, BrokerError, ErrorCode, RequestError
from buzon.server.redrive_mover import Authorize, Mover, Redrive, RedriveState
from buzon.store import DestinationKind

KEEP_FINISHED = 3600.0
"""Seconds a finished redrive stays visible."""

MAX_FINISHED = 1000
"""Finished redrives kept at most (the oldest are forgotten first)."""

MAX_RUNNING = 100
"""Redrives running at once on a node (each is a task; a bound keeps a caller from
starting them without end)."""

ID_BYTES = 16


class Redrives:
    """The redrives of this node: start, look up, cancel.

    Args:
        broker: the engine.
        tasks: where the server keeps the tasks it cancels when it stops.
    """

    def __init__(self, broker: Broker, tasks: set[asyncio.Task[None]]) -> None:
        self._broker = broker
        self._tasks = tasks
        self._all: OrderedDict[str, Redrive] = OrderedDict()
        self._principals: dict[str, Principal] = {}  # who runs each running redrive
        self.redriven: Counter[str] = Counter()
        """Messages moved out of each dead-letter queue, by queue name."""

    async def start(
        self,
        principal: Principal,
        queue: str,
        to: str | None,
        rate_per_s: int | None,
        limit: int | None,
        authorize: Authorize,
        *,
        clustered: bool = False,
    ) -> Redrive:
        """Check what can be checked now, then start moving in the background.

        Checked now: the dead-letter queue exists and ``principal`` owns it or is an admin;
        the target (``to``, or the original destinations of the first waiting messages)
        exists and accepts ``principal``'s publishes. ``clustered``: the store is shared
        by several nodes (messages are not numbered in arrival order across them).

        Raises:
            BrokerError: DESTINATION_NOT_FOUND, BAD_DESTINATION; LIMIT_EXCEEDED when
                :data:`MAX_RUNNING` redrives run.
            AccessDenied: ACCESS_DENIED, ACCESS_KEY_REQUIRED, ACCESS_KEY_WRONG.
            RequestError: ``to`` is the dead-letter queue itself.
        """
        source = self._source(queue)
        if decide(principal, Action.DELETE, source.record) is Decision.DENY:
            raise AccessDenied(
                ErrorCode.ACCESS_DENIED,
                f"only the owner of /queue/{queue} or an admin may redrive it",
            )
        if to == queue:
            raise RequestError(ErrorCode.BAD_REQUEST, "to: a queue cannot be redriven into itself")
        running = sum(r.state is RedriveState.RUNNING for r in self._all.values())
        if running >= MAX_RUNNING:
            raise BrokerError(
                ErrorCode.LIMIT_EXCEEDED,
                f"at most {MAX_RUNNING} redrives run at once; wait for one to end",
            )
        total = source.statistics().depth
        if limit is not None:
            total = min(total, limit)
        boundary = None if clustered else self._broker.last_seq
        mover = Mover(self._broker, principal, source, to, authorize, boundary)
        await mover.check_targets(total)
        self._prune()
        redrive = Redrive(
            id=secrets.token_urlsafe(ID_BYTES),
            queue=queue,
            to=to,
            rate_per_s=rate_per_s,
            limit=limit,
            owner_id=principal.id,
            started_by=principal.name,
            total=total,
        )
        self._all[redrive.id] = redrive
        self._principals[redrive.id] = principal
        task = asyncio.get_running_loop().create_task(mover.run(redrive, self.redriven))
        redrive.task = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda _: self._principals.pop(redrive.id, None))
        return redrive

    def running(self) -> list[tuple[str, Principal]]:
        """The running redrives, by id, with the login each runs as."""
        return list(self._principals.items())

    def stop(self, redrive_id: str, why: str) -> None:
        """End a running redrive because its login no longer backs it (``why``: the
        account was disabled, demoted, its password changed...): it publishes nothing
        more; what it moved stays moved."""
        redrive = self._all.get(redrive_id)
        if redrive is not None and redrive.task is not None and not redrive.task.done():
            redrive.cancelled_by = f"the broker: {why}"
            redrive.task.cancel()

    def stop_of(self, user_id: str, why: str) -> None:
        """End every running redrive of ``user_id`` (see :meth:`stop`)."""
        for redrive_id, principal in self.running():
            if principal.id == user_id:
                self.stop(redrive_id, why)

    def get(self, principal: Principal, redrive_id: str) -> Redrive:
        """A redrive ``principal`` started (any, for an admin).

        Raises:
            RequestError: NOT_FOUND (also for another user's: its id is not theirs to know).
        """
        self._prune()
        redrive = self._all.get(redrive_id)
        if redrive is None or not (principal.is_admin or principal.id == redrive.owner_id):
            raise RequestError(ErrorCode.NOT_FOUND, f"redrive {redrive_id[:40]!r} not found")
        return redrive

    async def cancel(self, principal: Principal, redrive_id: str) -> Redrive:
        """Stop a running redrive (a finished one is left as it is); return it once it
        has stopped: moved messages stay moved, the rest stay in the dead-letter queue.

        Raises:
            RequestError: NOT_FOUND.
        """
        redrive = self.get(principal, redrive_id)
        task = redrive.task
        if redrive.state is RedriveState.RUNNING and task is not None:
            redrive.cancelled_by = principal.name
            task.cancel()
            await asyncio.wait([task])
        return redrive

    def _source(self, queue: str) -> Queue:
        source = self._broker.destination(DestinationKind.QUEUE, queue)
        if not isinstance(source, Queue):
            raise BrokerError(
                ErrorCode.DESTINATION_NOT_FOUND, f"/queue/{queue[:80]} does not exist"
            )
        return source

    def _prune(self) -> None:
        """Forget finished redrives older than :data:`KEEP_FINISHED`, and the oldest
        finished ones past :data:`MAX_FINISHED`."""
        horizon = time.time() - KEEP_FINISHED
        finished = [r for r in self._all.values() if r.finished_at is not None]
        excess = len(finished) - MAX_FINISHED
        for redrive in finished:
            assert redrive.finished_at is not None
            if excess > 0 or redrive.finished_at < horizon:
                del self._all[redrive.id]
                excess -= 1
