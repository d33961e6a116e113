"""Records as database rows and back: the conversions both SQL stores share."""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import Any

from buzon.store.records import (
    ChannelType,
    DestinationKind,
    DestinationRecord,
    Overflow,
    QueuePolicy,
    Role,
    UserRecord,
)


def user_record(row: tuple[Any, ...]) -> UserRecord:
    """``id, name, password_hash, role, disabled, created_at`` as a user."""
    user_id, name, password_hash, role, disabled, created_at = row
    return UserRecord(user_id, name, password_hash, Role(role), bool(disabled), created_at)


def destination_record(row: tuple[Any, ...]) -> DestinationRecord:
    """``id, kind, name, owner_id, key_hash, created_at, policy, dead_letter_grant,
    channel_type`` as a destination."""
    destination_id, kind, name, owner_id, key_hash, created_at, policy, grant, routes = row
    return DestinationRecord(
        destination_id,
        DestinationKind(kind),
        name,
        owner_id,
        key_hash,
        created_at,
        policy_record(json.loads(policy)),
        grant,
        ChannelType(routes),
    )


def destination_row(record: DestinationRecord) -> tuple[Any, ...]:
    """A destination as the row :func:`destination_record` reads."""
    return (
        record.id,
        record.kind.value,
        record.name,
        record.owner_id,
        record.key_hash,
        record.created_at,
        policy_text(record.policy),
        record.dead_letter_grant,
        record.channel_type.value,
    )


def policy_text(policy: QueuePolicy) -> str:
    """A policy as stored: a JSON object of its fields."""
    return json.dumps(dataclasses.asdict(policy))


def policy_record(fields: dict[str, Any]) -> QueuePolicy:
    """A stored policy (fields this buzon does not know are ignored)."""
    known = {f.name for f in dataclasses.fields(QueuePolicy)}
    values = {key: value for key, value in fields.items() if key in known}
    if "overflow" in values:
        values["overflow"] = Overflow(values["overflow"])
    return QueuePolicy(**values)


def headers_text(headers: tuple[tuple[str, str], ...]) -> str:
    """Message headers as stored: a JSON list of pairs (order and repeats kept)."""
    return json.dumps(headers)


@functools.lru_cache(maxsize=256)
def parse_headers(text: str) -> tuple[tuple[str, str], ...]:
    """Stored headers as a tuple. Pages read thousands of rows, most of them with the same
    few header sets (one publisher's), so each distinct text is parsed once."""
    return tuple((name, value) for name, value in json.loads(text))
