"""Per-peer token buckets: how many messages a peer may send, at once and per second, before the rest are
dropped (and counted by the caller).

A peer may send ``burst`` messages at once and ``rate_per_s`` per second on average. The table is bounded
(``max_peers``): when it is full, buckets that have refilled completely (their peer has been quiet for
``burst / rate_per_s`` seconds) make room, and a new peer that still finds no room shares one overflow bucket
with every other such peer, so a crowd of new peers cannot grow memory or outrun the limit.

Time: integer nanoseconds on the caller's clock (``time.monotonic_ns()`` in stagectl); single-threaded (the
caller's service thread).
"""

from __future__ import annotations

from collections.abc import Hashable

__all__ = ["PeerRates"]

_OVERFLOW = object()


class PeerRates:
    """Token buckets by peer key (a ZeroMQ routing id, a CURVE User-Id).

    :param rate_per_s: messages per second a peer may keep sending (> 0).
    :param burst: messages a quiet peer may send at once (>= 1).
    :param max_peers: most buckets kept (the overflow bucket aside).
    """

    def __init__(self, rate_per_s: float, burst: float, max_peers: int = 1024) -> None:
        if not rate_per_s > 0 or not burst >= 1 or max_peers < 1:
            raise ValueError(f"rate {rate_per_s}/s, burst {burst}, max_peers {max_peers}: expected a positive "
                             "rate, a burst of at least 1 and at least one peer")
        self.rate_per_ns = float(rate_per_s) / 1e9
        self.burst = float(burst)
        self.max_peers = int(max_peers)
        self._buckets: dict[Hashable, list[float]] = {}  # key -> [tokens, last refill ns]

    def __len__(self) -> int:
        return len(self._buckets)

    def allow(self, key: Hashable, now_ns: int) -> bool:
        """Take one token from ``key``'s bucket: True when the peer is within its rate (send on), False when it
        is over (drop the message)."""
        b = self._buckets.get(key)
        if b is None:
            if len(self._buckets) >= self.max_peers:
                self.forget_idle(now_ns)
            if len(self._buckets) >= self.max_peers:
                key = _OVERFLOW
                b = self._buckets.get(key)
            if b is None:
                b = self._buckets[key] = [self.burst, float(now_ns)]
        tokens = min(self.burst, b[0] + (now_ns - b[1]) * self.rate_per_ns)
        b[1] = float(now_ns)
        if tokens >= 1.0:
            b[0] = tokens - 1.0
            return True
        b[0] = tokens
        return False

    def forget_idle(self, now_ns: int) -> None:
        """Drop the buckets that have refilled completely (as a new bucket would be)."""
        full = [k for k, (t, last) in self._buckets.items() if t + (now_ns - last) * self.rate_per_ns >= self.burst]
        for k in full:
            del self._buckets[k]
