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
    DestinationKind,
    DestinationRecord,
    DurableSubscriptionRecord,
    StoredMessage,
    TokenRecord,
    UserRecord,
)
from buzon.store.tickets import Ticket

MessageKey = tuple[str, int]
"""``(queue_id, seq)``: what names one stored message."""


class MessageLog(Protocol):
    """The part of the store the engine writes messages through, without awaiting."""

    def submit(
        self,
        appends: Sequence[StoredMessage] = (),
        removals: Sequence[MessageKey] = (),
        redelivered: Sequence[MessageKey] = (),
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
        """
        ...


class Store(MessageLog, Protocol):
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
        """Remove a destination record and its messages; an unknown one is not an error."""

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
