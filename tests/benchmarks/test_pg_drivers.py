"""The PostgreSQL driver comparison behind the cluster store's choice of driver: both drivers
run every path on a real server, every run is checked, and the table is made of the runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.postgres_server import PostgresServer

BENCHMARKS = Path(__file__).parents[2] / "benchmarks"


async def test_both_drivers_run_each_path_and_the_table_shows_their_medians(
    postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import pg_drivers

    paths = pg_drivers.QUICK_PATHS
    # measure() checks each run: rows inserted, each message claimed once, acks emptied it
    samples = await pg_drivers.measure(postgres, 1024, 1, paths)
    assert sorted((s.driver, s.path, s.batch) for s in samples) == sorted(
        (driver, path, sizes[0])
        for driver in ("asyncpg", "psycopg")
        for path, sizes in paths.items()
    )
    assert all(s.messages == 1024 and s.seconds > 0 and s.client_cpu_s > 0 for s in samples)

    lines = pg_drivers.table(samples, paths)
    by_path = {line.split("|")[1].strip(): line for line in lines[2:]}
    assert list(by_path) == list(paths)
    claim = next(s for s in samples if (s.driver, s.path) == ("psycopg", "claim"))
    cells = [cell.strip() for cell in by_path["claim"].strip("|").split("|")]
    assert cells[1] == str(paths["claim"][0])
    assert cells[3] == f"{claim.messages / claim.seconds:,.0f}"
