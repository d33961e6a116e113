"""Request/reply over queues: a ``reply-to`` header and a correlation id.

A requester sends each request to the service queue with two headers: ``reply-to``, the
requester's own reply queue, and ``correlation-id``, unique per request. A responder takes
requests from the service queue, works out the answer (here: the square of a number) and
publishes it to the ``reply-to`` queue with the same ``correlation-id``. The requester
matches each reply to its request by that id, in whatever order the replies come back.

Start a broker (``buzon serve``), then run both sides in one process::

    BUZON_PASSWORD=... python examples/request_reply.py --requests 5

or apart, in two terminals::

    BUZON_PASSWORD=... python examples/request_reply.py --role responder
    BUZON_PASSWORD=... python examples/request_reply.py --role requester --requests 5

Settings: ``--stomp-url`` (default ``$BUZON_STOMP_URL``, else ``stomp://127.0.0.1:61613``),
``--user`` (default ``$BUZON_USER``, else ``admin``) and that user's password in
``$BUZON_PASSWORD``. The responder serves until Ctrl-C, or ``--count`` requests. Each
requester's reply queue (``replies-<random>``) stays on the broker afterwards, like every
queue created on first use: ``buzon queue delete`` removes it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import uuid
from collections.abc import Sequence

from buzon.client import AsyncClient

REPLY_DEADLINE_SECONDS = 30.0


async def respond(client: AsyncClient, service: str, count: int | None) -> None:
    """Answer requests from ``service`` (``count`` of them, or for ever)."""
    requests = await client.subscribe(service, ack="client-individual", prefetch=10)
    print(f"responder: serving {service}", flush=True)
    answered = 0
    async for request in requests:
        reply_to = request.headers.get("reply-to")
        correlation_id = request.headers.get("correlation-id")
        if reply_to is not None and correlation_id is not None:
            answer = str(int(request.text) ** 2)
            await client.publish(reply_to, answer, headers={"correlation-id": correlation_id})
            print(f"responder: {request.text} -> {answer}", flush=True)
        await request.ack()  # after the reply is out: a crash before it means a retry
        answered += 1
        if answered == count:
            await requests.unsubscribe()


async def ask(client: AsyncClient, service: str, count: int) -> int:
    """Send ``count`` requests, match every reply by correlation id; return how many were wrong."""
    reply_to = f"/queue/replies-{uuid.uuid4().hex[:12]}"
    replies = await client.subscribe(reply_to)
    waiting: dict[str, int] = {}
    for number in range(1, count + 1):
        correlation_id = uuid.uuid4().hex
        waiting[correlation_id] = number
        headers = {"reply-to": reply_to, "correlation-id": correlation_id}
        await client.publish(service, str(number), headers=headers)
    wrong = 0
    async with asyncio.timeout(REPLY_DEADLINE_SECONDS):
        while waiting:
            reply = await replies.get()
            correlation_id = reply.headers.get("correlation-id", "")
            asked = waiting.pop(correlation_id, None)
            if asked is None:
                print(f"requester: a reply nobody asked for: {reply.text}", flush=True)
                continue
            ok = reply.text == str(asked * asked)
            wrong += not ok
            verdict = "ok" if ok else "WRONG"
            print(
                f"requester: {asked} squared is {reply.text}"
                f" (correlation-id {correlation_id[:8]}) {verdict}",
                flush=True,
            )
    await replies.unsubscribe()
    return wrong


async def run(args: argparse.Namespace, password: str) -> int:
    service = f"/queue/{args.service}"

    def connect() -> AsyncClient:
        return AsyncClient(args.stomp_url, login=args.user, passcode=password)

    if args.role == "responder":
        async with connect() as client:
            await respond(client, service, args.count)
        return 0
    async with connect() as requester:
        if args.role == "requester":
            wrong = await ask(requester, service, args.requests)
        else:
            async with connect() as responder, asyncio.TaskGroup() as group:
                group.create_task(respond(responder, service, args.requests))
                wrong = await ask(requester, service, args.requests)
    print(f"requester: {args.requests - wrong} of {args.requests} replies matched their requests")
    return 1 if wrong else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Request/reply with a correlation id.")
    parser.add_argument("--role", choices=("both", "requester", "responder"), default="both")
    parser.add_argument(
        "--stomp-url", default=os.environ.get("BUZON_STOMP_URL", "stomp://127.0.0.1:61613")
    )
    parser.add_argument("--user", default=os.environ.get("BUZON_USER", "admin"))
    parser.add_argument("--service", default="example-squares", help="the service queue")
    parser.add_argument("--requests", type=int, default=5, help="requests to send")
    parser.add_argument("--count", type=int, help="responder: exit after this many requests")
    args = parser.parse_args(argv)
    password = os.environ.get("BUZON_PASSWORD")
    if not password:
        parser.error(f"set BUZON_PASSWORD to the password of {args.user}")
    return asyncio.run(run(args, password))


if __name__ == "__main__":
    sys.exit(main())
