"""The simulation kernel: a SimPy environment, named random streams, a clock of events.

A run is a pure function of (scenario, seed). Every component draws from its own
*named stream*, derived from the root seed and the stream's name alone, so that
adding a component to an architecture never shifts the random numbers another
component sees, and two architectures driven by the same workload streams see
the same users, conversations and messages (common random numbers).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from heapq import heappush
from typing import Any

import numpy as np
import simpy
from simpy.core import NORMAL


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


class _Call:
    """A scheduled callback: the lightest object SimPy's event loop can process.

    ``Environment.step`` needs only ``callbacks`` and ``_ok`` of what it pops;
    a full ``Timeout`` costs several times more to build, and a run schedules
    tens of millions of these.
    """

    __slots__ = ("arg", "callbacks", "fn")
    _ok = True

    def __init__(self, fn: Callback, arg: Any) -> None:
        self.callbacks = _CALLBACKS
        self.fn = fn
        self.arg = arg


def _trampoline(call: _Call) -> None:
    call.fn(call.arg)


_CALLBACKS = (_trampoline,)


class Trace:
    """A running digest of every callback a kernel ran: time and function, in order.

    Two runs of one scenario with one seed must produce the same digest (the
    determinism self-check); a digest, not a list, so a long run costs no memory.
    """

    def __init__(self, env: simpy.Environment) -> None:
        self.env = env
        self.events = 0
        self._hash = hashlib.blake2b(digest_size=16)

    def record(self, call: _Call) -> None:
        self.events += 1
        fn = call.fn
        name = getattr(fn, "__qualname__", type(fn).__name__)
        self._hash.update(f"{self.env.now!r}:{name};".encode())
        fn(call.arg)

    @property
    def digest(self) -> str:
        return self._hash.hexdigest()


class Kernel:
    """A SimPy environment with the scheduling shortcut the components use.

    Components schedule plain callbacks rather than spawning a SimPy process per
    message: ``kernel.after(delay_s, fn, arg)`` calls ``fn(arg)`` at ``now + delay_s``.
    Ties at one instant run in scheduling order (SimPy's event counter), which
    keeps runs deterministic.
    """

    def __init__(self, seed: int, trace: bool = False) -> None:
        self.env = simpy.Environment()
        self._queue: list[Any] = self.env._queue
        self._eid = self.env._eid
        self.streams = Streams(seed)
        self.events_scheduled = 0
        #: with ``trace``, every scheduled callback is recorded in a digest
        self.trace: Trace | None = Trace(self.env) if trace else None
        self._callbacks = (self.trace.record,) if self.trace is not None else _CALLBACKS
        if self.trace is not None:
            # components keep ``kernel.after``: a traced kernel hands them the traced one,
            # so the untraced hot path has no branch
            self.after = self._after_traced  # type: ignore[method-assign]

    @property
    def now(self) -> float:
        return self.env.now

    def after(self, delay_s: float, fn: Callback, arg: Any = None) -> None:
        """Call ``fn(arg)`` after ``delay_s`` simulated seconds.

        Equivalent to ``env.schedule(call, NORMAL, delay_s)``, inlined: this is the
        hottest line of a run. SimPy 4 keeps its queue as a heap of
        ``(time, priority, event id, event)``.
        """
        self.events_scheduled += 1
        env = self.env
        heappush(self._queue, (env._now + delay_s, NORMAL, next(self._eid), _Call(fn, arg)))

    def _after_traced(self, delay_s: float, fn: Callback, arg: Any = None) -> None:
        """:meth:`after` for a traced kernel: the call goes through the trace's digest."""
        self.events_scheduled += 1
        call = _Call(fn, arg)
        call.callbacks = self._callbacks
        heappush(self._queue, (self.env._now + delay_s, NORMAL, next(self._eid), call))
