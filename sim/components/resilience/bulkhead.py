"""The bulkhead: a cap on the calls in flight to one system.

A semaphore bulkhead as resilience4j's (``architecture.resilience.bulkhead``):
a call beyond the cap is refused at once instead of waiting, so a slow system
cannot tie up every worker of its callers. A :class:`Guard
<sim.components.resilience.guard.Guard>` asks it before each call and frees the slot when
the call's outcome is known.
"""

from __future__ import annotations

__all__ = ["Bulkhead"]


class Bulkhead:
    """A semaphore bulkhead: at most ``limit`` calls in flight, the others rejected."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0
        self.peak = 0
        self.rejected = 0

    def acquire(self) -> bool:
        if self.in_flight >= self.limit:
            self.rejected += 1
            return False
        self.in_flight += 1
        if self.in_flight > self.peak:
            self.peak = self.in_flight
        return True

    def release(self) -> None:
        self.in_flight -= 1
