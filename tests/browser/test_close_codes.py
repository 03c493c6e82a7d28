"""A browser whose message the server refuses hears the server's close code, not 1006.

The wire refuses a text frame (1003) or a message over the size limit (1009) at once. It used
to close the socket there and then, with what the browser had sent after the refused message
still unread, and a socket closed with data unread is reset by the kernel: Chromium, meeting
the reset before it had read the close frame, reported 1006 (no code) about half of the time.
Now the server ends its side after its close frame and drops what still comes until the
browser closes too, as the `ws` library (Hocuspocus, y-websocket's server) does.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest
from playwright.async_api import Browser

from collab.wire import CLOSE_TIMEOUT_S, WebSocketProtocol

pytestmark = [pytest.mark.anyio, pytest.mark.browser]

TRIES = 12

# Opens a socket, sends the refused message and then `follow` messages of `size` bytes (what a
# client typing on sends before the close frame reaches it); resolves to each close's code.
CLOSE_CODES = """async ([url, refused, follow, size, tries]) => {
  const codes = [];
  for (let k = 0; k < tries; k++) {
    codes.push(await new Promise((resolve) => {
      const ws = new WebSocket(url + k);
      ws.onopen = () => {
        ws.send(refused === 'text' ? 'not a y-websocket message' : new Uint8Array(refused));
        for (let i = 0; i < follow; i++) ws.send(new Uint8Array(size));
      };
      ws.onclose = (event) => resolve(event.code);
    }));
  }
  return codes;
}"""


def open_sockets(srv: Any) -> int:
    return sum(isinstance(c, WebSocketProtocol) for c in srv.server.server_state.connections)


@pytest.mark.parametrize(
    ("refused", "code"),
    [("text", 1003), (64 * 1024, 1009)],  # (64 KiB over the server's 16 KiB limit below)
)
async def test_a_refused_message_is_answered_with_its_code(
    browser: Browser, browser_log: Any, server_with: Any, refused: Any, code: int
) -> None:
    async with server_with(max_message_bytes=16 * 1024) as srv:
        browser_log.origin = srv.http
        page = await browser.new_page()
        browser_log.watch(page, "client")
        browser_log.allow(r"WebSocket connection to .* failed")  # (how Chromium logs a refusal)
        await page.route("**/favicon.ico", lambda route: route.fulfill(status=204))
        await page.goto(f"{srv.http}/healthz")  # (a page of the server's origin)
        url = f"{srv.url}/ws/refused-"
        for follow, size in [(1, 10), (50, 1000), (200, 4000)]:
            codes = await page.evaluate(CLOSE_CODES, [url, refused, follow, size, TRIES])
            assert codes == [code] * TRIES, (follow, size, codes)
        # and the server let go of every socket when the browser closed its side, long before
        # its close timer would have dropped them
        began = time.monotonic()
        with anyio.fail_after(CLOSE_TIMEOUT_S / 2):
            while open_sockets(srv):
                await anyio.sleep(0.02)
        assert time.monotonic() - began < CLOSE_TIMEOUT_S / 2
        await page.close()
        browser_log.check()
