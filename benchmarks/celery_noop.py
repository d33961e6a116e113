"""The Celery app of the Celery benchmark (``celery_load.py``), run by its worker.

``noop`` does nothing but count itself; ``finish`` writes the count to a file, atomically,
so the benchmark knows every task before it ran (one worker, ``-P solo``: tasks run in
the order they arrived). The worker touches ``CELERY_BENCH_READY`` once it consumes.
Results are off (``task_ignore_result``): the broker is what is measured.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import worker_ready

app = Celery("celery_noop", broker=os.environ.get("CELERY_BENCH_BROKER", "amqp://"))
app.conf.update(task_ignore_result=True, broker_connection_retry_on_startup=True)
ran = 0


def _noop() -> None:
    global ran
    ran += 1


def _finish(path: str) -> None:
    partial = Path(f"{path}.partial")
    partial.write_text(str(ran))
    partial.rename(path)


def _ready(**_: Any) -> None:
    Path(os.environ["CELERY_BENCH_READY"]).touch()


noop = app.task(name="noop")(_noop)
finish = app.task(name="finish")(_finish)
worker_ready.connect(_ready, weak=False)
