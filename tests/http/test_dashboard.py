"""The dashboard's files and the security headers every HTTP answer carries.

What the browser tests cannot see directly: the exact headers, content types and caching,
that the page loads nothing from elsewhere, and that no origin but the broker's own may
read the API.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import AsyncIterator
from importlib.resources import files

import httpx
import pytest

from buzon.errors import ErrorCode
from buzon.server.app import BuzonServer
from buzon.server.http.security_headers import CONTENT_SECURITY_POLICY
from tests.http.helpers import Auth, error_of

ASSETS = {
    "/": "text/html; charset=utf-8",
    "/dashboard/main.js": "text/javascript; charset=utf-8",
    "/dashboard/style.css": "text/css; charset=utf-8",
    "/dashboard/icon.svg": "image/svg+xml",
}


@pytest.fixture
async def site(server: BuzonServer) -> AsyncIterator[httpx.AsyncClient]:
    """A client on the broker's HTTP root (the dashboard), not on ``/api/v1``."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.http_port}") as client:
        yield client


# `import "./x.js"`, `import {a} from "./x.js"`, `export {a} from "./x.js"`
IMPORT = re.compile(r'^(?:import\s*|(?:import|export)\s[^;"]*?\sfrom\s*)"([^"]+)"', re.MULTILINE)


async def script_modules(site: httpx.AsyncClient) -> list[str]:
    """Every module the page's script loads: main.js and, transitively, what it imports."""
    found = ["/dashboard/main.js"]
    for path in found:
        source = (await site.get(path)).text
        assert "import(" not in source  # no dynamic import this crawl would miss
        for specifier in IMPORT.findall(source):
            # a sibling file, never another origin or folder
            assert re.fullmatch(r"\./[a-z][a-z-]*\.js", specifier), (path, specifier)
            module = "/dashboard/" + specifier[2:]
            if module not in found:
                found.append(module)
    return found


def assert_protected(response: httpx.Response) -> None:
    headers = response.headers
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    policy = headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    assert "access-control-allow-origin" not in headers


async def test_the_dashboard_is_served_with_its_types_and_revalidated(
    site: httpx.AsyncClient,
) -> None:
    modules = await script_modules(site)
    shipped = {f.name for f in (files("buzon.server.http") / "dashboard").iterdir()}
    # every module shipped is one the page loads: none left over, none missing
    assert {m.removeprefix("/dashboard/") for m in modules} == {
        name for name in shipped if name.endswith(".js")
    }
    scripts = dict.fromkeys(modules, "text/javascript; charset=utf-8")
    for path, content_type in {**ASSETS, **scripts}.items():
        response = await site.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"] == content_type
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert_protected(response)
        again = await site.get(path, headers={"If-None-Match": response.headers["etag"]})
        assert again.status_code == 304
        assert again.content == b""
    error_of(await site.get("/dashboard/index.html"), ErrorCode.NOT_FOUND)
    error_of(await site.get("/dashboard/../pyproject.toml"), ErrorCode.NOT_FOUND)


async def test_the_page_loads_nothing_from_elsewhere_and_runs_nothing_inline(
    site: httpx.AsyncClient,
) -> None:
    page = (await site.get("/")).text
    links = re.findall(r'(?:src|href|action)="([^"]*)"', page)
    assert links
    assert all(link.startswith(("/", "#")) for link in links), links
    scripts = re.findall(r"<script[^>]*>", page)
    assert scripts == ['<script type="module" src="/dashboard/main.js">']
    assert "<style" not in page
    assert " style=" not in page
    assert not re.search(r"\son[a-z]+=", page)  # no inline event handlers
    for path in [*await script_modules(site), "/dashboard/style.css"]:
        text = (await site.get(path)).text
        assert "http://" not in text
        assert "https://" not in text
        assert "@import" not in text
        assert ".innerHTML" not in text


async def test_api_answers_and_errors_carry_the_security_headers(
    site: httpx.AsyncClient, admin: Auth
) -> None:
    ok = await site.get("/api/v1/overview", headers=admin)
    assert ok.status_code == 200
    assert ok.headers["cache-control"] == "no-store"  # the caller's data stays out of caches
    assert_protected(ok)
    for response in (
        await site.get("/api/v1/overview"),  # 401
        await site.get("/api/v1/nowhere"),  # 404
        await site.put("/api/v1/users"),  # 405
        await site.get("/api/v1/healthz", headers={"X-Big": "x" * 20_000}),  # 431
    ):
        assert response.status_code >= 400
        assert_protected(response)


async def test_the_api_docs_page_keeps_its_own_policy_allowing_only_its_style(
    site: httpx.AsyncClient,
) -> None:
    response = await site.get("/api/v1/docs")
    assert response.status_code == 200
    assert_protected(response)
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    [style] = re.findall(r"<style>(.*?)</style>", response.text, re.DOTALL)
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in policy
    assert "<script" not in response.text


async def test_no_other_origin_may_read_the_api(site: httpx.AsyncClient, admin: Auth) -> None:
    evil = {"Origin": "https://evil.example"}
    preflight = await site.options(
        "/api/v1/queues",
        headers={**evil, "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers
    read = await site.get("/api/v1/queues", headers={**evil, **admin})
    assert "access-control-allow-origin" not in read.headers
    assert "access-control-allow-credentials" not in read.headers
