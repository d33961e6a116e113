"""Scrape a real broker's ``/metrics`` and read values out of the exposition text."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.http.helpers import Auth
from tests.server.harness import TIMEOUT

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
"""Every sample of one scrape: (sample name, labels) -> value."""


async def scrape(port: int, auth: Auth) -> Samples:
    """GET /metrics (asserting 200 and the text format) and parse it."""
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        response = await client.get(f"http://127.0.0.1:{port}/metrics", headers=auth)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, metric: str, /, **labels: str) -> float | None:
    """The value of sample ``metric`` with exactly ``labels``, or None when absent."""
    return samples.get((metric, frozenset(labels.items())))


async def scrape_until(
    port: int, auth: Auth, done: Callable[[Samples], bool], within: float = TIMEOUT
) -> Samples:
    """Scrape until ``done`` holds (the broker records a close once the socket is gone)."""
    async with asyncio.timeout(within):
        while True:
            samples = await scrape(port, auth)
            if done(samples):
                return samples
            await asyncio.sleep(0.02)
