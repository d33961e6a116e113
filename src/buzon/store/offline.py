"""Changes made to a broker's database from another process: ``buzon user set-password``.

They open ``<data_dir>/buzon.db`` directly, never create it, and change it in one short
transaction. That is safe whether or not a broker has the file open: SQLite's locks make
the broker's next write wait for this one (milliseconds), and a broker reads users and
tokens from the file at every login, so the change applies from the next login on.
Nothing here touches the broker's own bookkeeping (its clean-shutdown flag, its messages),
and files SQLite creates on the way are 0600, like the store's own.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from buzon.errors import ErrorCode, StoreError
from buzon.store.migrate import migrations
from buzon.store.sqlite import DATABASE_FILE

BUSY_TIMEOUT = 30.0
"""Seconds to wait for a running broker's write to finish (it takes milliseconds)."""


def set_password_hash(data_dir: Path, name: str, password_hash: str) -> int:
    """Give user ``name`` a new password hash and delete every token of theirs, in one
    transaction; return how many tokens were deleted.

    Raises:
        StoreError: STORAGE_UNAVAILABLE when ``data_dir`` holds no buzon database, belongs
            to another system user, or cannot be written; STORAGE_TOO_NEW;
            USER_NOT_FOUND.
    """
    with _database(data_dir) as db:
        db.execute("BEGIN IMMEDIATE")
        row = db.execute("SELECT id FROM users WHERE name = ?", (name,)).fetchone()
        if row is None:
            db.execute("ROLLBACK")
            raise StoreError(ErrorCode.USER_NOT_FOUND, f"no user {name[:64]!r} in {data_dir}")
        db.execute("UPDATE users SET password_hash = ? WHERE id = ?", (password_hash, row[0]))
        revoked: int = db.execute("DELETE FROM tokens WHERE user_id = ?", (row[0],)).rowcount
        db.execute("COMMIT")
    return revoked


@contextlib.contextmanager
def _database(data_dir: Path) -> Iterator[sqlite3.Connection]:
    """The existing database of ``data_dir``, checked to be one this buzon can change."""
    path = data_dir / DATABASE_FILE
    try:
        owner = path.stat().st_uid
    except OSError:
        raise StoreError(
            ErrorCode.STORAGE_UNAVAILABLE,
            f"no buzon database in {data_dir} (give the --data-dir that buzon serve uses)",
        ) from None
    if owner != os.geteuid():
        # files SQLite creates beside it would belong to us and lock the broker out
        raise StoreError(
            ErrorCode.STORAGE_UNAVAILABLE,
            f"{path} belongs to another system user (uid {owner}): run this as that user",
        )
    old_umask = os.umask(0o077)
    try:
        db = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=rw",
            uri=True,
            isolation_level=None,
            timeout=BUSY_TIMEOUT,
        )
        with contextlib.closing(db):
            db.execute("PRAGMA synchronous=FULL")
            _check_version(db, path)
            yield db
    except sqlite3.Error as exc:
        raise StoreError(ErrorCode.STORAGE_UNAVAILABLE, f"{path}: {exc}") from None
    finally:
        os.umask(old_umask)


def _check_version(db: sqlite3.Connection, path: Path) -> None:
    """Users and tokens have kept their columns since the first schema; a newer one may not."""
    newest = migrations()[-1][0]
    (version,) = db.execute("PRAGMA user_version").fetchone()
    if version == 0:
        raise StoreError(ErrorCode.STORAGE_UNAVAILABLE, f"{path} is not a buzon database")
    if version > newest:
        raise StoreError(
            ErrorCode.STORAGE_TOO_NEW,
            f"{path} has schema version {version}, this buzon knows up to {newest}: upgrade buzon",
        )
