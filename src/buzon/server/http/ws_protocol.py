"""uvicorn's sans-IO WebSocket protocol, with a message cap the application raises at login.

uvicorn assembles a whole WebSocket message before the application sees it, so with one
fixed cap an anonymous peer could make the broker hold the largest STOMP frame (16 MiB)
although the STOMP parser allows 8 KiB before login. This protocol starts every
connection at the pre-login cap and hands the application, in the ASGI extension
:data:`RAISE_CAP`, a call that lifts the cap once the peer has logged in.
"""

from __future__ import annotations

from collections.abc import Callable

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request

from buzon.stomp import DEFAULT_LIMITS, PRE_LOGIN_LIMITS

# The cap before login: a CONNECT frame at its largest.
PRE_LOGIN_MESSAGE = PRE_LOGIN_LIMITS.max_frame
# The cap after login: the largest STOMP frame (smaller limits are the STOMP parser's).
MAX_MESSAGE = DEFAULT_LIMITS.max_frame
RAISE_CAP = "buzon.websocket.raise_cap"
"""ASGI scope extension: ``{"call": f}``, where ``f()`` lifts the cap to MAX_MESSAGE."""


class CappedWebSocketProtocol(WebSocketsSansIOProtocol):
    """Give uvicorn ``ws_max_size=PRE_LOGIN_MESSAGE``; the application raises it."""

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)  # set only when the upgrade is going ahead
        if scope is not None:
            scope["extensions"][RAISE_CAP] = {"call": self._raise_cap}

    def _raise_cap(self) -> None:
        # the frame parser reads this before each frame it parses
        self.conn.max_message_size = MAX_MESSAGE


def cap_raiser(extensions: dict[str, object] | None) -> Callable[[], None] | None:
    """The call :class:`CappedWebSocketProtocol` put in the scope, if it served this one."""
    entry = (extensions or {}).get(RAISE_CAP)
    if isinstance(entry, dict) and callable(entry.get("call")):
        call: Callable[[], None] = entry["call"]
        return call
    return None
