"""The Celery app of the Celery acceptance test: a worker subprocess runs it
(``celery -A tests.interop.amqp.celery_app worker``), configured by environment variables
so that it and the test process agree on the broker, the result backend and the queue."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from sqlalchemy import event
from sqlalchemy.engine import Engine

BROKER, BACKEND, QUEUE = "ACCEPTANCE_BROKER", "ACCEPTANCE_BACKEND", "ACCEPTANCE_QUEUE"


def add(x: int, y: int) -> int:
    return x + y


def mul(x: int, y: int) -> int:
    return x * y


def xsum(numbers: list[int]) -> int:
    return sum(numbers)


def flaky(task: Any, retries_wanted: int) -> int:
    """Fails (retrying after a countdown of 1 s) until it has been retried enough."""
    if task.request.retries < retries_wanted:
        raise task.retry(countdown=1)
    return int(task.request.retries)


def _write_ahead(connection: Any, _record: Any) -> None:
    """SQLite in WAL mode, synced at checkpoints: results are the test's data, not what is
    under test, and a sync per task made the worker wait on the disk."""
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_app(broker: str, backend: str, queue: str) -> Any:
    """The app and its tasks, named ``acceptance.<function>``."""
    app = Celery("acceptance", broker=broker, backend=backend)
    app.conf.update(
        task_default_queue=queue,
        broker_connection_retry_on_startup=True,
        result_expires=None,
        worker_hijack_root_logger=False,
    )
    for function in (add, mul, xsum):
        app.task(name=f"acceptance.{function.__name__}")(function)
    app.task(name="acceptance.flaky", bind=True, max_retries=3)(flaky)
    if backend.startswith("db+sqlite"):
        event.listen(Engine, "connect", _write_ahead)
    return app


app = make_app(
    os.environ.get(BROKER, "amqp://"),
    os.environ.get(BACKEND, "disabled://"),
    os.environ.get(QUEUE, "celery"),
)
