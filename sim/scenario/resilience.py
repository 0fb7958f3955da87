"""The resilience section: timeouts, retries and reconnects, and the defences of the
message service (circuit breaker, bulkhead, load shedding, degradation)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from sim.scenario.section import Section


class Backoff(StrEnum):
    """Delays between retries (M. Brooker, "Exponential Backoff and Jitter", AWS
    Architecture Blog, 2015): ``temp = min(cap, base * 2**(n-1))`` before retry ``n``;
    ``exponential`` waits ``temp``, ``full_jitter`` U(0, temp), ``equal_jitter``
    temp/2 + U(0, temp/2), ``decorrelated_jitter`` min(cap, U(base, 3 * previous))."""

    NONE = "none"
    EXPONENTIAL = "exponential"
    FULL_JITTER = "full_jitter"
    EQUAL_JITTER = "equal_jitter"
    DECORRELATED_JITTER = "decorrelated_jitter"


class BreakerWindow(StrEnum):
    """What a circuit breaker's failure rate is computed over."""

    COUNT = "count"
    TIME = "time"


class DegradationPolicy(StrEnum):
    """What the message service does while the store (or broker) does not answer."""

    REJECT = "reject"
    QUEUE_WRITES = "queue_writes"
    SERVE_READS_FROM_CACHE = "serve_reads_from_cache"


class Retry(Section):
    max_attempts: int = Field(default=3, ge=1)
    backoff: Backoff = Backoff.FULL_JITTER
    base_s: float = Field(default=0.1, ge=0)
    cap_s: float = Field(default=20.0, ge=0)


class Reconnect(Section):
    """How a client reconnects after its connection drops or a connect attempt fails."""

    backoff: Backoff = Backoff.FULL_JITTER
    base_s: float = Field(default=1.0, ge=0)
    cap_s: float = Field(default=5.0, ge=0)


class CircuitBreaker(Section):
    """A circuit breaker on the message service's calls to the store (writes, reads)
    and to the broker (publishes): one per system, shared by the tier.

    Closed: calls go through and their outcomes fill a window (the last
    ``window_calls`` calls, or the calls of the last ``window_s`` seconds). Once the
    window holds ``minimum_calls`` calls, a failure rate (errors and timeouts) of at
    least ``failure_rate_threshold``, or a rate of calls slower than ``slow_call_s`` of
    at least ``slow_call_rate_threshold``, opens it. Open: every call fails at once,
    without reaching the system, for ``open_wait_s``. Half-open: ``half_open_calls``
    trial calls go through; if all succeed (and none is slow) it closes, the first
    that fails opens it again. Defaults: resilience4j's ``CircuitBreakerConfig``.
    """

    enabled: bool = False
    window: BreakerWindow = BreakerWindow.COUNT
    window_calls: int = Field(default=100, ge=1, description="count window: the last N calls")
    window_s: float = Field(
        default=100.0, gt=0, description="time window: the calls of the last W seconds"
    )
    minimum_calls: int = Field(
        default=100, ge=1, description="calls in the window before the rates are judged"
    )
    failure_rate_threshold: float = Field(default=0.5, gt=0, le=1)
    slow_call_s: float = Field(default=60.0, gt=0, description="a call slower than this is slow")
    slow_call_rate_threshold: float = Field(default=1.0, gt=0, le=1)
    open_wait_s: float = Field(default=60.0, gt=0, description="time open before half-open")
    half_open_calls: int = Field(default=10, ge=1, description="trial calls when half-open")


class Bulkhead(Section):
    """At most ``max_concurrent`` calls in flight from the message service tier to the
    store, and as many to the broker; a call beyond that fails at once (0: no limit)."""

    max_concurrent: int = Field(default=0, ge=0)


class LoadShedding(Section):
    """A send arriving at a gateway whose queue holds ``shed_queue_length`` jobs or more
    is rejected at once with an error reply (the client retries with backoff); 0: off."""

    shed_queue_length: int = Field(default=0, ge=0)


class Degradation(Section):
    """What the message service does while the store (or broker) fails or its breaker
    is open.

    ``reject``: the waiting senders get an error and retry. ``queue_writes``: the
    message stays in a local buffer of ``buffer_size`` messages (the senders get no
    reply: they are acked only once it is durable; their retries join it) and the
    service tries the oldest again every ``retry_s``, releasing the rest once one
    succeeds. ``serve_reads_from_cache``: a sync or poll whose store read fails is
    answered from the messages the service wrote, at most the last ``cache_messages``
    of each conversation.
    """

    policy: DegradationPolicy = DegradationPolicy.REJECT
    buffer_size: int = Field(default=1000, ge=1, description="queue_writes: messages held")
    retry_s: float = Field(default=1.0, gt=0, description="queue_writes: probe period")
    cache_messages: int = Field(
        default=100, ge=1, description="serve_reads_from_cache: per conversation"
    )


class Resilience(Section):
    timeout_s: float = Field(default=1.0, gt=0, description="client wait for a send ack")
    connect_timeout_s: float = Field(
        default=10.0, gt=0, description="client wait for a connection to be set up"
    )
    sync_timeout_s: float = Field(
        default=10.0, gt=0, description="client wait for a sync reply before asking again"
    )
    retry: Retry = Retry()
    reconnect: Reconnect = Reconnect()
    circuit_breaker: CircuitBreaker = CircuitBreaker()
    bulkhead: Bulkhead = Bulkhead()
    load_shedding: LoadShedding = LoadShedding()
    degradation: Degradation = Degradation()


__all__ = [
    "Backoff",
    "BreakerWindow",
    "Bulkhead",
    "CircuitBreaker",
    "Degradation",
    "DegradationPolicy",
    "LoadShedding",
    "Reconnect",
    "Resilience",
    "Retry",
]
