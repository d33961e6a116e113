"""The API's docs page, rendered on the server from the OpenAPI document.

No script and no CDN: a plain page listing every operation with its parameters, body and
answers, every string escaped. The machine-readable contract is ``openapi.json``.
"""

from __future__ import annotations

import base64
import hashlib
import html
from typing import Any

_METHODS = ("get", "post", "put", "patch", "delete")

_STYLE = """
body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
h2{margin-top:2rem;border-bottom:1px solid #ddd}
.op{margin:1rem 0;padding:.5rem 1rem;border-left:4px solid #7a9}
.m{font:bold 13px monospace;text-transform:uppercase;margin-right:.5rem}
code{background:#f4f4f4;padding:0 .2rem}
"""

# The page's one inline part is its style; the policy allows exactly that (by hash).
_STYLE_HASH = base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; frame-ancestors 'none';"
    " base-uri 'none'; form-action 'none'"
)


def render(spec: dict[str, Any]) -> str:
    """The HTML page for an OpenAPI document."""
    info = spec.get("info", {})
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>{_e(info.get('title', 'API'))}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{_e(info.get('title', 'API'))} <small>{_e(info.get('version', ''))}</small></h1>",
        f"<p>{_e(info.get('description', ''))}</p>",
        '<p>Machine-readable: <a href="openapi.json">openapi.json</a>.</p>',
    ]
    by_tag: dict[str, list[str]] = {}
    for path, item in spec.get("paths", {}).items():
        for method in _METHODS:
            operation = item.get(method)
            if operation is not None:
                tag = (operation.get("tags") or ["other"])[0]
                by_tag.setdefault(tag, []).append(_operation(method, path, operation))
    for tag, operations in by_tag.items():
        parts.append(f"<h2>{_e(tag)}</h2>")
        parts.extend(operations)
    parts.append("</body></html>")
    return "".join(parts)


def _operation(method: str, path: str, operation: dict[str, Any]) -> str:
    lines = [
        f"<div class=op><p><span class=m>{_e(method)}</span><code>{_e(path)}</code>"
        f" {_e(operation.get('summary', ''))}</p>"
    ]
    if operation.get("description"):
        lines.append(f"<p>{_e(operation['description'])}</p>")
    parameters = [
        f"<code>{_e(p['name'])}</code> ({_e(p.get('in', ''))})"
        for p in operation.get("parameters", [])
    ]
    if parameters:
        lines.append(f"<p>Parameters: {', '.join(parameters)}</p>")
    body = operation.get("requestBody", {}).get("content", {})
    if body:
        kinds = ", ".join(f"<code>{_e(kind)}</code>" for kind in body)
        lines.append(f"<p>Body: {kinds}</p>")
    answers = ", ".join(f"<code>{_e(code)}</code>" for code in operation.get("responses", {}))
    lines.append(f"<p>Answers: {answers}</p></div>")
    return "".join(lines)


def _e(value: object) -> str:
    return html.escape(str(value))
