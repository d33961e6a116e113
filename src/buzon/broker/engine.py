"""Broker: owns the destinations, the queued-bytes gauge and the open sessions.

The engine is synchronous and single-threaded by design: the server calls it from its event
loop, every command runs to completion, and deliveries are handed to each session's sink.
It imports nothing but the standard library and :mod:`buzon.errors`, so the same engine
serves STOMP over TCP, STOMP over WebSocket, HTTP and in-process tests.
"""

from __future__ import annotations

from collections.abc import Callable

from buzon.broker.config import BrokerConfig
from buzon.broker.destinations import Destinations
from buzon.broker.flow import QueuedBytes
from buzon.broker.message import DeliverySink
from buzon.broker.session import Session
from buzon.broker.stats import BrokerStats
from buzon.errors import BrokerError, ErrorCode

DEFAULT_CONFIG = BrokerConfig()


class Broker:
    """The message engine.

    Args:
        config: limits and defaults; see :class:`BrokerConfig`.
    """

    def __init__(self, config: BrokerConfig = DEFAULT_CONFIG) -> None:
        self.config = config
        self._gauge = QueuedBytes(config.queue_high_water_bytes, config.queue_low_water_bytes)
        self._destinations = Destinations(config, self._gauge)
        self._sessions: dict[str, Session] = {}
        self._last_session = 0
        self._closed = False

    def open_session(self, sink: DeliverySink, principal: str) -> Session:
        """Start a session for an authenticated client.

        Args:
            sink: receives the session's deliveries (and the engine's request to end it).
            principal: who logged in.

        Returns:
            the new session, writable.

        Raises:
            BrokerError: ``SERVER_SHUTDOWN`` after :meth:`close`.
        """
        if self._closed:
            raise BrokerError(ErrorCode.SERVER_SHUTDOWN)
        self._last_session += 1
        session = Session(
            f"session-{self._last_session}",
            principal,
            sink,
            self._destinations,
            self.config,
            self._forget,
        )
        self._sessions[session.id] = session
        return session

    @property
    def over_high_water(self) -> bool:
        """True while the queues hold more body bytes than ``queue_high_water_bytes``:
        the server should stop reading from publishers."""
        return self._gauge.over_high_water

    def call_when_below_low_water(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once when the queued bytes fall under ``queue_low_water_bytes``.

        Args:
            callback: called synchronously from the engine command that settles enough
                messages, or right away if the total is already under the mark. It must
                not raise.
        """
        self._gauge.call_when_below_low_water(callback)

    def statistics(self) -> BrokerStats:
        """A snapshot of every queue, channel and session, and the broker-wide totals."""
        destinations = self._destinations
        queues = tuple(
            destinations.queues[name].statistics() for name in sorted(destinations.queues)
        )
        channels = tuple(
            destinations.channels[name].statistics() for name in sorted(destinations.channels)
        )
        return BrokerStats(
            queues=queues,
            channels=channels,
            sessions=tuple(session.statistics() for session in self._sessions.values()),
            queued_bytes=self._gauge.total,
            messages_published=sum(q.published for q in queues)
            + sum(c.published for c in channels),
            messages_delivered=sum(q.delivered for q in queues)
            + sum(c.delivered for c in channels),
        )

    def close(self) -> None:
        """Close every session without calling any sink; later sessions are refused."""
        self._closed = True
        sessions = list(self._sessions.values())
        # Not writable first, so messages returned by one closing session are not
        # delivered to another that is about to close too.
        for session in sessions:
            session.set_writable(False)
        for session in sessions:
            session.close()

    def _forget(self, session: Session) -> None:
        del self._sessions[session.id]
