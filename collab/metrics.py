"""The server's numbers: what /metrics exposes (Prometheus, through prometheus-client) and the
admin page's overview (`series()`).

The hot path never calls the library. Rooms, admission, the saver and the hooks add plain ints
to the hub's `Counts` (collab/counts.py), and keep the few observations of what happens once per
connection, load, commit batch, compaction or hook call (and one fan-out in 32) in lists there.
`Metrics.sync()` turns them into prometheus-client values: once a second, and before each scrape
this process answers (so a single process's /metrics is exact).

With `--workers N` the supervisor gives every worker one fresh PROMETHEUS_MULTIPROC_DIR
(collab/server.py): prometheus-client's multiprocess mode. Each worker writes its values to its
own files there; the worker that answers /metrics reads everybody's (MultiProcessCollector), so
counters and histograms are summed over the workers (those of a dead worker stay in the sums,
as counters must), gauges are summed over the live ones (`livesum`), and what every worker reads
from the shared store (documents stored, the event backlog) is the latest any live one read.
Another worker's values are at most a second old.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, get_args

import anyio
from anyio.abc import TaskGroup
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from .counts import MESSAGE_TYPES, PROTOCOLS, REFUSE_REASONS, Counts
from .errors import CloseCode
from .hooks import HookName
from .settings import Settings

if TYPE_CHECKING:
    from .events.feed import EventFeed
    from .hub import Hub
    from .protocols.signaling import Signaling

log = logging.getLogger(__name__)

SAMPLE_EVERY_S = 2.0
SERIES_SPAN_S = 600.0  # the admin page's charts: the last ten minutes
SYNC_EVERY_S = 1.0
STORE_EVERY_S = 30.0  # documents stored and the event backlog: a query each, this often
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

Sample = dict[str, float | None]
# collab_signal_messages_total's kinds: the Signaling counters of the same names
SIGNAL_KINDS = ("published", "delivered", "relayed_in", "relayed_out")

HOOK_NAMES: tuple[str, ...] = get_args(HookName)
STORE_OPERATIONS = ("commit", "compaction", "clients")
BUS_DIRECTIONS = ("published", "received", "dropped")
CLOSE_CODES = (*(str(int(code)) for code in CloseCode), "1005", "1006", "other")
SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
FAST_SECONDS = (0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.01, 0.1)
ROWS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)


def close_code_label(code: int) -> str:
    """A close code as its label: the codes of the table (and 1005/1006, what a vanished or
    silent client reports), else "other" (labels stay bounded)."""
    label = str(code)
    return label if label in CLOSE_CODES else "other"


class Metrics:
    """One per app (`app.state.metrics`): the Prometheus metrics, and the overview's series."""

    def __init__(
        self,
        settings: Settings,
        hub: Hub,
        events: EventFeed | None = None,
        signaling: Signaling | None = None,
    ) -> None:
        self.settings = settings
        self.hub = hub
        self.events = events
        self.signaling = signaling
        self.counts: Counts | None = hub.counts
        self.enabled = self.counts is not None
        self._series: deque[Sample] = deque(maxlen=int(SERIES_SPAN_S / SAMPLE_EVERY_S))
        self.multiprocess_dir = os.environ.get(MULTIPROC_ENV) or None
        self.registry = CollectorRegistry(auto_describe=True)
        if self.enabled and not self.multiprocess_dir:
            ProcessCollector(registry=self.registry)  # process_cpu_seconds_total, memory, fds
        self._synced: dict[Any, float] = {}  # counter child -> the total it was last given
        self._store_read_at = -1e9
        self._previous: tuple[float, dict[str, float]] | None = None
        if self.enabled:
            self._define()

    # -- the metrics ---------------------------------------------------------------------------

    def _define(self) -> None:
        r = self.registry

        def gauge(name: str, doc: str, labels: Iterable[str] = (), mode: str = "livesum") -> Gauge:
            return Gauge(name, doc, list(labels), registry=r, multiprocess_mode=mode)  # type: ignore[arg-type]

        def counter(name: str, doc: str, labels: Iterable[str] = ()) -> Counter:
            return Counter(name, doc, list(labels), registry=r)

        def histogram(
            name: str, doc: str, buckets: Iterable[float], labels: Iterable[str] = ()
        ) -> Histogram:
            return Histogram(name, doc, list(labels), registry=r, buckets=list(buckets))

        self.connections = gauge("collab_connections", "Open connections.", ["protocol"])
        self.rooms = gauge("collab_rooms", "Documents loaded in memory.")
        self.awareness_states = gauge("collab_awareness_states", "Awareness states held.")
        self.documents_stored = gauge(
            "collab_documents_stored", "Documents in the store (read every 30 s).", mode="livemax"
        )
        self.outbound_bytes = gauge(
            "collab_outbound_queued_bytes", "Bytes written to clients and not yet sent."
        )
        self.uncommitted = gauge(
            "collab_uncommitted_updates", "Updates applied and not yet committed."
        )
        self.event_backlog = gauge(
            "collab_event_backlog",
            "The change feeds' backlog (read every 30 s): deliveries pending and failed, "
            "documents with changes not yet made into events.",
            ["state"],
            mode="livemax",
        )
        self.opened = counter(
            "collab_connections_opened", "Connections admitted to a document.", ["protocol"]
        )
        self.closed = counter(
            "collab_connections_closed", "Connections closed, by close code.", ["code"]
        )
        self.received = counter(
            "collab_messages_received", "Messages from clients, by type.", ["type"]
        )
        self.sent = counter(
            "collab_messages_sent", "Messages to clients (one per recipient), by type.", ["type"]
        )
        self.bytes_in = counter("collab_received_bytes", "Bytes of the messages received.")
        self.bytes_out = counter("collab_sent_bytes", "Bytes of the messages sent.")
        self.applied = counter("collab_updates_applied", "Client updates applied.")
        self.refused = counter("collab_updates_refused", "Updates refused, by reason.", ["reason"])
        self.committed = counter("collab_updates_committed", "Updates committed to the store.")
        self.commits = counter("collab_commits", "Commits (one transaction each).")
        self.hook_errors = counter("collab_hook_errors", "Hook calls that raised.", ["hook"])
        self.store_errors = counter(
            "collab_store_errors", "Store operations that failed.", ["operation"]
        )
        self.load_errors = counter("collab_document_load_errors", "Document loads that failed.")
        self.bus = counter("collab_bus_messages", "Cluster bus messages.", ["direction"])
        self.compactions = counter("collab_compactions", "Compactions of a document's log.")
        self.signal_sockets = gauge("collab_signal_connections", "Open /signal (y-webrtc) sockets.")
        self.signal_topics = gauge("collab_signal_topics", "y-webrtc topics subscribed here.")
        self.signal_messages = counter(
            "collab_signal_messages", "y-webrtc signalling messages, by kind.", ["kind"]
        )
        self.commit_latency = histogram(
            "collab_commit_latency_seconds",
            "From arrival to durable, of the oldest update of each commit.",
            SECONDS,
        )
        self.commit_batch = histogram(
            "collab_commit_batch_size", "Updates (rows) per commit.", ROWS
        )
        self.load_time = histogram(
            "collab_document_load_seconds", "Loading a document from the store.", SECONDS
        )
        self.fanout = histogram(
            "collab_fanout_seconds",
            "Sending one update to a room's other members (one update in 32 is timed).",
            FAST_SECONDS,
        )
        self.compaction_time = histogram(
            "collab_compaction_seconds", "Compacting a document's log.", SECONDS
        )
        self.hook_time = histogram(
            "collab_hook_duration_seconds", "One extension's hook call.", SECONDS, ["hook"]
        )
        self.handshake = histogram(
            "collab_handshake_seconds",
            "From a socket asking for a document to its joining (hooks, auth, load).",
            SECONDS,
        )
        # Every bounded label value exists from the start (0 until it happens).
        for protocol in PROTOCOLS:
            self.connections.labels(protocol)
            self.opened.labels(protocol)
        for code in CLOSE_CODES:
            self.closed.labels(code)
        for kind in MESSAGE_TYPES:
            self.received.labels(kind)
            self.sent.labels(kind)
        for reason in REFUSE_REASONS:
            self.refused.labels(reason)
        for hook in HOOK_NAMES:
            self.hook_errors.labels(hook)
        for operation in STORE_OPERATIONS:
            self.store_errors.labels(operation)
        for direction in BUS_DIRECTIONS:
            self.bus.labels(direction)
        for kind in SIGNAL_KINDS:
            self.signal_messages.labels(kind)
        for state in ("pending", "failed", "open_changes"):
            self.event_backlog.labels(state)
        self._histograms: dict[str, Histogram] = {
            "commit_latency": self.commit_latency,
            "commit_batch": self.commit_batch,
            "load": self.load_time,
            "compaction": self.compaction_time,
            "hook": self.hook_time,
            "handshake": self.handshake,
        }

    # -- the loop ------------------------------------------------------------------------------

    def start(self, tg: TaskGroup) -> None:
        self._previous = (time.monotonic(), self._totals())  # the first sample's rates: since now
        tg.start_soon(self._run_forever)

    async def _run_forever(self) -> None:
        sampled = 0.0
        while True:
            now = time.monotonic()
            # (sampled before the store is read: the first sample is taken as the server starts,
            # not after a COUNT that a busy store may take a while to answer)
            if now - sampled >= SAMPLE_EVERY_S - 0.01:
                sampled = now
                self._series.append(self.sample())
            if self.enabled:
                try:
                    self.sync()
                    if now - self._store_read_at >= STORE_EVERY_S:
                        await self.read_store()
                except Exception:  # never let a metric take the server down
                    log.exception("updating the metrics failed")
            await anyio.sleep(SYNC_EVERY_S)

    # -- from the counts to prometheus-client --------------------------------------------------

    def _add(self, child: Any, total: float) -> None:
        """Bring a counter child to `total` (what the server counted since start)."""
        delta = total - self._synced.get(child, 0.0)
        if delta > 0:
            child.inc(delta)
            self._synced[child] = total

    def sync(self) -> None:
        """Hand what was counted since the last sync to prometheus-client (cheap: a few dozen
        calls, the sampled observations, one pass over the connections)."""
        counts = self.counts
        if counts is None:
            return
        hub, add = self.hub, self._add
        for i, protocol in enumerate(PROTOCOLS):
            add(self.opened.labels(protocol), counts.opened[i])
        for code, n in list(counts.closed.items()):
            add(self.closed.labels(close_code_label(code)), self._closed_total(code, n))
        for i, kind in enumerate(MESSAGE_TYPES):
            add(self.received.labels(kind), counts.received[i])
            add(self.sent.labels(kind), counts.sent[i])
        for i, reason in enumerate(REFUSE_REASONS):
            add(self.refused.labels(reason), counts.refused[i])
        add(self.bytes_in, counts.bytes_in)
        add(self.bytes_out, counts.bytes_out)
        add(self.applied, counts.updates_applied)
        add(self.committed, hub.saver.committed)
        add(self.commits, hub.saver.commits)
        events = counts.events
        for (name, label), n in list(events.items()):
            child = self._event_child(name, label)
            if child is not None:
                add(child, n)
        if hub.cluster is not None:
            for direction, n in zip(BUS_DIRECTIONS, hub.cluster.message_counts(), strict=True):
                add(self.bus.labels(direction), n)
        signaling = self.signaling
        if signaling is not None:
            for kind in SIGNAL_KINDS:
                add(self.signal_messages.labels(kind), getattr(signaling, kind))
        samples, counts.fanout_samples = counts.fanout_samples, []
        for value in samples:
            self.fanout.observe(value)
        pending, counts.samples = counts.samples, {}
        for (name, label), values in pending.items():
            histogram = self._histograms[name]
            target = histogram.labels(label) if label else histogram
            for value in values:
                target.observe(value)
        self._set_gauges()

    def _closed_total(self, code: int, n: int) -> float:
        """Codes outside the table share the "other" label: their counts are summed."""
        if close_code_label(code) != "other":
            return n
        assert self.counts is not None
        closed = self.counts.closed
        return sum(v for c, v in list(closed.items()) if close_code_label(c) == "other")

    def _event_child(self, name: str, label: str) -> Any:
        if name == "hook_errors":
            return self.hook_errors.labels(label) if label in HOOK_NAMES else None
        if name == "store_errors":
            return self.store_errors.labels(label)
        if name == "load_errors":
            return self.load_errors
        if name == "compactions":
            return self.compactions
        return None  # (commit_rows, commit_wait_ms: the overview's)

    def _set_gauges(self) -> None:
        hub = self.hub
        by_protocol = [0] * len(PROTOCOLS)
        queued = 0
        for session in list(hub.connections):
            by_protocol[session.framing] += 1
            queued += _queued_bytes(session.socket)
        for i, protocol in enumerate(PROTOCOLS):
            self.connections.labels(protocol).set(by_protocol[i])
        self.outbound_bytes.set(queued)
        self.rooms.set(len(hub.rooms))
        self.awareness_states.set(sum(len(room.awareness) for room in list(hub.rooms.values())))
        self.uncommitted.set(hub.saver.recorded - hub.saver.committed)
        if self.signaling is not None:
            self.signal_sockets.set(len(self.signaling.peers))
            self.signal_topics.set(len(self.signaling.topics))

    async def read_store(self) -> None:
        """The gauges that take a query: documents stored, the event backlog (bounded: a store
        that does not answer leaves them as they were)."""
        self._store_read_at = time.monotonic()
        with anyio.move_on_after(2.0):
            count = getattr(self.hub.store, "count_documents", None)
            if count is not None:
                self.documents_stored.set(await count())
            if self.events is not None:
                backlog = await self.events.backlog()
                for state in ("pending", "failed", "open_changes"):
                    self.event_backlog.labels(state).set(backlog.get(state, 0))

    # -- /metrics ------------------------------------------------------------------------------

    async def exposition(self) -> bytes:
        """The Prometheus text of this process, or of every worker in multiprocess mode."""
        self.sync()
        if time.monotonic() - self._store_read_at >= STORE_EVERY_S:
            try:
                await self.read_store()
            except Exception:
                log.exception("reading the store's gauges failed")
        if self.multiprocess_dir:
            directory = self.multiprocess_dir

            def collect() -> bytes:
                registry = CollectorRegistry()
                MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
                return generate_latest(registry)

            return await anyio.to_thread.run_sync(collect)
        return generate_latest(self.registry)

    # -- the admin overview --------------------------------------------------------------------

    def _totals(self) -> dict[str, float]:
        saver = self.hub.saver
        counts = self.counts
        totals = {"updates": float(saver.recorded)}
        if counts is not None:
            totals["in"] = float(sum(counts.received))
            totals["out"] = float(sum(counts.sent))
            totals["updates"] = float(counts.updates_applied)
            totals["rows"] = float(counts.events.get(("commit_rows", ""), 0))
            totals["wait_ms"] = float(counts.events.get(("commit_wait_ms", ""), 0))
        return totals

    def sample(self) -> Sample:
        """Now, for the overview: t (unix seconds), connections, rooms, messages_in_per_s,
        messages_out_per_s, updates_per_s (rates since the previous sample), commit_latency_ms
        (mean from arrival to durable of the updates committed since the previous sample;
        None when nothing was). Every other value is a number (the admin API's model says so):
        with metrics off the message rates are 0 (nothing is counted), the latency None, and
        updates_per_s counts the updates handed to the store."""
        now = time.monotonic()
        totals = self._totals()
        previous, self._previous = self._previous, (now, totals)
        rates = {"in": 0.0, "out": 0.0, "updates": 0.0}
        latency: float | None = None
        if previous is not None and now > previous[0]:
            then, before = previous
            span = now - then
            for key in rates:
                if key in totals:
                    rates[key] = max(0.0, totals[key] - before.get(key, 0.0)) / span
            rows = totals.get("rows", 0.0) - before.get("rows", 0.0)
            if rows > 0:
                latency = (totals["wait_ms"] - before.get("wait_ms", 0.0)) / rows
        return {
            "t": time.time(),
            "connections": float(len(self.hub.connections)),
            "rooms": float(len(self.hub.rooms)),
            "messages_in_per_s": rates["in"],
            "messages_out_per_s": rates["out"],
            "updates_per_s": rates["updates"],
            "commit_latency_ms": latency,
        }

    def series(self) -> list[Sample]:
        """The samples of the last ten minutes, oldest first, one every two seconds."""
        return list(self._series)


def _queued_bytes(socket: Any) -> int:
    """What a socket has written and not sent: the fast path's transport buffer, the ASGI
    path's queue."""
    transport = getattr(socket, "transport", None)
    if transport is not None:
        try:
            return int(transport.get_write_buffer_size())
        except Exception:  # (a transport closing under us)
            return 0
    return int(getattr(socket, "_queued", 0))
