"""Running a guide's Python snippets as printed, in order, against one real broker.

A guide addresses a broker on the default ports; the snippets run with those replaced by
the test broker's (stomp.py's host and port pair included) and nothing else changed. A
snippet that is a pytest module (it defines a ``test_`` function) runs under pytest in a
subprocess, as a reader would run it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from buzon.testing import broker_sync

DOCS = Path(__file__).resolve().parents[2] / "docs"
SNIPPET = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def snippets(guide: Path) -> list[str]:
    return SNIPPET.findall(guide.read_text(encoding="utf-8"))


def run_every_snippet(guide: Path, directory: Path) -> int:
    """Run the guide's snippets; return how many ran."""
    found = snippets(guide)
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
                run_as_pytest_module(code, directory)
            else:
                exec(compile(code, f"{guide.name}, snippet {number}", "exec"), {})  # noqa: S102
    return len(found)


def run_as_pytest_module(code: str, directory: Path) -> None:
    module = directory / "test_from_the_guide.py"
    module.write_text(code, encoding="utf-8")
    # Hypothesis' and Schemathesis' pytest plugins come with this suite's test extras, not
    # with a reader's project: loading them (importing Hypothesis) cost 2.5 s of each run.
    # Every other plugin still loads by its entry point, buzon's (the fixture) included.
    others = ("-p", "no:hypothesispytest", "-p", "no:schemathesis")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *others, str(module)],
        capture_output=True,
        text=True,
        cwd=directory,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
