"""The Store contract: what the rest of buzon may ask of persistence, and what it promises.

Every method is a coroutine so that implementations may do real I/O (SQLite in a worker
thread, PostgreSQL over the network) without changing their callers. Each call is atomic:
it fully happens or raises and changes nothing. "Returns once stored" means a later call
on the same store sees the change; how durable that is depends on the implementation and
is stated in its own module.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from buzon.durations import Durations
from buzon.store.records import (
    BindingRecord,
    DestinationKind,
    DestinationRecord,
    DurableSubscriptionRecord,
    IdempotencyKey,
    StoredBacklog,
    StoredMessage,
    TokenRecord,
    UserRecord,
)
from buzon.store.tickets import Ticket

MessageKey = tuple[str, int]
"""``(queue_id, seq)``: what names one stored message."""


def head_of(messages: list[StoredMessage], limit: int, max_bytes: int) -> list[StoredMessage]:
    """The first of ``messages``: at most ``limit`` and, past the first, ``max_bytes`` of
    bodies (one message is always taken, however large, so a page is never empty)."""
    taken: list[StoredMessage] = []
    size = 0
    for message in messages[:limit]:
        size += len(message.body)
        if taken and size > max_bytes:
            break
        taken.append(message)
    return taken


class MessageLog(Protocol):
    """The part of the store the engine writes messages through, without awaiting."""

    def submit(
        self,
        appends: Sequence[StoredMessage] = (),
        removals: Sequence[MessageKey] = (),
        redelivered: Sequence[MessageKey] = (),
        schedules: Sequence[tuple[MessageKey, float]] = (),
        keys: Sequence[IdempotencyKey] = (),
    ) -> Ticket:
        """Queue message writes; the ticket resolves once they are durable.

        Writes submitted earlier resolve earlier (or together). Within one call, appends
        apply before removals. Call it from the event loop; the ticket's callbacks run
        there. A failed write resolves the ticket with STORAGE_UNAVAILABLE and changes
        nothing.

        Args:
            appends: new messages.
            removals: messages to forget (acknowledged, expired, dropped, purged).
            redelivered: messages to mark as delivered before.
            schedules: stored messages returned for a later delivery (a retry with
                back-off): each gets that ``deliver_at`` and is marked delivered before
                (one of a message not stored does nothing; removals win: a message
                removed and scheduled by writes resolved together stays removed).
            keys: idempotency keys of the appended messages, written in the same
                transaction (so a durable message always has its key on disk); a key
                already stored for that queue is replaced. Removing a message keeps its key.
        """
        ...


class PagedLog(MessageLog, Protocol):
    """The store as the home of backlogs larger than memory (see ``broker/paged_backlog``).

    A paged backlog keeps the head of a queue in memory and leaves the rest, its tail, in
    the store. The tail is addressed by seq ranges: ``after < seq <= upto``; scheduled
    messages (``deliver_at`` set) are never part of it, whatever their seq. For a queue
    with messages of several priorities (one paged backlog per priority), it is also
    addressed by ``priority``: given, a call sees only the messages of that priority; None,
    all. Every call is queued behind the writes submitted before it (so it sees them) and
    returns a ticket whose ``result`` is what it read; calls on one store complete in the
    order made.
    """

    def spill(self, messages: Sequence[StoredMessage]) -> Ticket:
        """Keep transient messages that do not fit in a backlog's window until they are
        read back (they are never kept across a restart; never scheduled ones: those stay
        in memory, and a store need not keep their ``deliver_at``)."""
        ...

    def read_page(
        self,
        queue_id: str,
        after: int,
        upto: int,
        limit: int,
        max_bytes: int,
        *,
        priority: int | None = None,
    ) -> Ticket:
        """Read the oldest stored messages of a range, persistent and spilled alike.

        At most ``limit`` messages and, past the first, ``max_bytes`` of bodies. Spilled
        messages read are forgotten by the store (they now live in memory only). The
        result is a :class:`~buzon.store.records.Page`.
        """
        ...

    def count_tail(
        self, queue_id: str, after: int, upto: int, limit: int, *, priority: int | None = None
    ) -> Ticket:
        """Count up to ``limit`` stored messages of a range, oldest first; the result is a
        :class:`~buzon.store.records.TailCount` (``last_seq`` is ``after`` when none)."""
        ...

    def expire_tail(
        self,
        queue_id: str,
        after: int,
        upto: int,
        now: float,
        limit: int,
        *,
        priority: int | None = None,
    ) -> Ticket:
        """Forget up to ``limit`` messages of a range whose ``expires_at <= now`` (found by
        an index, never a scan of the range); the result is the list of them (oldest first), and the
        earliest ``expires_at`` left in the range (or None), as a tuple."""
        ...

    def purge_tail(
        self,
        queue_id: str,
        after: int,
        upto: int,
        keep: Sequence[int],
        *,
        priority: int | None = None,
    ) -> Ticket:
        """Forget every message of a range but those whose seq is in ``keep``."""
        ...

    def read_scheduled(self, queue_id: str, after: tuple[float, int] | None, limit: int) -> Ticket:
        """The first ``limit`` scheduled messages of a queue (``deliver_at`` set) whose
        ``(deliver_at, seq)`` comes after ``after`` (all, when None), in that order (found
        by an index); the result is the list of them."""
        ...

    def purge_scheduled(self, queue_id: str, after: tuple[float, int] | None) -> Ticket:
        """Forget the scheduled messages of a queue whose ``(deliver_at, seq)`` comes after
        ``after`` (all, when None)."""
        ...


class ClaimLog(PagedLog, Protocol):
    """The store as the home of queues shared by the nodes of a cluster (see
    ``broker/claimed_backlog``).

    A stored message is either claimed by one node (for its consumers) or unclaimed (any
    node may claim it). ``submit`` writes a message claimed by this node when its
    ``claimed`` is set, unclaimed otherwise; ``spill`` writes a transient one unclaimed.
    Calls complete in the order made, after the writes submitted before them.

    Scheduled messages (``deliver_at`` set) are written claimed by the node that holds
    them until their time; the calls below about unclaimed messages leave them out, but
    :meth:`claim_scheduled`, and ``read_scheduled`` and ``purge_scheduled`` concern only
    the ones this node holds. A node that dies or leaves lets go of what it claimed: the
    scheduled messages whose time has come become ready (``deliver_at`` cleared), the
    others keep their ``deliver_at`` for the node that claims them next.
    """

    def claim(self, queue_id: str, limit: int, max_bytes: int) -> Ticket:
        """Claim the next unclaimed messages of a queue, highest priority first and oldest
        first within a priority (at most ``limit``, and past the first ``max_bytes`` of
        bodies), never one another node claimed; the result is a
        :class:`~buzon.store.records.Page` in that order (``exhausted``: none were left)."""
        ...

    def claim_scheduled(self, queue_id: str, limit: int) -> Ticket:
        """Claim up to ``limit`` scheduled messages of a queue that no node holds, earliest
        ``deliver_at`` first, never one another node claimed; the result is a
        :class:`~buzon.store.records.Page` of them by seq, ``deliver_at`` kept
        (``exhausted``: none were left)."""
        ...

    def release(self, keys: Sequence[tuple[str, int, bool, int]]) -> Ticket:
        """Give claimed messages back to every node: ``(queue_id, seq, redelivered,
        deliveries)`` (how often each was delivered, for the next node to count on). They
        are ready: a ``deliver_at`` kept from a schedule whose time came is cleared."""
        ...

    def expire_unclaimed(self, queue_id: str, now: float, limit: int) -> Ticket:
        """Forget up to ``limit`` unclaimed messages of a queue with ``expires_at <= now``;
        the result is them (oldest first) and the earliest ``expires_at`` left unclaimed
        (or None), as a tuple."""
        ...

    def purge_unclaimed(self, queue_id: str) -> Ticket:
        """Forget every unclaimed message of a queue; the result is how many."""
        ...

    def trim_unclaimed(self, queue_id: str, keep: int) -> Ticket:
        """Forget the oldest unclaimed messages of a queue until at most ``keep`` of its
        ready messages are stored (claimed ones count, and stay); trims of one queue run one
        at a time across the nodes. The result is the forgotten messages, oldest first."""
        ...

    def move(self, old_queue_id: str, new_queue_id: str) -> Ticket:
        """Give a queue's stored messages to another queue id (two nodes created one
        destination at once; the one stored first keeps its id, the other adopts it)."""
        ...


class Store(PagedLog, Protocol):
    """Persistence for users, tokens, destinations, durable subscriptions and messages.

    Attributes:
        durable: whether what it keeps survives the process (a broker does not log
            messages to a store that does not).
        opened_cleanly: after :meth:`open`, whether the previous run closed the store (a
            crash leaves it False: recovered messages may have been delivered).
    """

    durable: bool
    opened_cleanly: bool

    @property
    def commit_durations(self) -> Durations | None:
        """How long its transactions took to become durable (for metrics); None for a
        store that commits nothing."""

    async def open(self) -> None:
        """Prepare the store for use (create or check its schema)."""

    async def close(self) -> None:
        """Release what the store holds; no call may follow."""

    def size_on_disk(self) -> int | None:
        """Bytes the store's files take on disk now, or None for a store without files
        (a few ``stat`` calls: cheap enough for the event loop)."""

    # -- users ---------------------------------------------------------------------------

    async def add_user(self, user: UserRecord) -> None:
        """Store a new user.

        Raises:
            StoreError: ``USERNAME_TAKEN`` if a user with that name exists.
        """

    async def user_by_name(self, name: str) -> UserRecord | None:
        """The user called ``name``, or None."""

    async def user_by_id(self, user_id: str) -> UserRecord | None:
        """The user with id ``user_id``, or None."""

    async def users(self) -> list[UserRecord]:
        """Every user, sorted by name."""

    async def update_user(self, user: UserRecord) -> None:
        """Replace the stored user with the same id (name changes are not allowed).

        Raises:
            StoreError: ``USER_NOT_FOUND``.
        """

    async def delete_user(self, user_id: str) -> None:
        """Remove a user and every token of theirs (their destinations stay).

        Raises:
            StoreError: ``USER_NOT_FOUND``.
        """

    # -- tokens --------------------------------------------------------------------------

    async def add_token(self, token: TokenRecord) -> None:
        """Store a new token of an existing user."""

    async def token(self, token_hash: str) -> TokenRecord | None:
        """The token with that hash, or None (expired ones included: callers check)."""

    async def delete_token(self, token_hash: str) -> None:
        """Forget a token; forgetting an unknown one is not an error."""

    async def delete_expired_tokens(self, now: float) -> int:
        """Forget tokens with ``expires_at <= now``; return how many."""

    # -- destinations --------------------------------------------------------------------

    async def add_destination(self, record: DestinationRecord) -> None:
        """Store a new queue or channel.

        Raises:
            StoreError: ``DESTINATION_EXISTS`` if one of that kind and name exists.
        """

    async def destination(self, kind: DestinationKind, name: str) -> DestinationRecord | None:
        """The destination of that kind and name, or None."""

    async def destinations(self) -> list[DestinationRecord]:
        """Every queue and channel, sorted by kind then name."""

    async def update_destination(self, record: DestinationRecord) -> None:
        """Replace the stored destination with the same id (its access key or dead-letter
        grant changed; kind, name and owner never do); an unknown one is not an error."""

    async def delete_destination(self, destination_id: str) -> None:
        """Remove a destination record, its messages, its idempotency keys and the bindings
        it is either side of; an unknown one is not an error."""

    # -- bindings ------------------------------------------------------------------------

    async def add_binding(self, record: BindingRecord) -> None:
        """Store a queue binding, replacing the one with the same channel, queue and key
        (binding again records new grants)."""

    async def bindings(self) -> list[BindingRecord]:
        """Every queue binding, by channel id, queue id and key."""

    async def delete_binding(self, channel_id: str, queue_id: str, key: str) -> None:
        """Remove a queue binding; an unknown one is not an error."""

    # -- durable subscriptions -----------------------------------------------------------

    async def add_durable_subscription(self, record: DurableSubscriptionRecord) -> None:
        """Store a new durable subscription.

        Raises:
            StoreError: DESTINATION_EXISTS if its owner has one of that name on that channel.
        """

    async def durable_subscriptions(self) -> list[DurableSubscriptionRecord]:
        """Every durable subscription, by channel, owner and name."""

    async def delete_durable_subscription(self, subscription_id: str) -> None:
        """Remove a durable subscription and its backlog; an unknown one is not an error."""

    # -- messages ------------------------------------------------------------------------

    async def messages(self) -> list[StoredMessage]:
        """Every stored message (after all submitted writes), by queue id, then seq."""

    async def backlogs(self, limit: int, max_bytes: int) -> list[StoredBacklog]:
        """For every queue with stored messages and every priority its ready messages
        have, the head of those: at most ``limit`` messages and, past the first,
        ``max_bytes`` of bodies; the first one of a queue also carries its scheduled
        messages, soonest first, bounded the same way, with their count and bytes (a queue
        with only scheduled messages gets one of the default priority for them). Costs the
        heads, not the backlogs."""

    # -- idempotency keys ----------------------------------------------------------------

    async def idempotency_keys(self, now: float) -> list[IdempotencyKey]:
        """Every stored key with ``expires_at > now`` (after all submitted writes), by
        queue id then ``expires_at``."""

    async def prune_idempotency_keys(self, now: float, limit: int) -> int:
        """Forget up to ``limit`` keys with ``expires_at <= now``, soonest first (found by
        an index, so that a busy queue's expired keys go in short transactions); return
        how many."""

    def free_space(self) -> tuple[int, int] | None:
        """Free and total bytes of the volume holding the store's files (a ``statvfs``),
        or None for a store without files (or when the system cannot tell)."""
