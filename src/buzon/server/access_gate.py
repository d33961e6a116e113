"""The access gate every front end passes before publishing to or consuming from a
protected destination: needs a key → check it → grant.

Whether a key is needed is the rule of ``auth.access`` (:func:`decide`): anyone but the
owner and admins, for a destination with an access key, unless this holder was granted it
already. The check (:meth:`Resources.check_key`) is argon2id off the event loop, constant
time, limited per address, and refused if the key changed while it ran. A passed check is
remembered as a grant by the holder (:class:`Grants`): a STOMP session for its connection,
an HTTP bearer token for its login, a single request with Basic authentication; the engine
then lets that holder through without a key. Without a key the engine itself answers
ACCESS_KEY_REQUIRED.
"""

from __future__ import annotations

from typing import Protocol

from buzon.auth import Action, Decision, Principal, decide
from buzon.server.resources import Resources
from buzon.store import DestinationRecord


class Grants(Protocol):
    """Where one holder (a session, a token) remembers the destinations it was granted."""

    def granted(self, destination_id: str) -> bool:
        """Whether the holder passed the gate of that destination already."""

    def grant(self, destination_id: str) -> None:
        """Remember that the holder passed the gate of that destination."""


def needs_key(
    principal: Principal, action: Action, record: DestinationRecord, grants: Grants
) -> bool:
    """Whether ``principal`` must present the access key of ``record`` for ``action``: it
    is protected against them and ``grants`` holds no grant for it."""
    return decide(principal, action, record) is Decision.NEED_KEY and not grants.granted(record.id)


async def admit(
    resources: Resources,
    principal: Principal,
    record: DestinationRecord,
    key: str,
    address: str,
    grants: Grants,
) -> None:
    """Check ``key`` for ``record`` (presented by ``principal`` from ``address``) and grant
    it to the holder of ``grants``.

    Raises:
        AccessDenied: ACCESS_KEY_WRONG (wrong, or changed while it was checked).
        AuthenticationFailed: TOO_MANY_ATTEMPTS.
    """
    await resources.check_key(principal, record, key, address)
    grants.grant(record.id)
