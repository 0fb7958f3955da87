"""Defences: retry backoff, circuit breakers, bulkheads, load shedding, degradation.

The message service calls two systems, the store (writes, and the reads behind
syncs and polls) and the broker (publishes). A :class:`Guard` stands between the
service and each of them: a :class:`CircuitBreaker` that stops calling a
system that fails, a :class:`Bulkhead` that caps the calls in flight, and the
service's request timeout, which counts as a failure. A call the guard refuses
fails at once: the caller's error path runs without touching the system. One
guard per system is shared by the whole message-service tier (as a shared
client or a sidecar proxy would be; per-instance breakers would each see
1/n of the calls and trip later).

How an outcome reaches the breaker: :meth:`Guard.begin` hands back a
:class:`GuardedCall` whose ``ok`` and ``error`` replace the caller's callbacks
given to the system. The first of ``ok``, ``error`` and the call's own timer
(the request timeout) decides the outcome the breaker records (a timeout is a
failure; a success slower than ``slow_call_s`` is slow) and frees the bulkhead
slot; the system's answer is still passed on to the caller when it comes late,
as before.

Load shedding (:attr:`Defences.shed_queue_length`) and the degradation policy
(:class:`WriteBuffer`, the read cache) are applied by :mod:`sim.model.server`;
:class:`Defences` holds their settings and counters, and reports everything
for ``Result.faults``, the timeseries and ``Result.meta["counters"]``.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from collections.abc import Callable
from typing import Any

from sim.core.kernel import Kernel, Timeouts
from sim.core.metrics import Message
from sim.scenario.resilience import Backoff, BreakerWindow, DegradationPolicy, Resilience
from sim.scenario.resilience import CircuitBreaker as BreakerSpec

CLOSED = "closed"
HALF_OPEN = "half_open"
OPEN = "open"
#: the level of each state in the ``breaker_state`` timeseries column
STATE_LEVEL = {CLOSED: 0.0, HALF_OPEN: 0.5, OPEN: 1.0}

Callback = Callable[[Any], None]


def backoff_s(
    kind: Backoff,
    retry: int,
    base_s: float,
    cap_s: float,
    uniform: Callable[[], float],
    previous_s: float,
) -> float:
    """The delay before retry number ``retry`` (1 for the first).

    M. Brooker, "Exponential Backoff and Jitter", AWS Architecture Blog (2015):
    ``temp = min(cap, base * 2**(retry-1))``; ``exponential`` waits ``temp``,
    ``full_jitter`` U(0, temp), ``equal_jitter`` temp/2 + U(0, temp/2), and
    ``decorrelated_jitter`` min(cap, U(base, 3 * previous)), where ``previous_s``
    is the delay before the previous retry (``base_s`` before the first).
    ``none`` retries at once.
    """
    if kind is Backoff.NONE:
        return 0.0
    if kind is Backoff.DECORRELATED_JITTER:
        high = 3.0 * previous_s
        if high <= base_s:
            return min(cap_s, base_s)
        return min(cap_s, base_s + uniform() * (high - base_s))
    temp = min(cap_s, base_s * 2.0 ** (retry - 1))
    if kind is Backoff.EXPONENTIAL:
        return temp
    if kind is Backoff.EQUAL_JITTER:
        return temp * 0.5 + uniform() * temp * 0.5
    return uniform() * temp


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


class GuardedCall:
    """One call through a guard: its ``ok`` and ``error`` go to the system in place of
    the caller's; the first outcome (or the timeout) is what the guard records."""

    __slots__ = ("arg", "done", "error_fn", "generation", "guard", "ok_fn", "start_s")

    def __init__(
        self, guard: Guard, ok: Callback, error: Callback, arg: Any, generation: int
    ) -> None:
        self.guard = guard
        self.ok_fn = ok
        self.error_fn = error
        self.arg = arg
        self.generation = generation
        self.start_s = guard.kernel.now
        self.done = False

    def ok(self, value: Any) -> None:
        if not self.done:
            self.done = True
            self.guard.finish(self, False)
        self.ok_fn(value)

    def error(self, value: Any) -> None:
        if not self.done:
            self.done = True
            self.guard.finish(self, True)
        self.error_fn(value)

    def timed_out(self, _: Any = None) -> None:
        if not self.done:
            self.done = True
            self.guard.timeouts += 1
            self.guard.finish(self, True)

    def pending(self) -> bool:
        """Whether the call still awaits its outcome (False for ever once False)."""
        return not self.done


