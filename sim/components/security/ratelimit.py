"""Per-user rate limiting at the gateway: one token bucket per user.

A standalone component: the gateway (``sim.model.server.gateway``) takes a token for
every send when ``architecture.rate_limit`` asks for token buckets. Like the
rest of the simulator it is a callback object, not a SimPy process, and keeps
state only for users who actually sent something.
"""

from __future__ import annotations

#: Token shortfall the bucket forgives, in tokens. Simulated times are sums of
#: floats, so a sender at exactly the refill rate may find 0.999999999999 tokens
#: where the exact arithmetic gives 1; without the tolerance it would be refused.
#: The bucket never goes below zero, so the forgiven amounts cannot accumulate.
TOKEN_EPSILON = 1e-9


class TokenBuckets:
    """A token bucket per user: ``rate_per_s`` tokens a second, at most ``burst`` held.

    A send takes one token; a send finding less than one token is refused (and
    takes nothing). Buckets are refilled lazily: a user's state is ``(tokens,
    time of last send)``, kept only for users who sent, and brought up to date
    when the user sends again. A new user starts with a full bucket.

    Over any interval of length ``d`` a user gets at most ``burst + rate_per_s * d``
    sends through; a user sending at a steady rate ``r <= rate_per_s`` is never
    refused once the bucket has been emptied by an initial burst, and one sending
    steadily at ``r > rate_per_s`` has a fraction ``rate_per_s / r`` accepted in
    the long run.
    """

    __slots__ = ("_state", "accepted", "burst", "rate_per_s", "refused")

    def __init__(self, rate_per_s: float, burst: float) -> None:
        if rate_per_s <= 0:
            raise ValueError(f"rate_per_s must be > 0, got {rate_per_s}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst}")
        self.rate_per_s = float(rate_per_s)
        self.burst = float(burst)
        self._state: dict[int, tuple[float, float]] = {}
        self.accepted = 0
        self.refused = 0

    def take(self, user: int, now: float) -> bool:
        """Take a token for one send of ``user`` at ``now``; False: the send is refused."""
        state = self._state.get(user)
        if state is None:
            tokens = self.burst
        else:
            tokens = state[0] + (now - state[1]) * self.rate_per_s
            if tokens > self.burst:
                tokens = self.burst
        if tokens < 1.0 - TOKEN_EPSILON:
            self._state[user] = (tokens, now)
            self.refused += 1
            return False
        tokens -= 1.0
        self._state[user] = (tokens if tokens > 0.0 else 0.0, now)
        self.accepted += 1
        return True

    def tokens(self, user: int, now: float) -> float:
        """Tokens ``user`` holds at ``now`` (without taking any)."""
        state = self._state.get(user)
        if state is None:
            return self.burst
        return min(self.burst, state[0] + (now - state[1]) * self.rate_per_s)

    @property
    def users(self) -> int:
        """Users with a bucket: those who sent at least once."""
        return len(self._state)
