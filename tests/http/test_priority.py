"""Message priority over HTTP: the ``priority`` field of a JSON publish."""

from __future__ import annotations

import httpx

from buzon.errors import ErrorCode
from tests.http.helpers import Auth, create, error_of, inspect, pull


async def test_pulls_take_higher_priorities_first_and_fifo_within_one(
    http: httpx.AsyncClient, admin: Auth
) -> None:
    await create(http, admin, "queues", "jobs")
    for number, priority in [(1, None), (2, 0), (3, 9), (4, None), (5, 9), (6, 7)]:
        body: dict[str, object] = {"body": str(number)}
        if priority is not None:
            body["priority"] = priority
        response = await http.post("/queues/jobs/messages", json=body, headers=admin)
        assert response.status_code == 201, response.text
    pulled = await pull(http, admin, "jobs", max=6)
    assert [m["body"] for m in pulled] == ["3", "5", "6", "1", "4", "2"]
    assert pulled[0]["headers"] == {"priority": "9"}  # consumers see what was asked


async def test_a_priority_header_out_of_range_is_refused_naming_it(
    http: httpx.AsyncClient, admin: Auth
) -> None:
    await create(http, admin, "queues", "jobs")
    for value in ("10", "-1", "", "urgent"):
        response = await http.post(
            "/queues/jobs/messages",
            json={"body": "x", "headers": {"priority": value}},
            headers=admin,
        )
        assert "priority" in error_of(response, ErrorCode.BAD_HEADER_VALUE)
    assert (await inspect(http, admin, "queues", "jobs"))["published"] == 0
