"""Schemathesis against the broker's own OpenAPI document, fetched from a live server.

For every operation it generates requests that fit the document (positive) and requests
that break it (negative), sends them over a real socket, and checks what any client may
rely on: no 5xx, and every error is the API's JSON error shape with the status its code
is registered with. The run is deterministic (``derandomize``) and bounded (``MAX_EXAMPLES``
per operation and mode), so CI sees the same requests every time.

Hypothesis runs in a worker thread with schemathesis' blocking transport, while the broker
serves on the test's event loop.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import APIOperation, Case, GenerationMode

from buzon.auth import SecretHasher
from buzon.errors import ErrorCode
from tests.http.helpers import Auth, admin_auth, api, login, new_user
from tests.server.harness import running_server

MAX_EXAMPLES = 12
# A long poll on an empty queue would only spend the time budget waiting.
MAX_WAIT_MS = 50
# The queue and channel that half the examples on ``{name}`` address.
TARGET = "fuzz"
# DELETE /sessions/current revokes the token it carries: each of its examples gets its own.
LOGOUT = "DELETE /api/v1/sessions/current"
SPARE_TOKENS = 2 * MAX_EXAMPLES + 8

Operation = APIOperation[Any, Any, Any, Any]


@dataclass
class Findings:
    """What the run saw: operations exercised, statuses per operation, and what was wrong."""

    operations: set[str] = field(default_factory=set)
    statuses: dict[str, set[int]] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)

    def record(self, case: Case[Operation], status: int, problem: str | None) -> None:
        """Note one response to ``case``, and what was wrong with it."""
        label = case.operation.label
        self.statuses.setdefault(label, set()).add(status)
        if problem is not None:
            self.problems.setdefault(f"{label} -> {status}: {problem}", case.as_curl_command())


def problem_with(status: int, content_type: str | None, content: bytes) -> str | None:
    """What is wrong with a response, or None when a client can rely on it."""
    if status >= 500:
        return "server error"
    if status < 400:
        return None
    if content_type != "application/json":
        return f"error with content type {content_type!r}"
    try:
        body: Any = json.loads(content)
    except ValueError:
        return "error body is not JSON"
    error = body.get("error") if isinstance(body, dict) and len(body) == 1 else None
    if not isinstance(error, dict) or sorted(error) != ["code", "detail", "message"]:
        return f"error body is not {{error: {{code, message, detail}}}}: {body!r:.200}"
    if not all(isinstance(value, str) for value in error.values()):
        return f"error fields are not strings: {error!r:.200}"
    code = ErrorCode.__members__.get(error["code"])
    if code is None or code.message != error["message"]:
        return f"unknown code or wrong message: {error!r:.200}"
    if code.http_status != status:
        return f"{code.name} is registered as {code.http_status}"
    return None


def fuzz(
    spec: dict[str, Any], base_url: str, auth: Auth, owner: Auth, spare: list[Auth]
) -> Findings:
    """Run every operation of ``spec`` in both generation modes against ``base_url``.

    Half the examples of an operation on ``{name}`` name the queue and channel ``TARGET``,
    which ``owner`` (re)creates before each operation, so publishing, pulling and settling
    get past "not found" and their bodies and headers are fuzzed too.
    """
    findings = Findings()
    schema = schemathesis.openapi.from_dict(spec)
    operations = [schema[path][method] for path in schema for method in schema[path]]
    with httpx.Client(base_url=f"{base_url}/api/v1", headers=owner) as setup:
        for operation in operations:
            findings.operations.add(operation.label)
            for kind in ("queues", "channels"):
                response = setup.post(f"/{kind}", json={"name": TARGET})
                assert response.status_code in (201, 409), response.text
            for mode in _modes(operation):
                strategy = operation.as_strategy(generation_mode=mode)
                if "name" in operation.path_parameters:
                    strategy |= operation.as_strategy(
                        generation_mode=mode, path_parameters={"name": TARGET}
                    )

                @settings(
                    max_examples=MAX_EXAMPLES,
                    derandomize=True,
                    database=None,
                    deadline=None,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=list(HealthCheck),
                )
                @given(case=strategy)
                def run(case: Case[Operation]) -> None:
                    findings.record(case, *_send(case, base_url, auth, spare))

                run()
    return findings


def _modes(operation: Operation) -> list[GenerationMode]:
    """Both modes, except for an operation that takes nothing: it has nothing to break."""
    if len(operation.body) > 0 or any(True for _ in operation.iter_parameters()):
        return list(GenerationMode)
    return [GenerationMode.POSITIVE]


def _send(
    case: Case[Operation], base_url: str, auth: Auth, spare: list[Auth]
) -> tuple[int, str | None]:
    """Send ``case``; return the status and what is wrong with the response, if anything."""
    headers = dict(auth)
    if case.operation.label == LOGOUT and auth:
        headers = spare.pop() if spare else {}
    wait = case.body.get("wait_ms") if isinstance(case.body, dict) else None
    if isinstance(case.body, dict) and isinstance(wait, int):
        case.body["wait_ms"] = min(wait, MAX_WAIT_MS)
    response = case.call(base_url=base_url, headers=headers, timeout=10)
    content_type = response.headers.get("content-type", [None])[0]
    return response.status_code, problem_with(response.status_code, content_type, response.content)


@pytest.mark.parametrize("logged_in", [True, False], ids=["bearer", "anonymous"])
async def test_no_request_gets_a_5xx_or_an_error_of_another_shape(
    hasher: SecretHasher, logged_in: bool
) -> None:
    async with running_server(hasher) as server, api(server.http_port) as http:
        spec = (await http.get("/openapi.json")).json()
        auth: Auth = {}
        spare: list[Auth] = []
        if logged_in:
            auth = await new_user(http, "fuzzer")
            spare = [await login(http, "fuzzer") for _ in range(SPARE_TOKENS)]
        base_url = f"http://127.0.0.1:{server.http_port}"
        owner = auth or await admin_auth(http)
        findings = await asyncio.to_thread(fuzz, spec, base_url, auth, owner, spare)
    documented = {
        f"{method.upper()} {path}" for path, item in spec["paths"].items() for method in item
    }
    assert findings.problems == {}
    assert findings.operations == documented  # every documented operation was exercised
    assert findings.statuses.keys() == findings.operations
    if logged_in:
        answered = {
            label for label, statuses in findings.statuses.items() if statuses & {200, 201, 204}
        }
        assert len(answered) >= len(documented) // 2, findings.statuses
