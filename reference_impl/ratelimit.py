"""Token-bucket rate limiting per user, driven by the time passed in."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class TokenBucket:
    """Allows bursts of ``burst`` requests and ``rate_per_s`` sustained.

    The bucket refills lazily on each request from the elapsed time, so it
    needs no timer.
    """

    rate_per_s: float
    burst: float
    tokens: float
    updated_s: float

    def try_take(self, now_s: float, cost: float = 1.0) -> bool:
        """Take ``cost`` tokens if available at ``now_s``; return whether allowed."""
        elapsed_s = max(0.0, now_s - self.updated_s)
        self.tokens = min(self.burst, self.tokens + elapsed_s * self.rate_per_s)
        self.updated_s = max(self.updated_s, now_s)
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False


@dataclass(slots=True)
class RateLimiter:
    """One :class:`TokenBucket` per user, created full on first use.

    ``rate_per_s <= 0`` disables limiting (every request allowed).
    """

    rate_per_s: float
    burst: float
    _buckets: dict[str, TokenBucket] = field(default_factory=dict)

    def allow(self, user: str, now_s: float) -> bool:
        """Whether ``user`` may make one more request at ``now_s``."""
        if self.rate_per_s <= 0:
            return True
        bucket = self._buckets.get(user)
        if bucket is None:
            bucket = TokenBucket(self.rate_per_s, self.burst, self.burst, now_s)
            self._buckets[user] = bucket
        return bucket.try_take(now_s)
