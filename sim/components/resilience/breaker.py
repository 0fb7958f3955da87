"""The circuit breaker: stops calling a system that fails, then tries it again.

Closed, open and half-open with a count or time sliding window, as resilience4j
does it (``architecture.resilience.circuit_breaker``). A :class:`Guard
<sim.components.resilience.guard.Guard>` asks it before each call and reports each
outcome to it.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque

from sim.core.kernel import Kernel
from sim.scenario.resilience import BreakerWindow
from sim.scenario.resilience import CircuitBreaker as BreakerSpec

__all__ = ["CLOSED", "HALF_OPEN", "OPEN", "STATE_LEVEL", "CircuitBreaker"]

CLOSED = "closed"
HALF_OPEN = "half_open"
OPEN = "open"
#: the level of each state in the ``breaker_state`` timeseries column
STATE_LEVEL = {CLOSED: 0.0, HALF_OPEN: 0.5, OPEN: 1.0}


class CircuitBreaker:
    """Closed, open, half-open, with a count or time sliding window (resilience4j).

    ``acquire()`` asks to make a call: it returns the breaker's *generation*, to be
    given back with the call's outcome to :meth:`record`, or ``-1`` when the call
    must fail at once (open, or half-open with every trial taken). Outcomes of
    calls permitted in an earlier generation (before the last state change) are
    ignored, as resilience4j ignores calls that straddle a transition.
    The wait in the open state is a timer, so transitions happen at their time
    (resilience4j's ``automaticTransitionFromOpenToHalfOpenEnabled``).
    """

    def __init__(self, spec: BreakerSpec, kernel: Kernel, name: str) -> None:
        self.kernel = kernel
        self.name = name
        self.count_window = spec.window is BreakerWindow.COUNT
        self.window_calls = spec.window_calls
        self.window_s = spec.window_s
        # resilience4j: a count window smaller than minimumNumberOfCalls judges when full
        self.minimum_calls = (
            min(spec.minimum_calls, spec.window_calls) if self.count_window else spec.minimum_calls
        )
        self.failure_rate_threshold = spec.failure_rate_threshold
        self.slow_call_s = spec.slow_call_s
        self.slow_call_rate_threshold = spec.slow_call_rate_threshold
        self.open_wait_s = spec.open_wait_s
        self.half_open_calls = spec.half_open_calls
        self.state = CLOSED
        self.generation = 0
        #: window entries: (time, failed, slow)
        self._window: deque[tuple[float, bool, bool]] = deque()
        self._failures = 0
        self._slow = 0
        self._trials = 0
        self._trials_ok = 0
        #: every state change: (time, from, to, why)
        self.transitions: list[tuple[float, str, str, str]] = []
        self.opened = 0
        self.rejected = 0
        self.calls = 0

    # ------------------------------------------------------------ calls

    def acquire(self) -> int:
        state = self.state
        if state == CLOSED:
            self.calls += 1
            return self.generation
        if state == HALF_OPEN and self._trials < self.half_open_calls:
            self._trials += 1
            self.calls += 1
            return self.generation
        self.rejected += 1
        return -1

    def release(self, generation: int) -> None:
        """A permitted call was not made after all (the bulkhead was full)."""
        self.calls -= 1
        if generation == self.generation and self.state == HALF_OPEN:
            self._trials -= 1

    def record(self, generation: int, failed: bool, duration_s: float) -> None:
        if generation != self.generation:
            return
        slow = duration_s > self.slow_call_s
        if self.state == HALF_OPEN:
            if failed or slow:
                what = "slow" if not failed else "failed"
                self._move(OPEN, f"a trial call {what}")
                return
            self._trials_ok += 1
            if self._trials_ok >= self.half_open_calls:
                self._move(CLOSED, f"{self._trials_ok} trial calls succeeded")
            return
        if self.state != CLOSED:
            return
        now = self.kernel.now
        window = self._window
        window.append((now, failed, slow))
        self._failures += failed
        self._slow += slow
        if self.count_window:
            if len(window) > self.window_calls:
                self._evict()
        else:
            horizon = now - self.window_s
            while window and window[0][0] <= horizon:
                self._evict()
        calls = len(window)
        if calls < self.minimum_calls:
            return
        failure_rate = self._failures / calls
        slow_rate = self._slow / calls
        if failure_rate >= self.failure_rate_threshold:
            self._move(OPEN, f"failure rate {failure_rate:.0%} of {calls} calls")
        elif slow_rate >= self.slow_call_rate_threshold:
            self._move(OPEN, f"slow-call rate {slow_rate:.0%} of {calls} calls")

    def _evict(self) -> None:
        _, failed, slow = self._window.popleft()
        self._failures -= failed
        self._slow -= slow

    # ------------------------------------------------------------ states

    def _move(self, to: str, why: str) -> None:
        now = self.kernel.now
        self.transitions.append((now, self.state, to, why))
        self.state = to
        self.generation += 1
        self._window.clear()
        self._failures = self._slow = 0
        self._trials = self._trials_ok = 0
        if to == OPEN:
            self.opened += 1
            self.kernel.after(self.open_wait_s, self._wait_over, self.generation)

    def _wait_over(self, generation: int) -> None:
        if generation == self.generation and self.state == OPEN:
            self._move(HALF_OPEN, f"{self.open_wait_s:g} s open")

    def state_at(self, t: float) -> str:
        """The state at time ``t`` (after any change at exactly ``t``)."""
        times = [at for at, *_ in self.transitions]
        i = bisect_right(times, t)
        return self.transitions[i - 1][2] if i else CLOSED

    def open_s(self, start: float, end: float) -> float:
        """Time spent open within ``[start, end)``."""
        total = 0.0
        state, since = CLOSED, 0.0
        for at, _, to, _ in self.transitions:
            if state == OPEN:
                total += max(0.0, min(at, end) - max(since, start))
            state, since = to, at
        if state == OPEN:
            total += max(0.0, end - max(since, start))
        return total
