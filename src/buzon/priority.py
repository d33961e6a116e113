"""Message priority: the levels a publisher may ask for, and reading one from a header.

A message's ``priority`` is an integer from 0 (lowest) to 9 (highest); without one it is
4. Among waiting messages of a queue a higher priority is handed out first, and messages
of one priority keep their publish order (see ``broker/leveled_backlog``).
"""

from __future__ import annotations

DEFAULT_PRIORITY = 4
"""The priority of a message that asked for none."""
HIGHEST_PRIORITY = 9
"""Priorities run from 0 to this."""
PRIORITY_HEADER = "priority"
"""The SEND header (and HTTP JSON field) that sets a message's priority."""


def parse_priority(text: str) -> int:
    """The priority a header value asks for.

    Raises:
        ValueError: ``text`` is not one digit from 0 to 9 (negative, empty, 10, ...).
    """
    if len(text) != 1 or not ("0" <= text <= "9"):
        raise ValueError(f"{PRIORITY_HEADER} must be an integer from 0 to {HIGHEST_PRIORITY}")
    return ord(text) - 48
