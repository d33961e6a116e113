"""Work queue: several workers share the tasks of one queue; a failing task is retried.

Start a broker (``buzon serve``), then::

    BUZON_PASSWORD=... python examples/work_queue.py --workers 3 --tasks 10

Settings: ``--stomp-url`` (default ``$BUZON_STOMP_URL``, else ``stomp://127.0.0.1:61613``),
``--user`` (default ``$BUZON_USER``, else ``admin``) and that user's password in
``$BUZON_PASSWORD``.

What happens. Each worker has its own connection and subscribes to the queue in
``client-individual`` mode with a prefetch of 1, so the broker hands each worker one task
at a time, round-robin. A worker acknowledges (ACK) a task once it has done it. The task
named by ``--flaky`` fails the first time: its worker refuses it (NACK), the broker puts it
back at the head of the queue marked ``redelivered``, and a worker does it again. At the
end the program checks that every task was done exactly once, and exits 1 if not.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections import Counter
from collections.abc import Sequence

from buzon.client import AsyncClient, Subscription

WORK_SECONDS = 0.02
"""How long a task takes: long enough for the tasks to spread over the workers."""
DEADLINE_SECONDS = 30.0


class Board:
    """What the workers share: who did which task, and the signal that all are done."""

    def __init__(self, tasks: Sequence[str]) -> None:
        self.tasks = tasks
        self.done: Counter[str] = Counter()
        self.workers: set[str] = set()
        self.all_done = asyncio.Event()

    def record(self, task: str, worker: str) -> None:
        self.done[task] += 1
        self.workers.add(worker)
        if set(self.done) >= set(self.tasks):
            self.all_done.set()

    def exactly_once(self) -> bool:
        return sorted(self.done.elements()) == sorted(self.tasks)


async def work(name: str, tasks: Subscription, board: Board, flaky: str) -> None:
    """Do tasks until the subscription ends; the flaky task fails on its first delivery."""
    async for message in tasks:
        task = message.text
        if task == flaky and not message.redelivered:
            print(f"{name} failed {task}: NACK, the broker will hand it out again", flush=True)
            await message.nack()
            continue
        await asyncio.sleep(WORK_SECONDS)
        await message.ack()
        again = " (redelivered)" if message.redelivered else ""
        print(f"{name} did {task}{again}", flush=True)
        board.record(task, name)


async def run(args: argparse.Namespace, password: str) -> int:
    address = f"/queue/{args.queue}"
    tasks = [f"task-{n}" for n in range(1, args.tasks + 1)]
    board = Board(tasks)
    async with contextlib.AsyncExitStack() as stack:
        subscriptions = []
        for _ in range(args.workers):
            client = AsyncClient(args.stomp_url, login=args.user, passcode=password)
            await stack.enter_async_context(client)
            subscriptions.append(
                await client.subscribe(address, ack="client-individual", prefetch=1)
            )
        async with asyncio.TaskGroup() as group:
            for number, subscription in enumerate(subscriptions, 1):
                group.create_task(work(f"worker-{number}", subscription, board, args.flaky))
            async with AsyncClient(args.stomp_url, login=args.user, passcode=password) as boss:
                for task in tasks:
                    await boss.publish(address, task)
            async with asyncio.timeout(DEADLINE_SECONDS):
                await board.all_done.wait()
            for subscription in subscriptions:
                await subscription.unsubscribe()
    if not board.exactly_once():
        print(f"problem: tasks done {dict(board.done)}", file=sys.stderr)
        return 1
    print(
        f"all {len(tasks)} tasks done exactly once by {len(board.workers)} workers;"
        f" {args.flaky} was retried after a NACK"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Workers sharing a queue of tasks.")
    parser.add_argument(
        "--stomp-url", default=os.environ.get("BUZON_STOMP_URL", "stomp://127.0.0.1:61613")
    )
    parser.add_argument("--user", default=os.environ.get("BUZON_USER", "admin"))
    parser.add_argument("--queue", default="example-tasks", help="the queue's name")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--flaky", default="task-3", help="the task that fails once")
    args = parser.parse_args(argv)
    password = os.environ.get("BUZON_PASSWORD")
    if not password:
        parser.error(f"set BUZON_PASSWORD to the password of {args.user}")
    return asyncio.run(run(args, password))


if __name__ == "__main__":
    sys.exit(main())
