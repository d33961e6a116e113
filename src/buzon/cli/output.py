"""What commands print: rich tables for people, ``--json`` for scripts.

JSON output is the client's dataclasses with their field names (the API's names), times
in ISO 8601 UTC, and nothing else on stdout, so ``buzon queue list --json | jq`` works.
Tables go through rich; when stdout is not a terminal it has no width, so a wide one is
assumed rather than folding cells at 80 columns in the middle of a name.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TypeVar

from rich.console import Console
from rich.table import Table
from rich.text import Text

_T = TypeVar("_T")
PIPE_WIDTH = 200

Column = tuple[str, Callable[[_T], object]]
"""A table column: its title and how to get a row's value."""


def _console() -> Console:
    width = None if sys.stdout.isatty() else PIPE_WIDTH
    return Console(highlight=False, width=width)


def jsonable(value: object) -> object:
    """``value`` as plain JSON types: dataclasses become objects, times ISO 8601 text."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    return value


def print_json(value: object) -> None:
    """Print ``value`` as indented JSON on stdout."""
    print(json.dumps(jsonable(value), indent=2))


def cell(value: object) -> str:
    """One value as table text: times in UTC to the second, booleans as yes/no.

    Tables show it as plain text, never as rich markup, whatever brackets it holds.
    """
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    if isinstance(value, enum.Enum):
        return str(value.value)
    return str(value)


def print_table(rows: Sequence[_T], columns: Sequence[Column[_T]], *, empty: str) -> None:
    """Print ``rows`` as a table with ``columns``, or the line ``empty`` when there are none."""
    if not rows:
        print(empty)
        return
    table = Table(*(title for title, _ in columns))
    for row in rows:
        table.add_row(*(Text(cell(get(row))) for _, get in columns))
    _console().print(table)


def print_fields(pairs: Sequence[tuple[str, object]]) -> None:
    """Print one record as a two-column table of field names and values."""
    table = Table(show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for name, value in pairs:
        table.add_row(name, Text(cell(value)))
    _console().print(table)
