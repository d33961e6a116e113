"""Schema versions: numbered SQL files applied in order, the version kept in the file.

``PRAGMA user_version`` holds the number of the last migration applied. Opening a database
applies the missing ones, each in its own transaction. A database whose version is higher
than the newest migration this buzon knows was written by a newer buzon: it is refused, never
downgraded or rewritten.
"""

from __future__ import annotations

import re
import sqlite3
from importlib import resources

from buzon.errors import ErrorCode, StoreError

_NAME = re.compile(r"(\d{4})_[a-z0-9_]+\.sql")


def migrations(package: str = "buzon.store.migrations") -> list[tuple[int, str]]:
    """``(version, sql)`` of every migration shipped with buzon in ``package`` (SQLite's by
    default), in order."""
    found = []
    for entry in resources.files(package).iterdir():
        match = _NAME.fullmatch(entry.name)
        if match:
            found.append((int(match.group(1)), entry.read_text(encoding="utf-8")))
    return sorted(found)


def refuse_newer(current: int, newest: int) -> None:
    """Raise STORAGE_TOO_NEW for a database a newer buzon wrote (never downgraded)."""
    if current > newest:
        raise StoreError(
            ErrorCode.STORAGE_TOO_NEW,
            f"schema version {current}, this buzon knows up to {newest}: upgrade buzon",
        )


def migrate(connection: sqlite3.Connection) -> int:
    """Bring the schema up to date; return the version it is at.

    Raises:
        StoreError: STORAGE_TOO_NEW when the database is newer than this buzon.
    """
    known = migrations()
    newest = known[-1][0] if known else 0
    current: int = connection.execute("PRAGMA user_version").fetchone()[0]
    refuse_newer(current, newest)
    for version, sql in known:
        if version > current:
            connection.execute("BEGIN IMMEDIATE")
            for statement in _statements(sql):
                connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {version:d}")
            connection.execute("COMMIT")
    return max(current, newest)


def _statements(sql: str) -> list[str]:
    """Split a migration into statements (migrations hold no ';' inside literals)."""
    lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    return [part.strip() for part in "\n".join(lines).split(";") if part.strip()]
