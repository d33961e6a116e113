"""Every Python snippet of ``docs/reliability-patterns.md`` runs as printed, in order,
against a real broker (see ``guides``)."""

from __future__ import annotations

from pathlib import Path

from tests.examples.guides import DOCS, run_every_snippet


def test_every_snippet_of_the_reliability_guide_runs(tmp_path: Path) -> None:
    assert run_every_snippet(DOCS / "reliability-patterns.md", tmp_path) >= 14
