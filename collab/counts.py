"""What the server counts on its hot path: plain ints, no library call.

One `Counts` per process (the hub makes it when `settings.metrics` is on, else there is none and
nothing is counted). The rooms, the admission and the hooks add to it with one `+=` per message
received, per broadcast (not per member: a broadcast adds its number of recipients) and per
connection; collab/metrics.py turns the totals into Prometheus values once a second and before
each scrape. This module imports nothing of the server's, so anything may count into it.
"""

from __future__ import annotations

# Message types, as the index into `received` / `sent` (protocol.py's numbers, flattened).
SYNC_STEP1 = 0
SYNC_STEP2 = 1
SYNC_UPDATE = 2
AWARENESS = 3
QUERY_AWARENESS = 4
OTHER = 5
MESSAGE_TYPES = ("sync_step1", "sync_step2", "update", "awareness", "query_awareness", "other")

# Why an update was refused (the index into `refused`).
REFUSED_READ_ONLY = 0  # from a read-only connection: dropped
REFUSED_INVALID = 1  # malformed, or yrs could not apply it: the connection is closed (1002)
REFUSED_PENDING = 2  # too many updates waiting for a missing dependency (1002)
REFUSED_OTHER = 3
REFUSE_REASONS = ("read_only", "invalid", "pending", "other")

# How a connection's frames travel, indexed by room's framing kinds: PLAIN_FRAME, DEFLATE_FRAME,
# BARE_MESSAGE, the same three for the Hocuspocus protocol (HOCUSPOCUS_OFFSET + each: one label
# per document of a socket), and PER_MEMBER (a Hocuspocus session-aware address).
PROTOCOLS = (
    "websocket",
    "websocket_deflate",
    "asgi",
    "hocuspocus",
    "hocuspocus_deflate",
    "hocuspocus_asgi",
    "hocuspocus_session",
)

# Fan-out time is taken for one update in FANOUT_SAMPLE (a power of two) and observed later.
FANOUT_SAMPLE = 32
# Observations kept for one histogram between two syncs (beyond: dropped, they are samples).
MAX_SAMPLES = 10_000


def message_type(message: bytes) -> int:
    """The type index of a y-websocket message (its first one or two bytes)."""
    kind = message[0] if message else -1
    if kind == 0 and len(message) > 1:
        sub = message[1]
        return sub if sub <= SYNC_UPDATE else OTHER
    if kind == 1:
        return AWARENESS
    if kind == 3:
        return QUERY_AWARENESS
    return OTHER


class Counts:
    """The process's running totals. Written on the event loop only; read by the metrics."""

    __slots__ = (
        "bytes_in",
        "bytes_out",
        "closed",
        "events",
        "fanout_samples",
        "fanouts",
        "opened",
        "received",
        "refused",
        "samples",
        "sent",
        "updates_applied",
    )

    def __init__(self) -> None:
        self.received = [0] * len(MESSAGE_TYPES)  # messages from clients, by type
        self.sent = [0] * len(MESSAGE_TYPES)  # messages to clients (each recipient once)
        self.bytes_in = 0  # their bytes (the messages, without WebSocket framing)
        self.bytes_out = 0
        self.updates_applied = 0  # client updates applied (merged ones count each)
        self.refused = [0] * len(REFUSE_REASONS)
        self.opened = [0] * len(PROTOCOLS)  # connections opened, by protocol
        self.closed: dict[int, int] = {}  # connections closed, by close code (None: -1)
        self.fanouts = 0  # updates fanned out (the sampling clock)
        # Sampled fan-out durations (seconds) not yet observed into the histogram.
        self.fanout_samples: list[float] = []
        # What happens once per connection, load, commit, hook call... (see `count`, `observe`).
        self.events: dict[tuple[str, str], int] = {}
        self.samples: dict[tuple[str, str], list[float]] = {}

    def count(self, counter: str, label: str = "", n: int = 1) -> None:
        """Add to a counter of things that are not per message (metrics.py names them)."""
        key = (counter, label)
        self.events[key] = self.events.get(key, 0) + n

    def observe(self, histogram: str, value: float, label: str = "") -> None:
        """Keep one observation for a histogram (metrics.py names them) until the next sync."""
        samples = self.samples.setdefault((histogram, label), [])
        if len(samples) < MAX_SAMPLES:
            samples.append(value)

    def sent_to(self, message: bytes, recipients: int) -> None:
        """One message went to `recipients` members (called once per broadcast)."""
        self.sent[message_type(message)] += recipients
        self.bytes_out += len(message) * recipients
