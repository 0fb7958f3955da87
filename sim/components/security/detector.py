"""The gateway's abuse detector: blocks users whose send rate is too high.

A sliding-window rate estimate per user built from two fixed windows, as
Cloudflare's rate limiter does; a user above the threshold is blocked for a
while. A standalone component: with ``architecture.monitoring.detector`` on,
the gateway (``sim.model.server.gateway``) shows it every send and closes a blocked
user's connection. It is a callback object, not a SimPy process, and keeps
state only for users who actually sent something.
"""

from __future__ import annotations

import math
from collections.abc import Callable


class Detector:
    """Blocks users whose send rate, estimated over a sliding window, exceeds a threshold.

    The estimate is the one of Cloudflare's rate limiter (J. Desgats, "How we
    built rate limiting capable of scaling to millions of domains", Cloudflare
    blog, 2017): time is cut into fixed windows of ``window_s``; each user has
    the count of the current window and of the previous one, and at a fraction
    ``p`` into the current window the sends of the last ``window_s`` are
    estimated as ``previous * (1 - p) + current``, assuming the previous
    window's sends were spread evenly. Two counters per user, no timestamps.

    A send is counted, then the estimate compared with ``threshold_per_s *
    window_s``; above it, the user is blocked from that instant until
    ``now + block_s``: that send and every send until then are refused. The
    user's counters restart at the block, so after it the user is judged on
    what it sends from then on.

    Counts include the send being judged, so a strictly periodic sender at
    exactly the threshold may be blocked at a window boundary (the estimate
    then counts one send more than the window holds); a sender comfortably
    below it, never.
    """

    __slots__ = (
        "_blocked_until",
        "_state",
        "block_s",
        "blocked",
        "limit",
        "on_block",
        "refused",
        "threshold_per_s",
        "window_s",
    )

    def __init__(
        self,
        threshold_per_s: float,
        window_s: float,
        block_s: float,
        on_block: Callable[[int, float], None] | None = None,
    ) -> None:
        if threshold_per_s <= 0 or window_s <= 0 or block_s <= 0:
            raise ValueError(
                "threshold_per_s, window_s and block_s must be > 0, got "
                f"{threshold_per_s}, {window_s}, {block_s}"
            )
        self.threshold_per_s = float(threshold_per_s)
        self.window_s = float(window_s)
        self.block_s = float(block_s)
        #: sends a window may hold before the user is blocked
        self.limit = self.threshold_per_s * self.window_s
        #: called as ``on_block(user, now)`` once per block, e.g. to close connections
        self.on_block = on_block
        # per user: [index of the current window, its count, the previous window's count]
        self._state: dict[int, list[int]] = {}
        self._blocked_until: dict[int, float] = {}
        #: every block, in time order: (user, blocked_at_s)
        self.blocked: list[tuple[int, float]] = []
        #: sends refused because their user was blocked (including the blocking send)
        self.refused = 0

    def observe(self, user: int, now: float) -> bool:
        """Count a send of ``user`` at ``now``; True: the user is blocked, refuse it."""
        until = self._blocked_until.get(user)
        if until is not None:
            if now < until:
                self.refused += 1
                return True
            del self._blocked_until[user]
        window_s = self.window_s
        index = math.floor(now / window_s)
        state = self._state.get(user)
        if state is None:
            state = [index, 0, 0]
            self._state[user] = state
        elif state[0] != index:
            state[2] = state[1] if state[0] == index - 1 else 0
            state[1] = 0
            state[0] = index
        state[1] += 1
        elapsed = now - index * window_s
        estimate = state[2] * (1.0 - elapsed / window_s) + state[1]
        if estimate <= self.limit:
            return False
        self._blocked_until[user] = now + self.block_s
        del self._state[user]
        self.blocked.append((user, now))
        self.refused += 1
        if self.on_block is not None:
            self.on_block(user, now)
        return True

    def is_blocked(self, user: int, now: float) -> bool:
        """Whether ``user`` is blocked at ``now`` (a block lasts ``[at, at + block_s)``)."""
        until = self._blocked_until.get(user)
        return until is not None and now < until

    def estimate(self, user: int, now: float) -> float:
        """The sliding-window estimate of ``user``'s sends in the last ``window_s`` at ``now``."""
        state = self._state.get(user)
        if state is None:
            return 0.0
        index = math.floor(now / self.window_s)
        if state[0] == index:
            current, previous = state[1], state[2]
        elif state[0] == index - 1:
            current, previous = 0, state[1]
        else:
            return 0.0
        return previous * (1.0 - (now - index * self.window_s) / self.window_s) + current

    @property
    def blocked_users(self) -> int:
        """Distinct users blocked at least once."""
        return len({user for user, _ in self.blocked})
