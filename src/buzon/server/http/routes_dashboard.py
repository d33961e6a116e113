"""The web dashboard at ``/``: one page, its script (small ES modules), a stylesheet, an icon.

The files ship in the package (``dashboard/``) and every one of them is read once, at import,
its content type chosen by its suffix; ``main.js`` is the entry module, which imports the
others by relative path, so a new module needs no change here. The page is
static: everything it shows comes from the JSON API under ``/api/v1``, called with the
bearer token the person logged in with. The token lives in the tab's ``sessionStorage``
and travels in the ``Authorization`` header, never in a cookie or a URL; a request
another site makes the browser send therefore carries no credentials, which is the
dashboard's defence against cross-site request forgery.

Each file is answered with a strong ETag and ``Cache-Control: no-cache``: browsers keep
it and revalidate it (a 304 costs a few bytes), so a new version is seen at once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib.resources import files
from pathlib import PurePosixPath

from fastapi import APIRouter, Request, Response
from starlette.exceptions import HTTPException

# Content type by suffix; a file with any other suffix in the folder is not served.
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


@dataclass(frozen=True, slots=True)
class _Asset:
    body: bytes
    media_type: str
    etag: str


def _load() -> dict[str, _Asset]:
    folder = files("buzon.server.http") / "dashboard"
    assets = {}
    for entry in folder.iterdir():
        media_type = _TYPES.get(PurePosixPath(entry.name).suffix)
        if media_type is None or not entry.is_file():
            continue
        body = entry.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        assets[entry.name] = _Asset(body, media_type, etag)
    return assets


_ASSETS = _load()

router = APIRouter(include_in_schema=False)


def _answer(request: Request, asset: _Asset) -> Response:
    headers = {"ETag": asset.etag, "Cache-Control": "no-cache"}
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


@router.get("/")
async def page(request: Request) -> Response:
    return _answer(request, _ASSETS["index.html"])


@router.get("/dashboard/{name}")
async def asset(name: str, request: Request) -> Response:
    found = _ASSETS.get(name)
    if found is None or name == "index.html":
        raise HTTPException(status_code=404)
    return _answer(request, found)
