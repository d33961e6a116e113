"""One thread owns the SQLite connection; writes from everyone commit together.

Strategy (group commit). Callers on the event loop submit small functions; the database
thread takes everything queued, runs it in submission order inside one transaction, commits
once (one fsync with ``synchronous=FULL``), and only then resolves each caller's future.
While one commit syncs, new work queues up and forms the next group, so throughput grows
with the number of concurrent writers instead of collapsing to one fsync per message.

Each write runs under its own SAVEPOINT: a write that raises (a uniqueness rule, say) is
rolled back alone and its caller gets the error, the others in the group still commit.
Some errors (a full disk) make SQLite roll back the whole transaction: then every write of
that transaction fails (STORAGE_FULL when the disk is full, else STORAGE_UNAVAILABLE), and
the next write starts a new one. A failing COMMIT fails every write of its transaction the
same way. Either way nothing
reported as committed was lost, so nothing was confirmed wrongly.

A group is bounded (``MAX_GROUP`` jobs) so one commit never holds a huge transaction.
Each group's transaction is timed, from its BEGIN to the end of its COMMIT (the fsync
included), into ``commit_durations``: once per group, never per message.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from buzon.durations import Durations
from buzon.errors import ErrorCode, StoreError

T = TypeVar("T")

MAX_GROUP = 2048
"""Jobs per transaction at most; enough to amortise an fsync, small enough to stay quick."""

COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
"""Bucket bounds (seconds) of the commit durations: an SSD's fsync takes about a
millisecond, a spinning disk's tens, a struggling one much longer."""


@dataclass(slots=True)
class _Job:
    run: Callable[[sqlite3.Connection], Any]
    write: bool
    finish: Callable[[bool, Any], None]  # called on ``loop`` with (succeeded, result or error)
    loop: asyncio.AbstractEventLoop
    early: bool = False  # a read whose result may leave before its group commits


_STOP = None


