"""The Origin allowlist: exact matches upgrade, everything else gets HTTP 403 before the upgrade.

Browsers always send Origin on a WebSocket handshake; other clients (CLIs, servers) usually send
none and cannot be told apart by it, so a missing Origin is allowed.
"""

from __future__ import annotations

import anyio
import pytest
import websockets

from collab import protocol as p
from collab.settings import Settings
from tests.conftest import every_server

pytestmark = [pytest.mark.anyio, pytest.mark.integration, every_server]

ALLOWED = "https://app.example.com,http://localhost:3000"

ALLOWED_ORIGINS = ["https://app.example.com", "http://localhost:3000"]

REFUSED_ORIGINS = [
    "https://evil.example",
    "null",  # sandboxed iframes, file:// pages, some redirects
    "",
    "https://app.example.com.evil.example",  # suffix
    "https://evil.example/https://app.example.com",  # allowed origin as a path
    "https://evil.example?https://app.example.com",
    "https://evilapp.example.com",
    "https://sub.app.example.com",
    "https://app.example.co",  # prefix
    "https://app.example.comm",
    "http://app.example.com",  # scheme
    "wss://app.example.com",
    "https://app.example.com:443",  # a browser never sends the default port
    "https://app.example.com:8443",
    "https://app.example.com/",
    "https://app.example.com,http://localhost:3000",  # the whole setting, verbatim
    "HTTPS://APP.EXAMPLE.COM",
    "https://APP.example.com",
    "http://localhost:3001",
    "http://localhost",
    "http://127.0.0.1:3000",
    "http://LOCALHOST:3000",
]


async def upgrades(url: str, origin: str | None) -> int:
    """101 (then the server's first sync message arrives), or the HTTP status it refused with."""
    try:
        ws = await websockets.connect(url, origin=origin, ping_interval=None)  # type: ignore[arg-type]
    except websockets.InvalidStatus as exc:
        return exc.response.status_code
    async with ws:
        with anyio.fail_after(3):
            first = await ws.recv()
        assert isinstance(first, bytes) and first[:2] == bytes([p.MSG_SYNC, p.SYNC_STEP1])
    return 101


async def test_origin_matrix(server_with):
    async with server_with(allowed_origins=ALLOWED) as srv:
        url = f"{srv.url}/ws/doc"
        got = {origin: await upgrades(url, origin) for origin in ALLOWED_ORIGINS}
        assert got == dict.fromkeys(ALLOWED_ORIGINS, 101)
        got = {origin: await upgrades(url, origin) for origin in REFUSED_ORIGINS}
        assert got == dict.fromkeys(REFUSED_ORIGINS, 403)
        assert await upgrades(url, None) == 101  # no Origin: not a browser


async def test_refused_origin_costs_the_server_nothing(server_with):
    async with server_with(allowed_origins=ALLOWED, max_connect_attempts_per_ip=2) as srv:
        for _ in range(5):
            assert await upgrades(f"{srv.url}/ws/fresh", "https://evil.example") == 403
        hub = srv.hub
        # Refused before anything else: no room loaded, no connection, no attempt counted.
        assert "fresh" not in hub.rooms and not hub.connections
        assert await upgrades(f"{srv.url}/ws/fresh", "https://app.example.com") == 101


async def test_no_allowlist_allows_every_origin(server):
    assert server.settings.allowed_origins == ""
    for origin in ("https://evil.example", "null", "https://app.example.com", None):
        assert await upgrades(f"{server.url}/ws/doc", origin) == 101


def test_allowlist_from_the_environment_is_trimmed_and_exact():
    settings = Settings.from_env({"COLLAB_ALLOWED_ORIGINS": " https://a.example , http://b:1 ,, "})
    assert settings.origins == frozenset({"https://a.example", "http://b:1"})
