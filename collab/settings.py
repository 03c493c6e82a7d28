"""One frozen Settings dataclass. `Settings.from_env()` is the only reader of COLLAB_* variables.

Every field has an environment variable (COLLAB_ + the field name in upper case) and a CLI flag
(`--` + the field name with dashes), both derived from the field itself, so the three can never
drift apart.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from storage import async_url, is_supported

from .retention import parse_rules

ENV_PREFIX = "COLLAB_"
MiB = 1024 * 1024


def _doc(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = field(default="127.0.0.1", metadata=_doc("interface to listen on"))
    port: int = field(default=8000, metadata=_doc("TCP port to listen on"))
    database_url: str = field(
        default="sqlite+aiosqlite:///data/collab.db",
        metadata=_doc(
            "SQLAlchemy URL of the store: sqlite:///path.db or postgresql://user@host/db (their "
            "async drivers, aiosqlite and asyncpg, are used whether the URL names them or not)"
        ),
    )
    commit_window_ms: int = field(
        default=50, metadata=_doc("an update is committed to the store within this many ms")
    )
    unload_grace_s: float = field(
        default=30.0, metadata=_doc("seconds an empty, clean room stays in memory")
    )
    max_message_bytes: int = field(
        default=16 * MiB, metadata=_doc("larger WebSocket messages close the connection (1009)")
    )
    idle_timeout_s: float = field(
        default=60.0, metadata=_doc("a connection that sends nothing this long is closed (4408)")
    )
    heartbeat_s: float = field(
        default=15.0, metadata=_doc("the server sends something at least this often")
    )
    ws_ping_interval_s: float = field(
        default=20.0, metadata=_doc("WebSocket ping interval (0 disables)")
    )
    ws_ping_timeout_s: float = field(
        default=20.0, metadata=_doc("a ping unanswered this long drops the connection")
    )
    ws_per_message_deflate: bool = field(
        default=False, metadata=_doc("offer permessage-deflate compression")
    )
    outbound_queue_bytes: int = field(
        default=32 * MiB, metadata=_doc("bytes unsent to one client before it is closed (1013)")
    )
    compact_after_rows: int = field(
        default=1000, metadata=_doc("compact a document's update log beyond this many rows")
    )
    compact_after_bytes: int = field(
        default=4 * MiB, metadata=_doc("compact a document's update log beyond this many bytes")
    )
    compact_log_share: float = field(
        default=0.25,
        metadata=_doc(
            "past compact_after_rows, compact once the log weighs this share of the snapshot"
            " (10x the rows always; 0: at compact_after_rows)"
        ),
    )
    version_pause_s: float = field(
        default=30.0,
        metadata=_doc("an automatic version is taken after editing pauses this many seconds"),
    )
    version_every_s: float = field(
        default=300.0,
        metadata=_doc("and at least this often while a document is being edited"),
    )
    version_retention: str = field(
        default="24h:all,7d:1h,90d:1d,forever:1w",
        metadata=_doc("which automatic versions to keep by age (AGE:KEEP,...; named ones stay)"),
    )
    awareness_timeout_s: float = field(
        default=30.0, metadata=_doc("awareness states not renewed this long are dropped")
    )
    shutdown_timeout_s: float = field(
        default=5.0, metadata=_doc("deadline for flushing every room on shutdown")
    )
    auth_secret: str = field(
        default="", metadata=_doc("HS256 secret: when set, every connection needs a token")
    )
    auth_public_key: str = field(
        default="", metadata=_doc("PEM (or a path to one) verifying RS256/ES256/EdDSA tokens")
    )
    read_only_awareness: bool = field(
        default=True, metadata=_doc("relay the presence of read-only connections")
    )
    allowed_origins: str = field(
        default="", metadata=_doc("comma-separated exact Origins browsers may connect from")
    )
    rate_messages_per_s: float = field(
        default=200.0, metadata=_doc("messages per second one connection may send (average)")
    )
    rate_messages_burst: int = field(
        default=1000, metadata=_doc("messages one connection may send in a burst")
    )
    rate_bytes_per_s: int = field(
        default=4 * MiB, metadata=_doc("bytes per second one connection may send (average)")
    )
    rate_bytes_burst: int = field(
        default=64 * MiB, metadata=_doc("bytes one connection may send in a burst")
    )
    max_connections_per_ip: int = field(
        default=0,
        metadata=_doc("open connections from one IP address (0: no limit; see docs/limits.md)"),
    )
    max_connect_attempts_per_ip: int = field(
        default=0,
        metadata=_doc("connection attempts from one IP address per minute (0: no limit)"),
    )
    trusted_proxies: str = field(
        default="",
        metadata=_doc(
            "comma-separated addresses/networks whose X-Forwarded-For is believed"
            " (empty: uvicorn's default, $FORWARDED_ALLOW_IPS or 127.0.0.1)"
        ),
    )
    max_connections_per_document: int = field(
        default=10000, metadata=_doc("open connections to one document")
    )
    max_documents: int = field(
        default=10000, metadata=_doc("documents open in this process at once")
    )
    auth_timeout_s: float = field(
        default=10.0, metadata=_doc("deadline for connect and authentication hooks (4408)")
    )
    pre_auth_max_messages: int = field(
        default=32, metadata=_doc("messages a client may send before it is authenticated")
    )
    pre_auth_max_bytes: int = field(
        default=1 * MiB, metadata=_doc("bytes a client may send before it is authenticated")
    )
    signal_max_topics: int = field(
        default=64, metadata=_doc("y-webrtc topics one /signal connection may subscribe to")
    )
    signal_max_message_bytes: int = field(
        default=64 * 1024, metadata=_doc("larger /signal messages close the connection (1009)")
    )
    redis_url: str = field(
        default="", metadata=_doc("redis://host:port/db: cluster mode over Redis pub/sub")
    )
    bus: str = field(
        default="",
        metadata=_doc("'postgres': cluster mode over LISTEN/NOTIFY on the PostgreSQL store"),
    )
    peer_timeout_s: float = field(
        default=5.0, metadata=_doc("a cluster peer silent this long is gone (its cursors too)")
    )
    workers: int = field(
        default=1,
        metadata=_doc("server processes sharing the port, each document in one of them"),
    )
    frontend_dir: str = field(
        default="", metadata=_doc("directory of the built editor to serve at / (auto if empty)")
    )
    log_level: str = field(default="info", metadata=_doc("debug, info, warning or error"))
    log_format: str = field(
        default="text", metadata=_doc("text, or json: one JSON object per line with context")
    )
    metrics: bool = field(
        default=True, metadata=_doc("count what the server does; serve it at /metrics")
    )
    metrics_port: int = field(
        default=0,
        metadata=_doc("serve /metrics on this port instead, without auth (0: the main port)"),
    )
    drain_s: float = field(
        default=0.0,
        metadata=_doc("after SIGTERM, /readyz answers 503 this long before clients are closed"),
    )
    events: bool = field(
        default=True,
        metadata=_doc("write change events to the outbox (webhooks, SSE, RabbitMQ read it)"),
    )
    events_debounce_ms: int = field(
        default=2000, metadata=_doc("document.changed: at most one per document this often")
    )
    events_max_wait_ms: int = field(
        default=10000,
        metadata=_doc("document.changed: at least one this often while edits continue"),
    )
    events_include_text: bool = field(
        default=True, metadata=_doc("document.changed carries the text of each Y.Text")
    )
    events_include_update: bool = field(
        default=False,
        metadata=_doc("document.changed carries the binary update since the previous event"),
    )
    events_presence: bool = field(
        default=False, metadata=_doc("also write user.joined and user.left events")
    )
    events_retention_s: float = field(
        default=7 * 86400.0,
        metadata=_doc("events are kept this long (SSE resumes within it; 0: forever)"),
    )
    events_max_rows: int = field(
        default=1_000_000, metadata=_doc("at most this many events are kept (oldest go first)")
    )
    webhook_urls: str = field(
        default="", metadata=_doc("comma-separated URLs that receive every event (POST JSON)")
    )
    webhook_secret: str = field(
        default="", metadata=_doc("HMAC-SHA256 key of the Collab-Signature header")
    )
    webhook_timeout_s: float = field(
        default=5.0, metadata=_doc("a webhook attempt not answered this long is retried")
    )
    webhook_max_age_s: float = field(
        default=86400.0, metadata=_doc("a webhook event still undelivered this long is failed")
    )
    amqp_url: str = field(
        default="", metadata=_doc("amqp://user:pass@host:5672/: publish every event to RabbitMQ")
    )
    amqp_exchange: str = field(
        default="collab.events", metadata=_doc("the durable topic exchange events go to")
    )

    def __post_init__(self) -> None:
        # `sqlite:///x.db` and `postgres://...` (what hosts hand out) mean our async drivers.
        object.__setattr__(self, "database_url", async_url(self.database_url))
        positive = (
            "commit_window_ms",
            "max_message_bytes",
            "outbound_queue_bytes",
            "compact_after_rows",
            "compact_after_bytes",
            "rate_messages_per_s",
            "rate_messages_burst",
            "rate_bytes_per_s",
            "rate_bytes_burst",
            "max_connections_per_document",
            "max_documents",
            "auth_timeout_s",
            "pre_auth_max_messages",
            "pre_auth_max_bytes",
            "signal_max_topics",
            "signal_max_message_bytes",
            "peer_timeout_s",
            "workers",
            "events_debounce_ms",
            "events_max_wait_ms",
            "events_max_rows",
            "webhook_timeout_s",
            "webhook_max_age_s",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        for name in (
            "max_connections_per_ip",
            "max_connect_attempts_per_ip",
            "events_retention_s",
            "drain_s",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 (no limit) or positive")
        if not 0 <= self.compact_log_share <= 1000:  # (NaN too)
            raise ValueError("compact_log_share must be 0..1000")
        parse_rules(self.version_retention)  # (ValueError with the reason)
        for name in (
            "idle_timeout_s",
            "heartbeat_s",
            "awareness_timeout_s",
            "version_pause_s",
            "version_every_s",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if not is_supported(self.database_url):
            raise ValueError(
                "database_url must be SQLite or PostgreSQL: sqlite:///path.db or "
                "postgresql://user@host/db (through aiosqlite and asyncpg)"
            )
        if self.bus not in ("", "redis", "postgres"):
            raise ValueError("bus must be '', 'redis' or 'postgres'")
        if self.bus == "postgres" and not self.database_url.startswith("postgresql"):
            raise ValueError("bus=postgres needs a postgresql+asyncpg:// database_url")
        if self.bus == "redis" and not self.redis_url:
            raise ValueError("bus=redis needs redis_url")
        if not 0 < self.port < 65536 and self.port != 0:
            raise ValueError("port must be 0..65535")
        if not 0 <= self.metrics_port < 65536:
            raise ValueError("metrics_port must be 0..65535")
        if self.log_format not in ("text", "json"):
            raise ValueError("log_format must be 'text' or 'json'")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then COLLAB_* variables, then explicit overrides (e.g. CLI flags)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None:
                values[f.name] = parse_value(f.name, str(f.type), raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @property
    def origins(self) -> frozenset[str]:
        return frozenset(o.strip() for o in self.allowed_origins.split(",") if o.strip())

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def parse_value(name: str, type_name: str, raw: str) -> Any:
    """Turn the text of an env var or flag into the field's type, with a clear error."""
    try:
        if type_name == "int":
            return int(raw)
        if type_name == "float":
            return float(raw)
        if type_name == "bool":
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
    except ValueError:
        raise ValueError(
            f"{ENV_PREFIX}{name.upper()}: {raw!r} is not a valid {type_name}"
        ) from None
    return raw
