"""Who may do what to a queue or channel: one pure decision, named by an Action.

The rules (DESIGN.md): the owner and admins may do everything to a destination; anyone
logged in may list and inspect, and publish or consume unless an access key protects it,
in which case they must present the key; nobody else deletes it. Presented keys are
checked by the callers (they cache the answer per connection), never here.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field

from buzon.store.records import DestinationRecord, Role


class Action(enum.Enum):
    """What is being done to a destination."""

    INSPECT = "inspect"
    PUBLISH = "publish"
    CONSUME = "consume"
    DELETE = "delete"


class Decision(enum.Enum):
    """The answer of :func:`decide`."""

    ALLOW = "allow"
    NEED_KEY = "need-key"
    """Allowed once the destination's access key was presented and checked."""
    DENY = "deny"


def fingerprint(secret_hash: str) -> str:
    """A short fingerprint of a stored secret's hash (a password's, an access key's).

    What is kept to notice that a secret changed: the hash is salted, so any new secret,
    even the same text set again, gives a new fingerprint."""
    return hashlib.sha256(secret_hash.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is acting: a logged-in user.

    Attributes:
        id: the user's stable id (what ownership refers to).
        name: the login name (for logs and listings).
        role: admin or user.
        credential: a fingerprint of the password hash the user had when they logged in
            (None when not from a login): once the password changes it no longer
            matches, and the connections of that login are closed.
    """

    id: str
    name: str
    role: Role
    credential: str | None = field(default=None, compare=False, repr=False)

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


def decide(principal: Principal, action: Action, record: DestinationRecord) -> Decision:
    """Decide whether ``principal`` may do ``action`` to the destination ``record``."""
    if principal.is_admin or record.owner_id == principal.id:
        return Decision.ALLOW
    if action is Action.DELETE:
        return Decision.DENY
    if action is Action.INSPECT or record.key_hash is None:
        return Decision.ALLOW
    return Decision.NEED_KEY
