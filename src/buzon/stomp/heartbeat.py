"""STOMP 1.2 heart-beats: the header and the negotiation (the deadlines, which AMQP's
heartbeats share, are :mod:`buzon.heartbeats`).

Each side announces ``cx,cy`` in ms: it can send a beat every cx, and wants one every cy
(0 = never). The sender's interval is the larger of its cx and the peer's cy when both are
non-zero, and likewise for what it should receive.
"""

from __future__ import annotations

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