class Guard:
    """The message service's breaker, bulkhead and request timeout for one system."""

    def __init__(
        self,
        kernel: Kernel,
        name: str,
        breaker: CircuitBreaker | None,
        bulkhead: Bulkhead | None,
        timeout_s: float,
    ) -> None:
        self.kernel = kernel
        self.name = name
        self.breaker = breaker
        self.bulkhead = bulkhead
        self.timeout_s = timeout_s
        self.timeouts = 0
        # one timeout per call, most of them moot: kept out of the event heap
        self._deadlines = Timeouts(kernel, timeout_s, GuardedCall.timed_out, GuardedCall.pending)

    def begin(self, ok: Callback, error: Callback, arg: Any) -> GuardedCall | None:
        """A call the caller may make (``None``: it must fail at once)."""
        generation = 0
        breaker = self.breaker
        if breaker is not None:
            generation = breaker.acquire()
            if generation < 0:
                return None
        if self.bulkhead is not None and not self.bulkhead.acquire():
            if breaker is not None:
                breaker.release(generation)
            return None
        call = GuardedCall(self, ok, error, arg, generation)
        self._deadlines.start(call)
        return call

    def finish(self, call: GuardedCall, failed: bool) -> None:
        if self.bulkhead is not None:
            self.bulkhead.release()
        if self.breaker is not None:
            self.breaker.record(call.generation, failed, self.kernel.now - call.start_s)


class WriteBuffer:
    """``queue_writes``: messages whose write failed, held by the message service.

    ``hold(msg)`` keeps a message (False when full: the caller rejects it). Every
    ``retry_s`` the oldest is written again (a probe, through the guard); when a
    probe succeeds (``written``), every held message is written again at once. A
    message made durable otherwise (a late answer) is skipped.
    """

    def __init__(self, kernel: Kernel, size: int, retry_s: float) -> None:
        self.kernel = kernel
        self.size = size
        self.retry_s = retry_s
        self.held: deque[Message] = deque()
        #: msg_ids held at some point and not yet durable, and those in ``held`` now
        self._ids: set[int] = set()
        self._holding: set[int] = set()
        self.probe: Message | None = None
        self._scheduled = False
        #: set by the message service: starts a write of a held message
        self.write: Callable[[Message], None] = _ignore_message
        self.buffered = 0
        self.full = 0
        self.peak = 0
        self.released = 0
        #: held messages made durable after their sender had given up
        self.late = 0

    def hold(self, msg: Message) -> bool:
        if msg.msg_id in self._holding:
            return True  # a late failure of an earlier write of a message held already
        if msg is self.probe:
            self.probe = None
            self.held.appendleft(msg)
            self._holding.add(msg.msg_id)
        elif len(self.held) >= self.size:
            self.full += 1
            return False
        else:
            if msg.msg_id not in self._ids:
                self._ids.add(msg.msg_id)
                self.buffered += 1
            self.held.append(msg)
            self._holding.add(msg.msg_id)
            if len(self.held) > self.peak:
                self.peak = len(self.held)
        if not self._scheduled and self.probe is None:
            self._scheduled = True
            self.kernel.after(self.retry_s, self._probe, None)
        return True

    def _probe(self, _: Any) -> None:
        self._scheduled = False
        held = self.held
        if self.probe is not None:
            return
        while held and (held[0].durable or not held[0].writing):
            self._holding.discard(held.popleft().msg_id)
        if not held:
            return
        self.probe = held.popleft()
        self._holding.discard(self.probe.msg_id)
        self.write(self.probe)

    def written(self, msg: Message) -> None:
        """``msg`` is durable; if it was the probe, the store answers again."""
        if msg.msg_id in self._ids:
            self._ids.discard(msg.msg_id)
            if msg.failed:
                self.late += 1
        if msg is not self.probe:
            return
        self.probe = None
        batch = [m for m in self.held if not m.durable and m.writing]
        self.held.clear()
        self._holding.clear()
        self.released += len(batch)
        for held in batch:
            self.write(held)


