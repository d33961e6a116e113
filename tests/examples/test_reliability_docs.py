"""Every Python snippet of ``docs/reliability-patterns.md`` runs as printed, in order,
against a real broker.

As for ``docs/sdk.md`` (``test_docs.py``): the guide addresses a broker on the default
ports, the snippets run with those replaced by the test broker's (stomp.py's host and port
pair included) and nothing else changed; a snippet that is a pytest module runs under
pytest in a subprocess.
"""

from __future__ import annotations

import re
from pathlib import Path

from buzon.testing import broker_sync
from tests.examples.test_docs import run_as_pytest_module

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "reliability-patterns.md"
SNIPPET = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def snippets() -> list[str]:
    return SNIPPET.findall(GUIDE.read_text(encoding="utf-8"))


def test_every_snippet_of_the_reliability_guide_runs(tmp_path: Path) -> None:
    found = snippets()
    assert len(found) >= 14
    with broker_sync() as running:
        stomp_port, http_port = running.server.stomp_port, running.server.http_port
        ports = {
            "127.0.0.1:61613": f"127.0.0.1:{stomp_port}",
            '("127.0.0.1", 61613)': f'("127.0.0.1", {stomp_port})',
            "127.0.0.1:8180": f"127.0.0.1:{http_port}",
        }
        for number, snippet in enumerate(found, 1):
            code = snippet
            for default, actual in ports.items():
                code = code.replace(default, actual)
            if "def test_" in code:
                run_as_pytest_module(code, tmp_path)
            else:
                exec(compile(code, f"{GUIDE.name}, snippet {number}", "exec"), {})  # noqa: S102
