"""Plain stored records: what the store keeps, with no behaviour of their own."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Role(enum.StrEnum):
    """What a user may do beyond their own resources."""

    ADMIN = "admin"
    """Manages users and may delete or use any queue or channel without its key."""
    USER = "user"
    """Owns what they create; needs a destination's access key to use someone else's."""


class DestinationKind(enum.StrEnum):
    """The two messaging models, as stored and shown in the API."""

    QUEUE = "queue"
    CHANNEL = "channel"


@dataclass(frozen=True, slots=True)
class UserRecord:
    """One account.

    Attributes:
        id: stable and never reused; ownership refers to it, so a name registered again
            after a deletion does not inherit the old account's queues and channels.
        name: the login name (unique).
        password_hash: argon2id PHC string; the password itself is never stored.
        role: admin or user.
        disabled: a disabled account cannot log in and its connections are closed.
        created_at: Unix time of registration.
    """

    id: str
    name: str
    password_hash: str
    role: Role
    disabled: bool
    created_at: float


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A bearer token, stored by the SHA-256 of its text (the text is shown once, at login).

    Attributes:
        token_hash: hex SHA-256 of the token; tokens carry 256 random bits, so a fast hash
            is enough and lets a request be checked with one lookup.
        user_id: whose token it is.
        created_at: Unix time of the login.
        expires_at: Unix time after which it is refused.
    """

    token_hash: str
    user_id: str
    created_at: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class DestinationRecord:
    """A queue or channel as an owned resource.

    Attributes:
        id: stable and never reused (a destination deleted and created again gets a new
            one, so access granted to the old one does not carry over).
        kind: queue or channel.
        name: unique per kind (``jobs`` is ``/queue/jobs`` or ``/topic/jobs``).
        owner_id: the creator's user id.
        key_hash: argon2id hash of the access key, or None when anyone may use it.
        created_at: Unix time of creation.
    """

    id: str
    kind: DestinationKind
    name: str
    owner_id: str
    key_hash: str | None
    created_at: float
