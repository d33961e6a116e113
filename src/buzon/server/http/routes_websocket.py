"""``/ws``: STOMP over WebSocket on the HTTP port.

The upgrade is checked before it is accepted. A page may open a WebSocket to any host, and
the browser names the page's origin in ``Origin``; only the broker's own origin (``Origin``
naming the host and port the request was sent to) and those in ``ws_origins`` get in, so a
page elsewhere cannot use a visitor's browser, and its place in the network, to reach the
broker. Clients that are not browsers send no ``Origin`` and are let in: they could send
any. STOMP carries its credentials in CONNECT, never in cookies, so this check is a second
line, not the only one.

Once accepted, the connection is a STOMP connection like one over TCP
(:mod:`buzon.server.websocket`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from fastapi import APIRouter, WebSocket

from buzon.errors import ErrorCode
from buzon.server.context import ServerContext
from buzon.server.http.errors import problem
from buzon.server.http.ws_protocol import cap_raiser
from buzon.server.stomp_session import stomp_session
from buzon.server.websocket import WebSocketTransport

log = logging.getLogger("buzon.http")

PATH = "/ws"
SUBPROTOCOLS = ("v12.stomp", "v11.stomp", "v10.stomp")
"""What stomp.js and other STOMP clients offer; the first one offered in this order wins.
The subprotocol is a label: the STOMP version is still negotiated by CONNECT."""

router = APIRouter()


@router.websocket(PATH)
async def stomp_over_websocket(websocket: WebSocket) -> None:
    ctx: ServerContext = websocket.app.state.ctx
    origin = websocket.headers.get("origin")
    if not origin_allowed(origin, websocket.headers.get("host"), ctx.settings.ws_origins):
        log.info("WebSocket from %s refused: origin %r not allowed", _peer(websocket), origin)
        await websocket.send_denial_response(
            problem(ErrorCode.ACCESS_DENIED, "this origin may not open STOMP over WebSocket")
        )
        return
    offered = websocket.scope.get("subprotocols", [])
    subprotocol = choose_subprotocol(offered)
    if offered and subprotocol is None:
        await websocket.send_denial_response(
            problem(ErrorCode.BAD_REQUEST, f"subprotocols are {', '.join(SUBPROTOCOLS)}")
        )
        return
    await websocket.accept(subprotocol)
    raise_cap = cap_raiser(websocket.scope.get("extensions"))
    await WebSocketTransport(websocket, stomp_session(ctx), on_login=raise_cap).run()


def origin_allowed(origin: str | None, host: str | None, allowed: Sequence[str]) -> bool:
    """Whether an upgrade with this ``Origin`` (None: no such header) may go on.

    Args:
        origin: the ``Origin`` header.
        host: the ``Host`` header: an origin naming it is the broker's own.
        allowed: lower-case origins let in besides (``ws_origins``).
    """
    if origin is None:
        return True
    origin = origin.lower()
    if origin in allowed:
        return True
    scheme, _, authority = origin.partition("://")
    return scheme in {"http", "https"} and bool(authority) and authority == (host or "").lower()


def choose_subprotocol(offered: Sequence[str]) -> str | None:
    """The best of :data:`SUBPROTOCOLS` the client offered, or None."""
    return next((name for name in SUBPROTOCOLS if name in offered), None)


def _peer(websocket: WebSocket) -> str:
    client = websocket.client
    return "?" if client is None else f"{client.host}:{client.port}"
