"""The sans-IO STOMP 1.2 layer: frames, parser, serialiser, events and connection state.

Imports only the standard library and :mod:`buzon.errors`; no sockets, no asyncio.
"""

from buzon.heartbeats import HeartbeatTimer
from buzon.stomp.connection import StompConnection
from buzon.stomp.events import (
    Abort,
    Ack,
    Begin,
    Commit,
    Connect,
    Connected,
    Disconnect,
    Error,
    Event,
    Message,
    Nack,
    Receipt,
    Send,
    Subscribe,
    Unsubscribe,
)
from buzon.stomp.frame import HEARTBEAT, NEED_DATA, Command, Frame, Headers, Heartbeat, NeedData
from buzon.stomp.heartbeat import negotiate, parse_heart_beat
from buzon.stomp.incoming import header
from buzon.stomp.limits import DEFAULT_LIMITS, PRE_LOGIN_LIMITS, ParserLimits
from buzon.stomp.parser import FrameParser
from buzon.stomp.serializer import serialize
from buzon.stomp.states import TRANSITIONS, ConnState, Role

__all__ = [
    "DEFAULT_LIMITS",
    "HEARTBEAT",
    "NEED_DATA",
    "PRE_LOGIN_LIMITS",
    "TRANSITIONS",
    "Abort",
    "Ack",
    "Begin",
    "Command",
    "Commit",
    "ConnState",
    "Connect",
    "Connected",
    "Disconnect",
    "Error",
    "Event",
    "Frame",
    "FrameParser",
    "Headers",
    "Heartbeat",
    "HeartbeatTimer",
    "Message",
    "Nack",
    "NeedData",
    "ParserLimits",
    "Receipt",
    "Role",
    "Send",
    "StompConnection",
    "Subscribe",
    "Unsubscribe",
    "header",
    "negotiate",
    "parse_heart_beat",
    "serialize",
]
