"""Queue bindings as owned resources: bind, unbind, list (behind the HTTP API and CLI).

Who may do what. A binding makes a channel's messages flow into a queue, so making one
needs both rights it exercises: to consume from the channel (public, one's own, an admin,
or its access key) and to publish into the queue (the same, with the queue's key). A right
that needed a key or the admin role is kept in the binding as a grant bound to that
destination's id and key (``broker/policy.feed_grant``), as a dead-letter grant is: when
either key changes later, the binding stops routing (it is listed ``active: false``) until
someone binds it again with the new key, or the key is removed. Its maker, the channel's
owner, the queue's owner or an admin may remove it; deleting either destination removes
its bindings. A binding gives nobody the right to read the queue.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from buzon.auth import Action, Decision, Principal, decide
from buzon.broker import Broker, Channel
from buzon.broker.addresses import address, check_key
from buzon.broker.channel import Binding
from buzon.broker.policy import feed_grant
from buzon.errors import AccessDenied, ErrorCode
from buzon.store import BindingRecord, DestinationKind, DestinationRecord, Store

if TYPE_CHECKING:
    from buzon.server.resources import Resources


@dataclass(frozen=True, slots=True)
class BindingView:
    """What listing a channel's queue bindings shows.

    Attributes:
        channel: the channel's name.
        queue: the bound queue's name.
        key: the binding key.
        owner: who bound it (their user name; None once that user is deleted).
        created_at: Unix time.
        active: it routes now (False: an access key changed since it was made).
    """

    channel: str
    queue: str
    key: str
    owner: str | None
    created_at: float
    active: bool


class Bindings:
    """Queue bindings of the channels of one broker.

    Args:
        store: keeps the bindings.
        broker: the engine, which routes through them.
        resources: finds destinations and checks access keys.
    """

    def __init__(self, store: Store, broker: Broker, resources: Resources) -> None:
        self._store = store
        self._broker = broker
        self._resources = resources

    async def bind(
        self,
        principal: Principal,
        channel: str,
        queue: str,
        key: str,
        *,
        channel_key: str | None = None,
        queue_key: str | None = None,
        client_address: str = "?",
    ) -> BindingView:
        """Bind ``queue`` to ``channel`` with the binding key ``key`` (binding again with
        the same key records the grants anew: after a key changed, say).

        Raises:
            BrokerError: DESTINATION_NOT_FOUND for a missing channel or queue;
                BAD_DESTINATION for a key too long or with control characters.
            AccessDenied: ACCESS_KEY_REQUIRED, ACCESS_KEY_WRONG.
            AuthenticationFailed: TOO_MANY_ATTEMPTS.
        """
        source = self._resources.target(DestinationKind.CHANNEL, channel).record
        target = self._resources.target(DestinationKind.QUEUE, queue).record
        check_key(key, "binding key")
        channel_grant = await self._grant(
            principal, source, Action.CONSUME, channel_key, client_address
        )
        queue_grant = await self._grant(
            principal, target, Action.PUBLISH, queue_key, client_address
        )
        record = BindingRecord(
            source.id, target.id, key, principal.id, time.time(), channel_grant, queue_grant
        )
        binding = self._broker.bind(record)  # raises if either was deleted meanwhile
        await self._store.add_binding(record)
        return self._view(channel, binding, {principal.id: principal.name})

    async def unbind(self, principal: Principal, channel: str, queue: str, key: str) -> None:
        """Remove a binding: its maker, either destination's owner or an admin may.

        Raises:
            BrokerError: DESTINATION_NOT_FOUND; NOT_FOUND when there is no such binding.
            AccessDenied: ACCESS_DENIED.
        """
        source = self._resources.target(DestinationKind.CHANNEL, channel)
        target = self._resources.target(DestinationKind.QUEUE, queue).record
        assert isinstance(source, Channel)
        binding = source.bindings.get((target.id, key))
        if binding is not None and not (
            principal.id == binding.record.owner_id
            or decide(principal, Action.DELETE, source.record) is Decision.ALLOW
            or decide(principal, Action.DELETE, target) is Decision.ALLOW
        ):
            raise AccessDenied(
                ErrorCode.ACCESS_DENIED,
                f"only whoever bound it, the owner of {source.address} or of /queue/{queue},"
                " or an admin may remove this binding",
            )
        removed = self._broker.unbind(channel, queue, key)  # NOT_FOUND when there is none
        await self._store.delete_binding(removed.channel_id, removed.queue_id, removed.key)

    async def list(self, channel: str) -> list[BindingView]:
        """A channel's bindings, by queue name and key.

        Raises:
            BrokerError: DESTINATION_NOT_FOUND.
        """
        self._resources.target(DestinationKind.CHANNEL, channel)
        owners = {user.id: user.name for user in await self._store.users()}
        return [self._view(channel, b, owners) for b in self._broker.bindings(channel)]

    async def sync(self) -> None:
        """Make the engine route as the store says (another node of a cluster bound or
        unbound); bindings of destinations this node does not know are skipped."""
        stored: dict[str, dict[tuple[str, str], BindingRecord]] = {}
        for record in await self._store.bindings():
            stored.setdefault(record.channel_id, {})[record.queue_id, record.key] = record
        for source in self._broker.destinations(DestinationKind.CHANNEL):
            assert isinstance(source, Channel)
            wanted = stored.get(source.record.id, {})
            for queue_id, key in [pair for pair in source.bindings if pair not in wanted]:
                source.unbind(queue_id, key)
            changed = [
                record
                for pair, record in wanted.items()
                if (live := source.bindings.get(pair)) is None or live.record != record
            ]
            self._broker.restore_bindings(changed)

    async def _grant(
        self,
        principal: Principal,
        record: DestinationRecord,
        action: Action,
        key: str | None,
        client_address: str,
    ) -> str | None:
        """The grant a binding keeps of ``principal``'s right to ``action`` ``record``
        (None when the right needs no proof: public, or their own).

        Raises:
            AccessDenied: ACCESS_KEY_REQUIRED; ACCESS_KEY_WRONG.
            AuthenticationFailed: TOO_MANY_ATTEMPTS.
        """
        if record.key_hash is None or record.owner_id == principal.id:
            return None
        if decide(principal, action, record) is not Decision.ALLOW:
            where = address(record.kind, record.name)
            if key is None:
                verb = "consume from" if action is Action.CONSUME else "publish into"
                raise AccessDenied(
                    ErrorCode.ACCESS_KEY_REQUIRED,
                    f"binding needs the right to {verb} {where}: it is protected by an access"
                    " key; give it (channel_access_key or queue_access_key)",
                )
            await self._resources.check_key(principal, record, key, client_address)
        return feed_grant(record)

    def _view(self, channel: str, binding: Binding, owners: dict[str, str]) -> BindingView:
        record = binding.record
        return BindingView(
            channel,
            binding.queue.name,
            record.key,
            owners.get(record.owner_id),
            record.created_at,
            binding.active,
        )
