"""Built-in webhooks: every event of the change feed POSTed as JSON to each configured URL,
signed, retried until delivered.

Switched on by COLLAB_WEBHOOK_URLS (comma-separated) with COLLAB_WEBHOOK_SECRET. Each URL is one
sink of the feed ("webhook:<url>"), with its own HTTP client (its own connections), so a slow or
dead endpoint never delays another; the feed calls a sink for one event of a document at a time,
in order, and retries a failed attempt with backoff (collab/events). An attempt is delivered on
a 2xx answer; any other status, a connection error or no answer within COLLAB_WEBHOOK_TIMEOUT_S
fails it (its reason is the delivery log's last error).

Each request carries:

    Content-Type      application/json (the event body, the same bytes on every attempt)
    Collab-Event-Id   the event's id: the same on every attempt (the receiver's idempotency key)
    Collab-Timestamp  this attempt's time, in whole seconds since the epoch
    Collab-Signature  v1=<hex HMAC-SHA256 of "<timestamp>.<body>" keyed by the secret>

`verify(secret, headers, body)` is the receiver's check (docs/events.md has it in five lines of
Python and of JavaScript): the signature over the exact bytes received, and a timestamp within
five minutes, so a captured request cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit, urlunsplit

import anyio
import httpx

from collab.events import Event
from collab.hooks import Extension, OnShutdownPayload, OnStartupPayload
from collab.settings import Settings

log = logging.getLogger(__name__)

SINK_PREFIX = "webhook:"
SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE_S = 300
MAX_IN_FLIGHT = 8  # documents delivered at once per endpoint (one event each)
ERROR_BODY_CHARS = 200  # of a non-2xx answer's body, kept in the delivery log's last error
USER_AGENT = "collab-webhooks/1"


class WebhookError(Exception):
    """One failed attempt: its text is the delivery log's last error (no secret in it)."""


# -- signing ----------------------------------------------------------------------------------


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The Collab-Signature value: `v1=` + hex HMAC-SHA256 of b"<timestamp>.<body>"."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"{SIGNATURE_VERSION}={mac.hexdigest()}"


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    *,
    now: float | None = None,
) -> bool:
    """Whether a request is a webhook of the server holding `secret`: its Collab-Signature is
    that of its Collab-Timestamp and `body` (the raw bytes, before any JSON parsing), and the
    timestamp is within `tolerance_s` of `now` (either way: a replayed request is stale).
    `headers` may be any mapping (looked up case-insensitively); the signature header may hold
    several comma-separated `v1=` values (any one matching is enough)."""
    timestamp = _header(headers, "collab-timestamp")
    signature = _header(headers, "collab-signature")
    if not timestamp or not signature or not timestamp.isascii() or not timestamp.isdigit():
        return False
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > tolerance_s:
        return False
    expected = sign(secret, timestamp, body)
    return any(
        hmac.compare_digest(candidate.strip().encode(), expected.encode())
        for candidate in signature.split(",")
    )


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    for key, item in headers.items():
        if key.lower() == name:
            return item
    return None


# -- one endpoint -----------------------------------------------------------------------------


def shown_url(url: str) -> str:
    """The URL as logs and the delivery log may show it: a password in it is masked."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def check_url(url: str) -> str:
    """`url` if it is an absolute http(s) URL; ValueError otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"a webhook URL must be http:// or https:// with a host: {url!r}")
    return url


