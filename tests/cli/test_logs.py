"""The log formats of ``buzon serve``: every event on one line, its fields kept apart."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from buzon.cli.logs import JsonFormatter, TextFormatter


@pytest.fixture
def output() -> Iterator[tuple[logging.Logger, logging.StreamHandler[io.StringIO]]]:
    logger = logging.getLogger("buzon.test-logs")
    handler = logging.StreamHandler(io.StringIO())
    logger.addHandler(handler)
    logger.propagate = False
    yield logger, handler
    logger.removeHandler(handler)


def test_json_keeps_a_traceback_on_the_event_line(
    output: tuple[logging.Logger, logging.StreamHandler[io.StringIO]],
) -> None:
    logger, handler = output
    handler.setFormatter(JsonFormatter())
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("job failed", extra={"conn": "c9", "level": "not the level"})
    (line,) = handler.stream.getvalue().splitlines()
    entry = json.loads(line)
    assert list(entry)[:4] == ["ts", "level", "logger", "message"]
    assert entry["level"] == "ERROR"  # a field cannot hide the record's own keys
    assert entry["logger"] == "buzon.test-logs"
    assert entry["message"] == "job failed"
    assert entry["conn"] == "c9"
    assert "ValueError: boom" in entry["exc"]


def test_text_appends_fields_and_quotes_those_with_spaces(
    output: tuple[logging.Logger, logging.StreamHandler[io.StringIO]],
) -> None:
    logger, handler = output
    handler.setFormatter(TextFormatter())
    logger.warning("connection closed", extra={"conn": "c3", "user": "ana maría", "n": 2})
    logger.warning("plain %s", "words")
    first, second = handler.stream.getvalue().splitlines()
    assert first.endswith(' WARNING buzon.test-logs connection closed conn=c3 user="ana maría" n=2')
    assert second.endswith(" WARNING buzon.test-logs plain words")
