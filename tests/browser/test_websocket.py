"""A web page using @stomp/stompjs in headless Chromium talks STOMP over WebSocket to buzon.

The page and the stomp.js bundle come from a small static server of their own, so the page's
origin is not the broker's: the broker lets it in because ``ws_origins`` names it, and
refuses the same page served from an origin it does not name.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

from selenium import webdriver

from buzon.auth import SecretHasher
from tests.browser.waits import text_contains, texts_of
from tests.server.harness import ADMIN, PASSWORD, Client, running_server
from tests.server.test_messaging import send

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>buzon: STOMP over WebSocket</title>
<script src="/stomp.umd.min.js"></script>
</head>
<body>
<h1>STOMP over WebSocket</h1>
<p>status: <span id="status">idle</span></p>
<ol id="received"></ol>
<script>
"use strict";
function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
function start(config) {
  const status = document.getElementById("status");
  const client = new StompJs.Client({
    brokerURL: config.url,
    connectHeaders: { login: config.login, passcode: config.passcode },
    reconnectDelay: 0,
  });
  client.onConnect = (frame) => {
    status.textContent = `connected ${client.webSocket.protocol} ${frame.headers.version}`;
    client.subscribe(config.queue, (message) => {
      const item = document.createElement("li");
      const binary = message.headers["content-type"] === "application/octet-stream";
      item.textContent = binary ? `hex ${hex(message.binaryBody)}` : message.body;
      document.getElementById("received").appendChild(item);
    });
    client.publish({ destination: config.queue, body: config.greeting });
    client.publish({
      destination: config.queue,
      binaryBody: new Uint8Array([0, 1, 254, 255]),
      headers: { "content-type": "application/octet-stream" },
    });
  };
  client.onStompError = (frame) => { status.textContent = `error ${frame.headers.message}`; };
  client.onWebSocketClose = (event) => {
    if (!status.textContent.startsWith("connected")) status.textContent = `closed ${event.code}`;
  };
  client.activate();
}
</script>
</body>
</html>
"""


@contextlib.contextmanager
def static_site(stompjs: Path) -> Iterator[str]:
    """Serve the test page and the stomp.js bundle on 127.0.0.1; yields the site's origin."""
    files = {
        "/": (PAGE.encode(), "text/html; charset=utf-8"),
        "/stomp.umd.min.js": (stompjs.read_bytes(), "text/javascript"),
    }

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body, content_type = files.get(self.path, (b"not found", "text/plain"))
            self.send_response(200 if self.path in files else 404)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep the test output quiet

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def open_page(browser: webdriver.Chrome, site: str, broker_http_port: int) -> None:
    """Load the page from ``site`` and start its client against the broker (credentials go
    in by script, never in the URL)."""
    config = {
        "url": f"ws://127.0.0.1:{broker_http_port}/ws",
        "login": ADMIN,
        "passcode": PASSWORD,
        "queue": "/queue/browser",
        "greeting": "hola desde el navegador, buzón ✉",
    }
    await asyncio.to_thread(browser.get, site + "/")
    await asyncio.to_thread(browser.execute_script, "start(arguments[0])", config)


async def wait_for_text(browser: webdriver.Chrome, element_id: str, text: str) -> None:
    """Wait until the element's text contains ``text`` (Selenium blocks: off the loop)."""
    await asyncio.to_thread(text_contains, browser, f"#{element_id}", text)


async def received(browser: webdriver.Chrome) -> list[str]:
    return await asyncio.to_thread(texts_of, browser, "#received li")


async def test_browser_publishes_and_receives_over_websocket(
    hasher: SecretHasher, browser: webdriver.Chrome, stompjs: Path, artifacts: Path
) -> None:
    with static_site(stompjs) as allowed, static_site(stompjs) as elsewhere:
        async with running_server(hasher, ws_origins=(allowed,)) as server:
            await open_page(browser, allowed, server.http_port)
            await wait_for_text(browser, "status", "connected v12.stomp 1.2")
            await wait_for_text(browser, "received", "hex 0001feff")
            assert await received(browser) == ["hola desde el navegador, buzón ✉", "hex 0001feff"]

            publisher = await Client.connected(server.stomp_port)
            await publisher.send(send("/queue/browser", "¡desde Python por TCP!".encode()))
            await wait_for_text(browser, "received", "¡desde Python por TCP!")
            assert len(await received(browser)) == 3
            await asyncio.to_thread(browser.save_screenshot, str(artifacts / "websocket.png"))

            # The same page from an origin the broker does not name cannot open /ws.
            await open_page(browser, elsewhere, server.http_port)
            await wait_for_text(browser, "status", "closed")
            assert await received(browser) == []