class WebhookSink:
    """One endpoint, as a sink of the change feed. `client` is its own (closed by the owner)."""

    def __init__(
        self,
        url: str,
        secret: str,
        *,
        timeout_s: float,
        client: httpx.AsyncClient,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        self.url = check_url(url)
        self.name = SINK_PREFIX + url
        self.max_in_flight = max_in_flight
        self.timeout_s = timeout_s  # (the delivery loop gives up on an attempt 5 s after it)
        self._secret = secret
        self._client = client

    def headers(self, event: Event, timestamp: str) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Collab-Event-Id": event.id,
            "Collab-Timestamp": timestamp,
            "Collab-Signature": sign(self._secret, timestamp, event.body),
        }

    async def deliver(self, event: Event) -> None:
        """One attempt: returns on a 2xx, raises WebhookError otherwise. The whole attempt
        (connect, send, the answer's status line) is bounded by the timeout, not each step."""
        if self._client.is_closed:  # (an attempt still starting after on_shutdown)
            raise WebhookError("not sent: the server is stopping")
        timestamp = str(int(time.time()))
        error: str | None = None
        with anyio.move_on_after(self.timeout_s) as scope:
            error = await self._post(event, timestamp)
        if scope.cancelled_caught:
            error = f"no answer within {self.timeout_s:g} s"
        if error is not None:
            raise WebhookError(error)

    async def _post(self, event: Event, timestamp: str) -> str | None:
        """None when delivered, else why not."""
        request = self._client.build_request(
            "POST", self.url, content=event.body, headers=self.headers(event, timestamp)
        )
        try:
            response = await self._client.send(request, stream=True)
        except httpx.TimeoutException:
            return f"no answer within {self.timeout_s:g} s"
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {_one_line(str(exc)) or 'connection failed'}"
        try:
            if response.is_success:
                return None
            return f"HTTP {response.status_code}{await _excerpt(response)}"
        finally:
            await response.aclose()


async def _excerpt(response: httpx.Response) -> str:
    """': ' + the start of the answer's body, on one line ('' if empty or unreadable)."""
    data = b""
    try:
        async for chunk in response.aiter_bytes():
            data += chunk
            if len(data) >= ERROR_BODY_CHARS:
                break
    except httpx.HTTPError:
        pass
    text = _one_line(data[:ERROR_BODY_CHARS].decode("utf-8", "replace"))
    return f": {text}" if text else ""


def _one_line(text: str) -> str:
    return " ".join(text.split())[:ERROR_BODY_CHARS]


# -- the extension ----------------------------------------------------------------------------


class Webhooks(Extension):
    """Adds one sink per URL to the change feed at startup; closes their clients at shutdown."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        secret: str,
        timeout_s: float = 5.0,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        if not secret:
            raise ValueError("webhooks need a secret (COLLAB_WEBHOOK_SECRET) to sign with")
        if len(set(urls)) != len(urls):
            raise ValueError("a webhook URL is listed twice")
        self.urls = [check_url(url) for url in urls]
        if not self.urls:
            raise ValueError("webhooks need at least one URL (COLLAB_WEBHOOK_URLS)")
        self._secret = secret
        self._timeout_s = timeout_s
        self._max_in_flight = max_in_flight
        self.sinks: list[WebhookSink] = []
        self._clients: list[httpx.AsyncClient] = []

    async def on_startup(self, payload: OnStartupPayload) -> None:
        if not payload.events.enabled:
            log.warning("webhooks configured but events are off (COLLAB_EVENTS=0): none sent")
        for url in self.urls:
            client = httpx.AsyncClient(
                timeout=httpx.Timeout(self._timeout_s),
                limits=httpx.Limits(max_connections=self._max_in_flight),
                follow_redirects=False,  # a redirect is not a delivery: 3xx fails the attempt
                # (trust_env: HTTPS_PROXY / NO_PROXY of the environment apply, as in curl)
            )
            self._clients.append(client)
            sink = WebhookSink(
                url,
                self._secret,
                timeout_s=self._timeout_s,
                client=client,
                max_in_flight=self._max_in_flight,
            )
            self.sinks.append(sink)
            payload.events.add_sink(sink)
            log.info("webhooks: delivering events to %s", shown_url(url))

    async def on_shutdown(self, payload: OnShutdownPayload) -> None:
        for client in self._clients:
            await client.aclose()
        self._clients.clear()


def parse_urls(text: str) -> list[str]:
    return [url.strip() for url in text.split(",") if url.strip()]


def from_settings(settings: Settings) -> list[Extension]:
    """The webhooks extension when COLLAB_WEBHOOK_URLS names any URL (ValueError for an
    invalid URL or a missing secret), else none."""
    urls = parse_urls(settings.webhook_urls)
    if not urls:
        return []
    return [Webhooks(urls, secret=settings.webhook_secret, timeout_s=settings.webhook_timeout_s)]
