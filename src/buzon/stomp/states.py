"""Which STOMP command is legal when: one table, one function that applies it.

Commands are directional (a server only ever sends CONNECTED, MESSAGE, RECEIPT and ERROR;
a client only the others), so one table per role covers both what we send and what we
receive: :data:`TRANSITIONS` maps ``role -> state -> command -> next state``. Anything not
in it is illegal: a bug when we send it, a protocol violation when the peer does. Also here:
which states parse input, and which states mean "flush, then close". docs/stomp-states.md
draws :data:`TRANSITIONS` (``python scripts/state_diagram.py`` writes it; a test checks that
it matches the table).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from buzon.errors import ErrorCode
from buzon.stomp.frame import Command


class Role(enum.Enum):
    """Which end of the connection we are."""

    SERVER = "server"
    CLIENT = "client"

    __hash__ = object.__hash__  # see Command.__hash__: identity, and cheap


class ConnState(enum.Enum):
    """Connection states, the same names for both roles."""

    AWAITING_CONNECT = "awaiting-connect"
    """Nothing sent or received yet."""
    CONNECTING = "connecting"
    """CONNECT is on its way: the client awaits CONNECTED, the server its login decision."""
    CONNECTED = "connected"
    """Logged in; frames flow."""
    DISCONNECTING = "disconnecting"
    """DISCONNECT was sent or received; only the last replies remain."""
    CLOSED = "closed"
    """The peer closed its side, or the session ended normally."""
    FAILED = "failed"
    """An ERROR was sent or received, or the connection failed locally: close it."""

    __hash__ = object.__hash__  # see Command.__hash__: identity, and cheap


_S = ConnState
_C = Command

# Client commands allowed once logged in that leave the state as it is.
_SESSION_COMMANDS = frozenset(
    {_C.SEND, _C.SUBSCRIBE, _C.UNSUBSCRIBE, _C.ACK, _C.NACK, _C.BEGIN, _C.COMMIT, _C.ABORT}
)

# Once logged in, both roles share one row: each sends its half and receives the other.
_LOGGED_IN = {
    **dict.fromkeys(_SESSION_COMMANDS, _S.CONNECTED),
    _C.DISCONNECT: _S.DISCONNECTING,
    _C.MESSAGE: _S.CONNECTED,
    _C.RECEIPT: _S.CONNECTED,
    _C.ERROR: _S.FAILED,
}
# After DISCONNECT, deliveries already under way and the DISCONNECT's receipt still flow.
_DISCONNECTING = {
    _C.MESSAGE: _S.DISCONNECTING,
    _C.RECEIPT: _S.DISCONNECTING,
    _C.ERROR: _S.FAILED,
}

_SERVER: dict[ConnState, dict[Command, ConnState]] = {
    _S.AWAITING_CONNECT: {_C.CONNECT: _S.CONNECTING, _C.STOMP: _S.CONNECTING, _C.ERROR: _S.FAILED},
    _S.CONNECTING: {_C.CONNECTED: _S.CONNECTED, _C.ERROR: _S.FAILED},
    _S.CONNECTED: _LOGGED_IN,
    _S.DISCONNECTING: _DISCONNECTING,
}

_CLIENT: dict[ConnState, dict[Command, ConnState]] = {
    _S.AWAITING_CONNECT: {_C.CONNECT: _S.CONNECTING},
    _S.CONNECTING: {_C.CONNECTED: _S.CONNECTED, _C.ERROR: _S.FAILED},
    _S.CONNECTED: _LOGGED_IN,
    _S.DISCONNECTING: _DISCONNECTING,
}

TRANSITIONS: Final[Mapping[Role, Mapping[ConnState, Mapping[Command, ConnState]]]] = (
    MappingProxyType({Role.SERVER: _SERVER, Role.CLIENT: _CLIENT})
)
"""``role -> state -> command -> next state`` for every command sent or received."""

SERVER_COMMANDS: Final = frozenset({_C.CONNECTED, _C.MESSAGE, _C.RECEIPT, _C.ERROR})
"""Commands only a server sends; a client sends all the others."""

PARSING_STATES: Final[Mapping[Role, frozenset[ConnState]]] = MappingProxyType(
    {
        # After DISCONNECT the server ignores input; while a login is being decided it
        # keeps what arrives unparsed (see BUFFERING_STATES).
        Role.SERVER: frozenset({_S.AWAITING_CONNECT, _S.CONNECTED}),
        Role.CLIENT: frozenset(
            {_S.AWAITING_CONNECT, _S.CONNECTING, _S.CONNECTED, _S.DISCONNECTING}
        ),
    }
)
"""States in which each role parses what the peer sends."""

BUFFERING_STATES: Final[Mapping[Role, frozenset[ConnState]]] = MappingProxyType(
    {
        # Frames pipelined behind CONNECT wait for the login decision, then are parsed
        # with the full limits.
        Role.SERVER: PARSING_STATES[Role.SERVER] | {_S.CONNECTING},
        Role.CLIENT: PARSING_STATES[Role.CLIENT],
    }
)
"""States in which each role keeps the bytes it receives (the others drop them)."""

CLOSE_EXPECTED_STATES: Final = frozenset({_S.DISCONNECTING, _S.CLOSED, _S.FAILED})
"""States in which the transport should be flushed and closed."""

FINAL_STATES: Final = frozenset({_S.CLOSED, _S.FAILED})
"""States nothing leaves."""


def _split(
    role: Role, state: ConnState
) -> tuple[dict[Command, ConnState], dict[Command, ConnState]]:
    """A state's row of :data:`TRANSITIONS` as (what we may send, what we may receive)."""
    moves = TRANSITIONS[role].get(state, {})
    server = role is Role.SERVER
    return (
        {c: s for c, s in moves.items() if (c in SERVER_COMMANDS) is server},
        {c: s for c, s in moves.items() if (c in SERVER_COMMANDS) is not server},
    )


# Each row split by direction once for all connections, so a frame costs one dict lookup.
_BY_DIRECTION = {(role, state): _split(role, state) for role in Role for state in ConnState}


def refusal(state: ConnState) -> ErrorCode:
    """The error for a frame the peer may not send in ``state``.

    Args:
        state: the state the frame arrived in.

    Returns:
        NOT_CONNECTED before any CONNECT, else UNEXPECTED_FRAME.
    """
    return ErrorCode.NOT_CONNECTED if state is _S.AWAITING_CONNECT else ErrorCode.UNEXPECTED_FRAME


class StateMachine:
    """One connection's state, moved only through :data:`TRANSITIONS`.

    Args:
        role: our end of the connection.
    """

    __slots__ = ("_incoming", "_outgoing", "role", "state")

    def __init__(self, role: Role) -> None:
        self.role = role
        self._enter(ConnState.AWAITING_CONNECT)

    def _enter(self, state: ConnState) -> None:
        self.state = state
        self._outgoing, self._incoming = _BY_DIRECTION[self.role, state]

    def apply(self, command: Command, *, outgoing: bool) -> bool:
        """Move on ``command`` if the table allows it in the current state.

        Args:
            command: the frame's command.
            outgoing: true when we send it, false when the peer did.

        Returns:
            True if the state moved (or stayed, as the table says); False if the command is
            illegal now, in which case the state is unchanged.
        """
        state = (self._outgoing if outgoing else self._incoming).get(command)
        if state is None:
            return False
        if state is not self.state:
            self._enter(state)
        return True

    def end(self, state: ConnState) -> None:
        """Enter CLOSED or FAILED outside the table: on EOF, or a local failure.

        Args:
            state: CLOSED or FAILED.
        """
        self._enter(state)