def _ignore_message(_: Message) -> None:
    return None


class Defences:
    """Every defence of one architecture, with their counters and records."""

    def __init__(
        self,
        resilience: Resilience,
        kernel: Kernel,
        store_timeout_s: float,
        broker_timeout_s: float,
        has_broker: bool,
    ) -> None:
        self.kernel = kernel
        spec = resilience.circuit_breaker
        limit = resilience.bulkhead.max_concurrent
        self.breakers: list[CircuitBreaker] = []
        self.bulkheads: list[Bulkhead] = []
        self.store = self._guard(kernel, "store", spec, limit, store_timeout_s)
        self.broker = (
            self._guard(kernel, "broker", spec, limit, broker_timeout_s) if has_broker else None
        )
        self.shed_queue_length = resilience.load_shedding.shed_queue_length
        self.shed = 0
        degradation = resilience.degradation
        self.policy = degradation.policy
        self.buffer = (
            WriteBuffer(kernel, degradation.buffer_size, degradation.retry_s)
            if self.policy is DegradationPolicy.QUEUE_WRITES
            else None
        )
        self.cache = self.policy is DegradationPolicy.SERVE_READS_FROM_CACHE
        self.cache_messages = degradation.cache_messages
        self.cache_reads = 0
        self.cache_misses = 0
        self._shed_before = 0

    def _guard(
        self, kernel: Kernel, name: str, spec: BreakerSpec, limit: int, timeout_s: float
    ) -> Guard | None:
        breaker = CircuitBreaker(spec, kernel, name) if spec.enabled else None
        bulkhead = Bulkhead(limit) if limit > 0 else None
        if breaker is None and bulkhead is None:
            return None
        if breaker is not None:
            self.breakers.append(breaker)
        if bulkhead is not None:
            self.bulkheads.append(bulkhead)
        return Guard(kernel, name, breaker, bulkhead, timeout_s)

    # ------------------------------------------------------------ reports

    def counters(self) -> dict[str, float]:
        buffer = self.buffer
        return {
            "breaker_opened": float(sum(b.opened for b in self.breakers)),
            "breaker_rejected": float(sum(b.rejected for b in self.breakers)),
            "bulkhead_rejected": float(sum(b.rejected for b in self.bulkheads)),
            "bulkhead_peak": float(max((b.peak for b in self.bulkheads), default=0)),
            "shed": float(self.shed),
            "degraded_buffered": float(buffer.buffered if buffer else 0),
            "degraded_buffer_full": float(buffer.full if buffer else 0),
            "degraded_late_writes": float(buffer.late if buffer else 0),
            "degraded_cache_reads": float(self.cache_reads),
            "degraded_cache_misses": float(self.cache_misses),
        }

    def fault_rows(self) -> list[dict[str, Any]]:
        """Every breaker state change, as an instant of ``Result.faults``."""
        return [
            {
                "at_s": at,
                "until_s": at,
                "kind": "breaker",
                "target": breaker.name,
                "detail": f"{before} -> {after}: {why}",
            }
            for breaker in self.breakers
            for at, before, after, why in breaker.transitions
        ]

    def interval_start(self) -> dict[str, float]:
        """Timeseries values taken when an interval starts."""
        row: dict[str, float] = {}
        if self.breakers:
            now = self.kernel.now
            row["breaker_state"] = max(STATE_LEVEL[b.state_at(now)] for b in self.breakers)
        if self.buffer is not None:
            row["write_buffer"] = float(len(self.buffer.held))
        self._shed_before = self.shed
        return row

    def interval_end(self, start: float, end: float) -> dict[str, float]:
        """Timeseries values over the interval ``[start, end)``."""
        row: dict[str, float] = {}
        if self.breakers:
            row["breaker_open"] = max(b.open_s(start, end) for b in self.breakers) / (end - start)
        if self.shed_queue_length:
            row["shed_per_s"] = (self.shed - self._shed_before) / (end - start)
        return row


__all__ = [
    "CLOSED",
    "HALF_OPEN",
    "OPEN",
    "STATE_LEVEL",
    "Bulkhead",
    "CircuitBreaker",
    "Defences",
    "Guard",
    "GuardedCall",
    "WriteBuffer",
    "backoff_s",
]