class SqliteThread:
    """The database thread of one SQLite file.

    Args:
        path: the database file.
        setup: run once on the thread after connecting (pragmas, migrations); it may raise
            a :class:`BuzonError`, which :meth:`start` re-raises.
        commit_durations: where each transaction's duration is recorded.
    """

    def __init__(
        self,
        path: Path,
        setup: Callable[[sqlite3.Connection], None],
        commit_durations: Durations | None = None,
    ) -> None:
        self._path = path
        self._setup = setup
        self._commit_durations = (
            commit_durations if commit_durations is not None else Durations(COMMIT_BUCKETS)
        )
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self._closed = False

    async def start(self) -> None:
        """Open the connection on a new thread and run ``setup``.

        Raises:
            BuzonError: what ``setup`` raised.
            StoreError: STORAGE_UNAVAILABLE when the file cannot be opened.
        """
        self._thread = threading.Thread(target=self._main, name="buzon-sqlite", daemon=True)
        self._thread.start()
        await asyncio.to_thread(self._started.wait)
        if self._start_error is not None:
            raise self._start_error

    async def read(self, run: Callable[[sqlite3.Connection], T]) -> T:
        """Run a query on the database thread and return its result."""
        return await self._submit(run, write=False)

    async def write(self, run: Callable[[sqlite3.Connection], T]) -> T:
        """Run a change on the database thread; return once it is committed.

        Raises:
            StoreError: what ``run`` raised, or STORAGE_UNAVAILABLE if the commit failed.
        """
        return await self._submit(run, write=True)

    async def close(self) -> None:
        """Finish queued work, then close the connection and end the thread."""
        if self._closed or self._thread is None:
            return
        self._closed = True
        self._jobs.put(_STOP)
        await asyncio.to_thread(self._thread.join)

    def post(
        self,
        run: Callable[[sqlite3.Connection], Any],
        finish: Callable[[bool, Any], None],
        *,
        write: bool = True,
        early: bool = False,
    ) -> None:
        """Queue a job without awaiting: ``finish(succeeded, result_or_error)`` runs on
        the calling event loop once it is committed (or, for a read, done) or failed.

        Args:
            run: the job; it runs after every job posted before it.
            finish: gets its outcome, on the calling loop.
            write: it changes the database (it then finishes after its group's commit).
            early: a read whose result goes back as soon as it ran, even while its group's
                transaction is still to commit. Only for reads that cannot see a row an
                uncommitted write of that group touched (a paged backlog's tail, which
                never reaches a message still being written).

        Raises:
            StoreError: STORAGE_UNAVAILABLE once the store is closed.
        """
        if self._closed:
            raise StoreError(ErrorCode.STORAGE_UNAVAILABLE, "the store is closed")
        self._jobs.put(_Job(run, write, finish, asyncio.get_running_loop(), early))

    def _submit(self, run: Callable[[sqlite3.Connection], T], *, write: bool) -> asyncio.Future[T]:
        if self._closed:
            raise StoreError(ErrorCode.STORAGE_UNAVAILABLE, "the store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put(_Job(run, write, partial(_settle, future), loop))
        return future

    # -- the database thread -------------------------------------------------------------

    def _main(self) -> None:
        try:
            connection = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            self._start_error = StoreError(ErrorCode.STORAGE_UNAVAILABLE, str(exc))
            self._started.set()
            return
        try:
            self._setup(connection)
        except BaseException as exc:
            self._start_error = exc
            connection.close()
            self._started.set()
            return
        self._started.set()
        try:
            self._serve(connection)
        finally:
            connection.close()

    def _serve(self, connection: sqlite3.Connection) -> None:
        while True:
            first = self._jobs.get()
            if first is None:
                return
            group = [first]
            stop = False
            while len(group) < MAX_GROUP:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stop = True
                    break
                group.append(job)
            self._run_group(connection, group)
            if stop:
                return

    def _run_group(self, connection: sqlite3.Connection, group: list[_Job]) -> None:
        results: list[tuple[_Job, bool, Any]] = []
        open_writes: list[int] = []  # results of writes inside the open transaction
        began = 0.0
        for job in group:
            if job.write and not connection.in_transaction:
                began = time.perf_counter()
                try:
                    connection.execute("BEGIN IMMEDIATE")
                except sqlite3.Error as exc:
                    results.append((job, False, _as_store_error(exc)))
                    continue
            result = self._run_one(connection, job)
            if job.early:
                job.loop.call_soon_threadsafe(job.finish, result[1], result[2])
                continue
            if job.write and not connection.in_transaction:
                # SQLite rolled the whole transaction back (a full disk does): every write
                # of it is undone, not only this one, and fails for the same reason.
                code = _code(result[2])
                self._fail(results, open_writes, code, "the transaction was rolled back")
                open_writes = []
            elif job.write and result[1]:
                open_writes.append(len(results))
            results.append(result)
        if connection.in_transaction:
            self._commit(connection, results, open_writes, began)
        for job, ok, value in results:
            job.loop.call_soon_threadsafe(job.finish, ok, value)

    def _commit(
        self,
        connection: sqlite3.Connection,
        results: list[tuple[_Job, bool, Any]],
        open_writes: list[int],
        began: float,
    ) -> None:
        """Commit the group's transaction; a failed commit fails each of its writes."""
        try:
            connection.execute("COMMIT")
        except sqlite3.Error as exc:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            code = _code(_as_store_error(exc))
            self._fail(results, open_writes, code, f"commit failed: {exc}")
        self._commit_durations.record(time.perf_counter() - began)

    @staticmethod
    def _fail(
        results: list[tuple[_Job, bool, Any]], indexes: list[int], code: ErrorCode, why: str
    ) -> None:
        failure = StoreError(code, why)
        for index in indexes:
            results[index] = (results[index][0], False, failure)

    def _run_one(self, connection: sqlite3.Connection, job: _Job) -> tuple[_Job, bool, Any]:
        """Run one job (a write under its own SAVEPOINT); never raises."""
        try:
            if job.write:
                connection.execute("SAVEPOINT job")
            value = job.run(connection)
            if job.write:
                connection.execute("RELEASE job")
        except Exception as exc:  # the caller gets it; the thread and the group go on
            if job.write and connection.in_transaction:
                try:
                    connection.execute("ROLLBACK TO job")
                    connection.execute("RELEASE job")
                except sqlite3.Error:
                    connection.execute("ROLLBACK")
            return job, False, _as_store_error(exc)
        return job, True, value


def _as_store_error(exc: BaseException) -> BaseException:
    if isinstance(exc, sqlite3.Error):
        full = getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
        code = ErrorCode.STORAGE_FULL if full else ErrorCode.STORAGE_UNAVAILABLE
        return StoreError(code, str(exc)[:200])
    return exc


def _code(error: object) -> ErrorCode:
    """Why a transaction failed, for every write in it: a full disk, or unavailable."""
    if isinstance(error, StoreError) and error.code is ErrorCode.STORAGE_FULL:
        return ErrorCode.STORAGE_FULL
    return ErrorCode.STORAGE_UNAVAILABLE


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.cancelled():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
