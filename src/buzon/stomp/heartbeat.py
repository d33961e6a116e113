"""STOMP 1.2 heart-beats: the header, the negotiation, and the deadlines.

Each side announces ``cx,cy`` in ms: it can send a beat every cx, and wants one every cy
(0 = never). The sender's interval is the larger of its cx and the peer's cy when both are
non-zero, and likewise for what it should receive.

The deadlines are driven by an explicit ``now`` so tests move a number instead of sleeping.
Our own output is not timestamped (sending takes no clock), only flagged: the timer checks
at least every half interval, and counts output seen since the previous check as having
happened at that check, the earliest it can have been. So a beat is never late, and an
idle connection sends one beat per interval.
"""

from __future__ import annotations

import enum

from buzon.errors import ErrorCode, FrameError


def parse_heart_beat(value: str | None) -> tuple[int, int]:
    """Parse a ``heart-beat`` header strictly.

    Args:
        value: the header value, or None when absent.

    Returns:
        ``(cx, cy)`` in ms; ``(0, 0)`` when absent.

    Raises:
        FrameError: BAD_HEADER_VALUE unless it is two comma-separated ASCII-digit numbers
            of at most 9 digits each (11 days in ms; longer is a mistake or an attack on
            ``int``).
    """
    if value is None:
        return (0, 0)
    send, comma, receive = value.partition(",")
    if not (comma and _is_small_number(send) and _is_small_number(receive)):
        raise FrameError(ErrorCode.BAD_HEADER_VALUE, f"heart-beat {value[:40]!r}")
    return (int(send), int(receive))


def _is_small_number(text: str) -> bool:
    return 0 < len(text) <= 9 and text.isascii() and text.isdigit()


def negotiate_ms(ours: tuple[int, int], theirs: tuple[int, int]) -> tuple[int, int]:
    """:func:`negotiate` in whole milliseconds (what the ``heart-beat`` header carries)."""
    send = max(ours[0], theirs[1]) if ours[0] and theirs[1] else 0
    receive = max(theirs[0], ours[1]) if theirs[0] and ours[1] else 0
    return (send, receive)


def negotiate(ours: tuple[int, int], theirs: tuple[int, int]) -> tuple[float, float]:
    """Agree on heart-beat intervals.

    Args:
        ours: our ``(cx, cy)`` in ms.
        theirs: the peer's ``(cx, cy)`` in ms.

    Returns:
        ``(send, receive)`` in seconds: we beat every ``send``, and expect something from
        the peer every ``receive``; 0 turns either off.
    """
    send, receive = negotiate_ms(ours, theirs)
    return (send / 1000, receive / 1000)


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
