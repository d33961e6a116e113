"""Every size limit of the frame parser, with its number and the reason for it.

The parser refuses a frame as soon as the bytes buffered prove a limit is broken, so a peer
can never make it hold more than about ``max_frame`` plus one read. Two sets exist: a small
one for the bytes a peer sends before it has logged in (anyone on the network can send
those), and the full one afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass

KIB = 1024
MIB = 1024 * KIB


@dataclass(frozen=True, slots=True)
class ParserLimits:
    """Size limits for one parser; all sizes in bytes.

    A line's length counts every byte before its ``\\n``, a ``\\r`` included. The header
    block is the header lines with their EOLs, without the command line and the blank line.
    A frame is everything from the first byte of its command to its closing NUL.

    Raises:
        ValueError: a limit is negative or zero, or ``max_frame`` cannot hold a frame with
            a maximal command line and header block.
    """

    max_command_line: int = 32
    """The longest command (UNSUBSCRIBE) is 11 bytes; 32 leaves room for a ``\\r`` and
    rejects non-STOMP traffic (TLS, HTTP) within one small read."""

    max_header_line: int = 8 * KIB
    """8 KiB per line, the default of nginx (``large_client_header_buffers``) and Apache
    (``LimitRequestFieldSize``); long enough for bearer tokens and trace headers."""

    max_headers: int = 64
    """Real clients send fewer than 20 headers; 64 leaves room for application headers
    while bounding the per-frame work of a header flood."""

    max_header_block: int = 32 * KIB
    """h11 refuses HTTP heads over 16 KiB; 32 KiB allows a few long lines, and bounds the
    per-frame decoding work independently of the body."""

    max_body: int = 16 * MIB
    """16 MiB fits documents and small files; larger payloads belong in object storage with
    a reference in the message, and a few hundred peers cannot exhaust memory with it."""

    max_frame: int = 16 * MIB + 64 * KIB
    """Room for a maximal body plus a maximal header block and command line."""

    def __post_init__(self) -> None:
        if min(self.max_command_line, self.max_header_line, self.max_headers) < 1:
            raise ValueError("line and header limits must be at least 1")
        if self.max_header_block < 0 or self.max_body < 0:
            raise ValueError("size limits cannot be negative")
        # command line + its \n, header block, the blank line (at most \r\n), and the NUL:
        # the parser relies on a frame's head always fitting, so only bodies break max_frame.
        if self.max_frame < self.max_command_line + self.max_header_block + 4:
            raise ValueError("max_frame must hold the longest command line and header block")


DEFAULT_LIMITS = ParserLimits()
"""Limits once the peer has logged in."""

PRE_LOGIN_LIMITS = ParserLimits(
    # CONNECT carries about six short headers; 32 tolerates vendor extras.
    max_headers=32,
    # A passcode may be a bearer token (a JWT is usually 1-2 KiB), so a line may use the
    # whole block.
    max_header_line=4 * KIB,
    max_header_block=4 * KIB,
    # CONNECT has no body; 1 KiB tolerates clients that send a stray one, no more.
    max_body=1 * KIB,
    max_frame=8 * KIB,
)
"""Limits until CONNECT is accepted: an unauthenticated peer gets a few KiB, not 16 MiB."""
