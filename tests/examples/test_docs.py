"""Every Python snippet of ``docs/sdk.md`` runs as printed, in order, against a real broker
(see ``guides``)."""

from __future__ import annotations

from pathlib import Path

from tests.examples.guides import DOCS, run_every_snippet


def test_every_snippet_of_the_sdk_guide_runs(tmp_path: Path) -> None:
    assert run_every_snippet(DOCS / "sdk.md", tmp_path) >= 12
