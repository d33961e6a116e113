"""Every Python snippet of ``docs/sdk.md`` runs as printed, in order, against a real broker.

The guide addresses a broker on the default ports; the snippets run with those replaced by
the test broker's, and nothing else changed. A snippet that is a pytest module (it defines
a ``test_`` function) runs under pytest in a subprocess, as a reader would run it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from buzon.testing import broker_sync

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "sdk.md"
SNIPPET = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def snippets() -> list[str]:
    return SNIPPET.findall(GUIDE.read_text(encoding="utf-8"))


def run_as_pytest_module(code: str, directory: Path) -> None:
    module = directory / "test_from_the_guide.py"
    module.write_text(code, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(module)],
        capture_output=True,
        text=True,
        cwd=directory,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_snippet_of_the_sdk_guide_runs(tmp_path: Path) -> None:
    found = snippets()
    assert len(found) >= 12
    with broker_sync() as running:
        ports = {
            "127.0.0.1:61613": f"127.0.0.1:{running.server.stomp_port}",
            "127.0.0.1:8180": f"127.0.0.1:{running.server.http_port}",
        }
        for number, snippet in enumerate(found, 1):
            code = snippet
            for default, actual in ports.items():
                code = code.replace(default, actual)
            if "def test_" in code:
                run_as_pytest_module(code, tmp_path)
            else:
                exec(compile(code, f"{GUIDE.name}, snippet {number}", "exec"), {})  # noqa: S102
