"""The guard between the message service and one system it calls.

The message service calls two systems, the store (writes, and the reads behind
syncs and polls) and the broker (publishes). A :class:`Guard` stands between the
service and each of them: a :class:`~sim.components.resilience.breaker.CircuitBreaker`
that stops calling a system that fails, a
:class:`~sim.components.resilience.bulkhead.Bulkhead` that caps the calls in flight, and
the service's request timeout, which counts as a failure. A call the guard
refuses fails at once: the caller's error path runs without touching the
system. One guard per system is shared by the whole message-service tier (as a
shared client or a sidecar proxy would be; per-instance breakers would each see
1/n of the calls and trip later).

How an outcome reaches the breaker: :meth:`Guard.begin` hands back a
:class:`GuardedCall` whose ``ok`` and ``error`` replace the caller's callbacks
given to the system. The first of ``ok``, ``error`` and the call's own timer
(the request timeout) decides the outcome the breaker records (a timeout is a
failure; a success slower than ``slow_call_s`` is slow) and frees the bulkhead
slot; the system's answer is still passed on to the caller when it comes late,
as before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sim.components.resilience.breaker import CircuitBreaker
from sim.components.resilience.bulkhead import Bulkhead
from sim.core.kernel import Kernel, Timeouts

__all__ = ["Guard", "GuardedCall"]

Callback = Callable[[Any], None]


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
