"""Rate and count limits: token buckets per connection, counters per IP address."""

from __future__ import annotations

import time
from collections import defaultdict, deque


class TokenBucket:
    """Allows `rate` per second on average and bursts of up to `burst`."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = time.monotonic()

    def take(self, amount: float = 1.0) -> bool:
        now = time.monotonic()
        tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if tokens < amount:
            self.tokens = tokens
            return False
        self.tokens = tokens - amount
        return True


class IpLimits:
    """Open connections per IP, and connection attempts per IP in the last minute; a limit of 0
    is no limit (the default: many people share one address, see docs/limits.md)."""

    def __init__(self, max_connections: int, max_attempts_per_minute: int) -> None:
        self.max_connections = max_connections
        self.max_attempts = max_attempts_per_minute
        self.open: dict[str, int] = defaultdict(int)
        self._attempts: dict[str, deque[float]] = {}

    @property
    def enabled(self) -> bool:
        return bool(self.max_connections or self.max_attempts)

    def attempt(self, ip: str) -> str | None:
        """Count an attempt; return why it is refused, or None."""
        if self.max_attempts:
            now = time.monotonic()
            attempts = self._attempts.setdefault(ip, deque())
            while attempts and attempts[0] <= now - 60:
                attempts.popleft()
            attempts.append(now)
            if len(attempts) > self.max_attempts:
                return "too many connection attempts from this address"
        if self.max_connections and self.open[ip] >= self.max_connections:
            return "too many connections from this address"
        return None

    def opened(self, ip: str) -> None:
        if self.max_connections:
            self.open[ip] += 1

    def closed(self, ip: str) -> None:
        if not self.max_connections:
            return
        left = self.open[ip] - 1
        if left > 0:
            self.open[ip] = left
        else:
            self.open.pop(ip, None)

    def prune(self) -> None:
        """Forget addresses with no attempt in the last minute (called once a second)."""
        if not self._attempts:
            return
        cutoff = time.monotonic() - 60
        for ip in [ip for ip, q in self._attempts.items() if not q or q[-1] <= cutoff]:
            del self._attempts[ip]
