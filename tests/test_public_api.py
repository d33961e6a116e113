"""The top-level package: its public names, and that importing it stays light."""

from __future__ import annotations

import subprocess
import sys

import buzon


def test_public_names_are_pinned() -> None:
    assert buzon.__all__ == ["BuzonError", "ErrorCode", "__version__"]
    assert issubclass(buzon.BuzonError, Exception)


def test_importing_buzon_loads_neither_the_server_nor_asyncio() -> None:
    code = (
        "import sys, buzon\n"
        "loaded = [m for m in ('asyncio', 'buzon.server', 'buzon.broker', 'argon2')"
        " if m in sys.modules]\n"
        "print(','.join(loaded))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    assert result.stdout.strip() == ""
