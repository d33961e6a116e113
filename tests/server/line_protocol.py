"""A second protocol on the connection chassis, for its tests: lines of text.

It is what the chassis promises a protocol that is not STOMP: a login verified off the
event loop, several engine sessions on one connection (like AMQP channels), deliveries
batched by the chassis, errors that end the connection, a goodbye.

    LOGIN <user> <password>        OK, then two engine sessions ("channels" 0 and 1)
    SUB <channel> <destination>    a subscription on that channel's session
    ECHO <text>                    <text>
    BYE                            BYE, and the connection closes

Deliveries arrive as ``MSG <channel> <body>``; an error ends the connection with
``ERR <code>``.
"""

from __future__ import annotations

from collections.abc import Iterable

from buzon.auth import Principal
from buzon.broker import AckMode, Session
from buzon.broker import Message as BrokerMessage
from buzon.errors import BrokerError, BuzonError, ErrorCode
from buzon.server.close_reasons import CloseReason
from buzon.server.connection import Connection
from buzon.server.read_pauses import LOGIN

CHANNELS = 2


class LineChannel:
    """One engine session of a line connection, and its delivery sink."""

    def __init__(self, adapter: LineAdapter, number: int) -> None:
        self.adapter = adapter
        self.number = number

    def deliver(
        self, subscription_id: str, message: BrokerMessage, ack_id: str | None, redelivered: bool
    ) -> None:
        self.adapter.write(f"MSG {self.number} {message.body.decode()}")

    def close_session(self, code: ErrorCode, detail: str) -> None:
        self.adapter.connection.fail(code, detail)


class LineAdapter:
    """The line protocol's side of one connection.

    Attributes:
        units_per_turn: how many lines each :meth:`process` call handled.
    """

    def __init__(self, connection: Connection[LineAdapter]) -> None:
        self.connection = connection
        self.units_per_turn: list[int] = []
        self._input = bytearray()
        self._output = bytearray()
        self._principal: Principal | None = None
        self._sessions: list[Session] = []
        self._logging_in = False
        self._ended = False
        self._failed = False
        self._eof = False

    def write(self, line: str) -> None:
        data = line.encode() + b"\n"
        self._output += data
        self.connection.queued(len(data))

    @property
    def protocol(self) -> str:
        return "line/1"

    @property
    def principal(self) -> Principal | None:
        return self._principal

    def sessions(self) -> Iterable[Session]:
        return self._sessions

    def receive(self, data: bytes, now: float) -> None:
        if not self._ended:
            self._input += data

    def receive_eof(self) -> None:
        self._eof = True

    def process(self, budget: int | None) -> bool:
        handled = 0
        try:
            while not self._ended and not self._logging_in and b"\n" in self._input:
                if budget is not None and handled == budget:
                    return True
                line, _, rest = bytes(self._input).partition(b"\n")
                self._input[:] = rest
                handled += 1
                self._handle(line.decode().split(" ", 2))
        except BuzonError as exc:
            self.connection.failure = exc.code
            self.write_error(exc.code, exc.detail)
        finally:
            self.units_per_turn.append(handled)
        return False

    def _handle(self, words: list[str]) -> None:
        command = words[0]
        if self._principal is None:
            if command != "LOGIN" or len(words) != 3:
                raise BrokerError(ErrorCode.NOT_CONNECTED, "LOGIN first")
            self._logging_in = True
            check = self.connection.ctx.accounts.authenticate(
                words[1], words[2], self.connection.peer_host
            )
            self.connection.verify(LOGIN, check, self._logged_in, self._refused)
        elif command == "SUB":
            self._sessions[int(words[1])].subscribe(f"s{words[1]}", words[2], AckMode.AUTO)
        elif command == "ECHO":
            self.write(words[1])
        elif command == "BYE":
            self.connection.close_reason = CloseReason.CLIENT_DISCONNECT
            self.write("BYE")
            self._ended = True
        else:
            raise BrokerError(ErrorCode.UNKNOWN_COMMAND, command)

    def _logged_in(self, principal: Principal) -> None:
        self._logging_in = False
        self._principal = principal
        broker = self.connection.ctx.broker
        self._sessions = [
            broker.open_session(LineChannel(self, n), principal) for n in range(CHANNELS)
        ]
        self.write("OK")
        self.connection.established()

    def _refused(self, exc: BuzonError) -> None:
        self.connection.fail(exc.code, exc.detail)

    def take_published(self) -> bool:
        return False

    def data_to_send(self) -> bytes:
        data = bytes(self._output)
        self._output.clear()
        return data

    def set_writable(self, writable: bool) -> None:
        for session in self._sessions:
            session.set_writable(writable)

    def write_error(self, code: ErrorCode, detail: str) -> None:
        self.write(f"ERR {code.name}")
        self._ended = self._failed = True

    def next_deadline(self) -> float | None:
        return None

    def on_deadline(self, now: float) -> None:
        raise AssertionError("no heart-beats in this protocol")

    def close_expected(self) -> bool:
        return self._ended or self._eof

    @property
    def ended(self) -> bool:
        return self._ended

    @property
    def failed(self) -> bool:
        return self._failed

    @property
    def peer_closed(self) -> bool:
        return self._eof

    def owes_confirms(self) -> bool:
        return False

    def end(self) -> None:
        for session in self._sessions:
            session.close()
