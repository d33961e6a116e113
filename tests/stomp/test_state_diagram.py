"""docs/stomp-states.md is what scripts/state_diagram.py makes of TRANSITIONS, so the diagram
a reader sees is the table the code runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
SCRIPT = ROOT / "scripts" / "state_diagram.py"
DIAGRAM = ROOT / "docs" / "stomp-states.md"


def check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--check", "--output", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_committed_diagram_matches_the_table() -> None:
    result = check(DIAGRAM)
    assert result.returncode == 0, result.stderr
    text = DIAGRAM.read_text(encoding="utf-8")
    assert "CONNECTED --> DISCONNECTING: receives DISCONNECT" in text  # the server's side
    assert "CONNECTED --> DISCONNECTING: sends DISCONNECT" in text  # the client's side


def test_a_diagram_that_drifted_from_the_table_is_caught(tmp_path: Path) -> None:
    drifted = tmp_path / "stomp-states.md"
    drifted.write_text(
        DIAGRAM.read_text(encoding="utf-8").replace(
            "    DISCONNECTING --> FAILED: sends ERROR\n", ""
        ),
        encoding="utf-8",
    )
    result = check(drifted)
    assert result.returncode == 1
    assert "run python scripts/state_diagram.py" in result.stderr
