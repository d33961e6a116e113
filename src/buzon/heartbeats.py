"""Heart-beat deadlines of one connection, whatever its protocol (STOMP's heart-beats,
AMQP's heartbeat frames).

The deadlines are driven by an explicit ``now`` so tests move a number instead of sleeping.
Our own output is not timestamped (sending takes no clock), only flagged: the timer checks
at least every half interval, and counts output seen since the previous check as having
happened at that check, the earliest it can have been. So a beat is never late, and an
idle connection sends one beat per interval.
"""

from __future__ import annotations

import enum


class TimerAction(enum.Enum):
    """What :meth:`HeartbeatTimer.poll` asks the connection to do."""

    NOTHING = "nothing"
    SEND_HEARTBEAT = "send-heartbeat"
    TIMED_OUT = "timed-out"


class HeartbeatTimer:
    """Heart-beat deadlines for one connection, driven by an explicit clock.

    Args:
        send_interval: seconds between our beats (0 = we do not beat).
        receive_timeout: seconds of silence after which the peer counts as gone (the
            negotiated receive interval times a grace factor; 0 = never).
        now: the current time; both deadlines start from it.

    Attributes:
        last_received: when the peer was last heard from; the connection updates it.
    """

    __slots__ = ("_checked", "_quiet_since", "last_received", "receive_timeout", "send_interval")

    def __init__(self, send_interval: float, receive_timeout: float, now: float) -> None:
        self.send_interval = send_interval
        self.receive_timeout = receive_timeout
        self.last_received = now
        self._checked = now  # when poll() last ran
        self._quiet_since = now  # earliest time our last output can have been

    def deadline(self) -> float | None:
        """The next time :meth:`poll` should run, or None when both directions are off."""
        times: list[float] = []
        if self.send_interval:
            times.append(self._quiet_since + self.send_interval)
            times.append(self._checked + self.send_interval / 2)
        if self.receive_timeout:
            times.append(self.last_received + self.receive_timeout)
        return min(times) if times else None

    def poll(self, now: float, wrote: bool) -> TimerAction:
        """Decide what is due at ``now``.

        Args:
            now: the current time.
            wrote: whether we queued any output since the previous poll.

        Returns:
            TIMED_OUT if the peer has been silent too long, SEND_HEARTBEAT if we have been
            (the caller sends an EOL now), else NOTHING.
        """
        if self.receive_timeout and now >= self.last_received + self.receive_timeout:
            return TimerAction.TIMED_OUT
        if not self.send_interval:
            return TimerAction.NOTHING
        if wrote:
            self._quiet_since = self._checked
        self._checked = now
        if now >= self._quiet_since + self.send_interval:
            self._quiet_since = now
            return TimerAction.SEND_HEARTBEAT
        return TimerAction.NOTHING
