"""The simulation kernel: a SimPy environment, named random streams, a clock of events.

A run is a pure function of (scenario, seed). Every component draws from its own
*named stream*, derived from the root seed and the stream's name alone, so that
adding a component to an architecture never shifts the random numbers another
component sees, and two architectures driven by the same workload streams see
the same users, conversations and messages (common random numbers).
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable
from heapq import heapify, heappop, heappush
from typing import Any

import numpy as np
import simpy
from simpy.core import NORMAL, URGENT, EmptySchedule

from sim.core.metrics import Message


def stream_key(name: str) -> tuple[int, int]:
    """A stable 64-bit key for a stream name (independent of Python's hash seed)."""
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    word = int.from_bytes(digest, "little")
    return (word & 0xFFFFFFFF, word >> 32)


class Streams:
    """Independent random generators, one per name, all derived from one seed.

    ``Streams(seed).generator("workload.sessions")`` always yields the same
    sequence for the same seed and name, whatever other streams exist.
    """

    def __init__(self, seed: int) -> None:
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.seed = seed
        self._made: dict[str, np.random.Generator] = {}

    def generator(self, name: str) -> np.random.Generator:
        """The generator of stream ``name``; asking twice returns the same object."""
        gen = self._made.get(name)
        if gen is None:
            seq = np.random.SeedSequence(entropy=self.seed, spawn_key=stream_key(name))
            gen = np.random.Generator(np.random.PCG64(seq))
            self._made[name] = gen
        return gen

    @property
    def names(self) -> list[str]:
        """Names of the streams handed out so far, sorted."""
        return sorted(self._made)


Callback = Callable[[Any], None]


class _StopRun(Exception):
    """Raised by the sentinel that ends :meth:`Environment.run` at its ``until``."""


def _stop(_: Any) -> None:
    raise _StopRun


class Environment(simpy.Environment):
    """SimPy's environment with an event loop for plain callbacks.

    Components schedule *calls*, not SimPy events: a call is the heap entry
    ``(time, NORMAL, id, fn, arg)``, and running it is ``fn(arg)``: no event
    object, no callback list, no trampoline. SimPy's own events (the few SimPy
    processes of a run) are 4-tuples in the same heap and are processed as
    ``simpy.Environment.step`` does. The two kinds never compare beyond the id,
    which is unique, so ties at one instant still run in scheduling order.

    The clock is the plain attribute :attr:`now`, which the loop sets: reading it
    costs one attribute lookup, the price of SimPy's private ``_now`` and less
    than its ``now`` property. ``_now`` stays, as a property over :attr:`now`,
    for SimPy's own code.
    """

    #: the simulated time (s); shadows SimPy's read-only property
    now: float = 0.0

    @property
    def _now(self) -> float:
        return self.now

    @_now.setter
    def _now(self, time_s: float) -> None:
        self.now = time_s

    def step(self) -> None:
        try:
            item = heappop(self._queue)
        except IndexError:
            raise EmptySchedule from None
        self.now = item[0]
        if len(item) == 5:
            item[3](item[4])
        else:
            self._process(item[3])

    def _process(self, event: Any) -> None:
        """What ``simpy.Environment.step`` does with a SimPy event it popped."""
        callbacks, event.callbacks = event.callbacks, None
        for callback in callbacks:
            callback(event)
        if not event._ok and not hasattr(event, "_defused"):
            exc = type(event._value)(*event._value.args)
            exc.__cause__ = event._value
            raise exc

    def run(self, until: Any = None) -> Any:
        """Run until simulated time ``until`` (a number) or until nothing is left.

        Like SimPy, calls at exactly ``until`` are left for the next run. Without
        ``until``, or with a SimPy event, SimPy's own loop runs (through
        :meth:`step`); a simulation runs to a time, in this loop.
        """
        if until is None or not isinstance(until, int | float):
            return super().run(until)
        # calls are 5-tuples, SimPy events 4-tuples: one heap of both
        queue: list[Any] = self._queue
        pop = heappop
        process = self._process
        at = float(until)
        if at <= self.now:
            raise ValueError(f"until ({at}) must be greater than the current simulation time")
        sentinel = (at, URGENT, next(self._eid), _stop, None)
        heappush(queue, sentinel)
        try:
            while True:
                item = pop(queue)
                self.now = item[0]
                if len(item) == 5:
                    item[3](item[4])
                else:
                    process(item[3])
        except _StopRun:
            return None
        except BaseException:
            # a callback failed: leave the queue as it was, without the sentinel
            if sentinel in queue:
                queue.remove(sentinel)
                heapify(queue)
            raise


#: how deep :func:`call_summary` looks into tuples and lists inside a call's argument
_SUMMARY_DEPTH = 2


def call_summary(arg: Any, depth: int = _SUMMARY_DEPTH) -> str:
    """A summary of a callback's argument that is the same in every run and process.

    Two runs that call the same functions at the same times on different messages
    must digest differently, so the argument counts; but nothing that depends on
    where an object lives in memory may enter (no ``id()``, no default repr with an
    address). A :class:`~sim.core.metrics.Message` is its ``msg_id``; numbers,
    strings and ``None`` their repr; a tuple or list the summaries of its items
    (``depth`` levels down); anything else its type's name.
    """
    if arg is None or isinstance(arg, (int, float, str)):
        return repr(arg)
    if isinstance(arg, Message):
        return f"msg{arg.msg_id}"
    if isinstance(arg, (tuple, list)):
        if depth <= 0:
            return type(arg).__name__
        inner = ",".join([call_summary(item, depth - 1) for item in arg])
        return f"({inner})" if isinstance(arg, tuple) else f"[{inner}]"
    return type(arg).__name__


class Trace:
    """A running digest of every callback a kernel ran: time, function and a summary of
    its argument (:func:`call_summary`), in order.

    Two runs of one scenario with one seed must produce the same digest (the
    determinism self-check); a digest, not a list, so a long run costs no memory.
    Only a traced kernel pays for it: an untraced one schedules its calls directly.
    """

    def __init__(self, clock: Environment) -> None:
        self.clock = clock
        self.events = 0
        self._hash = hashlib.blake2b(digest_size=16)

    def record(self, call: tuple[Callback, Any]) -> None:
        self.events += 1
        fn, arg = call
        name = getattr(fn, "__qualname__", type(fn).__name__)
        self._hash.update(f"{self.clock.now!r}:{name}:{call_summary(arg)};".encode())
        fn(arg)

    @property
    def digest(self) -> str:
        return self._hash.hexdigest()


class Kernel(Environment):
    """The one owner of a run's time and randomness: an :class:`Environment` with the
    named random streams and the scheduling shortcuts the components use.

    Components read the clock as ``kernel.now`` and schedule plain callbacks
    rather than spawning a SimPy process per message: ``kernel.after(delay_s, fn,
    arg)`` calls ``fn(arg)`` at ``now + delay_s``, ``kernel.at(time_s, fn, arg)`` at
    ``time_s``. Ties at one instant run in scheduling order (the heap's id), which
    keeps runs deterministic. The few SimPy processes of a run use the kernel as
    their environment (``kernel.process``, ``kernel.timeout``).
    """

    def __init__(self, seed: int, trace: bool = False) -> None:
        super().__init__()
        self.streams = Streams(seed)
        #: with ``trace``, every scheduled callback is recorded in a digest
        self.trace: Trace | None = Trace(self) if trace else None
        # ``after`` and ``at`` are closures over the heap: the hottest lines of a run
        # (components keep ``kernel.after``; a traced kernel hands them the traced one,
        # so the untraced hot path has no branch)
        self.after: Callable[..., None]
        self.at: Callable[..., None]
        self.after, self.at = _schedulers(self, self.trace)

    @property
    def events_scheduled(self) -> int:
        """How many calls and SimPy events were scheduled so far: the heap's ids handed
        out (each run's stop and each read of this take one too)."""
        return next(self._eid)


def _schedulers(
    env: Environment, trace: Trace | None
) -> tuple[Callable[..., None], Callable[..., None]]:
    queue: list[Any] = env._queue
    # closure cells, not globals or attributes: each lookup saved counts at 10^7 calls
    next_id = env._eid.__next__
    push = heappush
    normal = NORMAL
    if trace is None:

        def after(delay_s: float, fn: Callback, arg: Any = None) -> None:
            """Call ``fn(arg)`` after ``delay_s`` simulated seconds."""
            push(queue, (env.now + delay_s, normal, next_id(), fn, arg))

        def at(time_s: float, fn: Callback, arg: Any = None) -> None:
            """Call ``fn(arg)`` at simulated time ``time_s`` (not before now)."""
            push(queue, (time_s, normal, next_id(), fn, arg))

        return after, at
    record = trace.record

    def after_traced(delay_s: float, fn: Callback, arg: Any = None) -> None:
        push(queue, (env.now + delay_s, normal, next_id(), record, (fn, arg)))

    def at_traced(time_s: float, fn: Callback, arg: Any = None) -> None:
        push(queue, (time_s, normal, next_id(), record, (fn, arg)))

    return after_traced, at_traced


class Timeouts:
    """Timeouts of one fixed duration, kept in a FIFO instead of the event heap.

    Most timeouts never fire: the ack, the reply or the connection comes first.
    Scheduling each as a call would cost a heap push and pop for nothing. With
    one duration for all of them, deadlines arrive in the order the timeouts
    were started, so a deque holds them in order and one scheduled call, at
    the earliest deadline that still matters, serves the whole queue.

    ``fn(arg)`` runs at ``start`` time + ``delay_s``, exactly, unless
    ``live(arg)`` said False before: ``live`` must be monotone (once False,
    False for ever) and ``fn`` must do nothing when ``live`` is False. Then
    dropping the dead heads early changes nothing but the number of events,
    with one exception: among calls at the very instant of a deadline, the
    timeout may run after calls scheduled later than its start (its wake-up
    was scheduled when the timeout reached the head of the queue), so a
    timeout and the event that would make it moot, exactly tied, may resolve
    the other way round.
    """

    __slots__ = ("_armed", "_at", "_kernel", "_live", "_queue", "delay_s", "fn")

    def __init__(
        self,
        kernel: Kernel,
        delay_s: float,
        fn: Callback,
        live: Callable[[Any], bool],
    ) -> None:
        if not delay_s > 0.0:
            raise ValueError(f"a timeout must last > 0 s, got {delay_s}")
        self._kernel = kernel
        self._at = kernel.at
        self.delay_s = delay_s
        self.fn = fn
        self._live = live
        self._queue: deque[tuple[float, Any]] = deque()
        self._armed = False

    def __len__(self) -> int:
        return len(self._queue)

    def start(self, arg: Any) -> None:
        """Start a timeout for ``arg``: ``fn(arg)`` in ``delay_s`` if still live then."""
        deadline = self._kernel.now + self.delay_s
        self._queue.append((deadline, arg))
        if not self._armed:
            self._armed = True
            self._at(deadline, self._fire, None)

    def start_at(self, deadline_s: float, arg: Any) -> None:
        """Start a timeout for ``arg`` that ends at ``deadline_s`` rather than ``delay_s``
        from now: no earlier than any deadline already queued (so that the queue stays
        in deadline order), e.g. first deadlines at random phases, in sorted order."""
        queue = self._queue
        if deadline_s < self._kernel.now or (queue and deadline_s < queue[-1][0]):
            raise ValueError(
                f"deadline {deadline_s} is before now or before a deadline already queued"
            )
        queue.append((deadline_s, arg))
        if not self._armed:
            self._armed = True
            self._at(deadline_s, self._fire, None)

    def _fire(self, _: None) -> None:
        queue = self._queue
        now = self._kernel.now
        fn = self.fn
        live = self._live
        while queue:
            deadline, arg = queue[0]
            if deadline <= now:
                queue.popleft()
                fn(arg)  # may start another timeout: it joins the queue's tail
            elif live(arg):
                break
            else:
                queue.popleft()
        if queue:
            self._at(queue[0][0], self._fire, None)
        else:
            self._armed = False
