"""Every defence of one architecture, built from its ``resilience`` section.

:class:`Defences` builds the guards (circuit breaker, bulkhead, request timeout;
:mod:`sim.components.resilience.guard`) between the message service and the store and
broker, and the write buffer of the ``queue_writes`` degradation policy
(:mod:`sim.components.resilience.degradation`). Load shedding
(:attr:`Defences.shed_queue_length`) and the degradation policies are applied
on the message path (:mod:`sim.model.server.gateway` sheds, :mod:`sim.model.server.service`
and :mod:`sim.model.server.delivery` degrade); :class:`Defences` holds their settings
and counters, and reports everything for ``Result.faults``, the timeseries and
``Result.meta["counters"]``.
"""

from __future__ import annotations

from typing import Any

from sim.components.resilience.breaker import STATE_LEVEL, CircuitBreaker
from sim.components.resilience.bulkhead import Bulkhead
from sim.components.resilience.degradation import WriteBuffer
from sim.components.resilience.guard import Guard
from sim.core.kernel import Kernel
from sim.scenario.resilience import CircuitBreaker as BreakerSpec
from sim.scenario.resilience import DegradationPolicy, Resilience

__all__ = ["Defences"]


class Defences:
    """Every defence of one architecture, with their counters and records.

    Built once per run by :class:`sim.model.server.assembly.Server` from
    ``architecture.resilience`` and handed to the parts of the message path,
    which bind what they need at construction: the gateway
    (``sim.model.server.gateway``) ``shed_queue_length``, the message service
    (``sim.model.server.service``) the guards ``store`` and ``broker`` and the
    ``buffer``, the delivery (``sim.model.server.delivery``) the store guard for reads
    and the read cache's settings. ``Server.counters()`` merges :meth:`counters`,
    ``sim.model.faults.injector`` takes :meth:`fault_rows` and ``sim.model.run`` the
    timeseries values.

    **Adding a defence.** This class is where a new defence plugs in:

    1. *Settings.* A section of :class:`~sim.scenario.schema.Resilience` in
       ``sim/scenario/schema.py`` (``architecture.resilience.<name>``), off by
       default, so that every existing scenario runs exactly as before; its
       fields documented in ``docs/parameters.md`` and the defence in
       ``docs/components.md`` (Defences).
    2. *The component.* A class in a module of its own in ``sim/components``, built
       from that section and the :class:`~sim.core.kernel.Kernel` (timers with
       ``kernel.after``, random numbers from a stream of its own name in
       ``kernel.streams`` so that no other stream's draws move). Like every
       component it is a callback object, not a SimPy process, and keeps its
       counts as attributes.
    3. *Building it here.* ``__init__`` reads the section and sets a public
       attribute: the component when the scenario turns it on, else ``None``
       (as ``buffer``), or a plain setting whose zero means off (as
       ``shed_queue_length``). A defence that judges the calls to the store or
       broker belongs in the :class:`~sim.components.resilience.guard.Guard` of each system
       instead: ``_guard`` builds it next to the breaker and bulkhead, and
       ``Guard.begin`` (may the call go ahead? no: it fails at once) and
       ``Guard.finish`` (the call's outcome and duration) consult it.
    4. *Applying it.* The part of the message path where it acts (gateway,
       message service or delivery) binds the attribute once at construction
       and tests it on the path (``is not None``, or the setting's truth), so
       that a scenario without the defence pays one test per message and
       nothing more.
    5. *Reporting it.* Its counts go into :meth:`counters` (``Result.meta
       ["counters"]``, through ``Server.counters()``; the keys are present
       whether the defence is on or not, as the others are); its state
       changes, if any, into :meth:`fault_rows` as instants (``at_s ==
       until_s``, which the timeline marks as reactions); its timeseries
       columns into :meth:`interval_start` (levels when an interval starts) or
       :meth:`interval_end` (rates over the interval), added only when the
       defence is on, so that the frames of other scenarios keep their columns.
    """

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
