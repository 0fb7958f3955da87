"""A gateway's OAuth 2.0 token introspection (RFC 7662), with a cache of answers.

A check of a token is answered from the cache, or by one request to the
authorization server (:class:`sim.components.security.auth.AuthServer`), which
concurrent checks of the same token wait for instead of sending their own.
The gateway (``sim.model.server.gateway``) checks the token of each request (HTTP) or
of each connection (WebSocket). Like the rest of the simulator it works with
callbacks, not SimPy processes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from sim.components.security.auth import AuthServer, Callback
from sim.components.station import Station
from sim.core.kernel import Kernel
from sim.scenario.calibration import Calibration
from sim.scenario.security import Auth

#: An introspection request in flight for longer than this is presumed lost (its
#: auth instance crashed while serving it): the next check of the token sends a
#: new request instead of waiting for it. Kong's ``oauth2-introspection`` plugin
#: times out its introspection calls after ``timeout`` = 10000 ms by default.
INTROSPECTION_TIMEOUT_S = 10.0


class _Flight:
    """One introspection request in flight for a token, and the checks waiting for it."""

    __slots__ = ("sent_s", "token", "waiters")

    def __init__(self, token: int, sent_s: float, waiter: tuple[Callback, Any]) -> None:
        self.token = token
        self.sent_s = sent_s
        self.waiters = [waiter]


class Introspection:
    """A gateway's OAuth 2.0 token introspection (RFC 7662), with a cache of answers.

    ``check(token, fn, arg)`` lets a request through (calls ``fn(arg)``) once the
    token is known to be active:

    * **hit**: an answer for ``token`` arrived less than ``spec.cache_ttl_s`` ago:
      ``fn(arg)`` is called at once, before ``check`` returns.
    * **miss**: one request goes to the authorization server (:class:`AuthServer`:
      hop, a job on an instance chosen round robin, hop back); its answer is
      cached when it arrives, and then ``fn(arg)`` is called.
    * **coalesced miss**: a request for ``token`` is already in flight: the
      check waits for that answer instead of sending another (one request in
      flight per token), and counts as a miss. A request in flight for longer
      than ``timeout_s`` is presumed lost and no longer joined.

    ``cache_ttl_s = 0`` turns the cache off: every check sends its own request
    and nothing is coalesced.

    Every answer is "active": the simulator models the cost and latency of token
    checks, not forged tokens. Tokens are ints (see :class:`TokenClock` for how a
    user's token id changes at each refresh, which retires its cache entry).

    If the instance a request reaches is down, or crashes while serving it, the
    request is lost and ``fn`` is **never called**: the caller's timeout (the
    client's send timeout) handles it. The lost flight is dropped at once when the
    instance was down on arrival, or after ``timeout_s``, so that later checks
    of the token send a fresh request.

    Counters (``hits``, ``misses``, ``coalesced``, ``requests``) count checks made
    at or after ``measure_from_s``; the cache itself is never cleared (entries
    are superseded, and a user's token id changes at each refresh).
    """

    __slots__ = (
        "_cache",
        "_flights",
        "_kernel",
        "cache_ttl_s",
        "coalesced",
        "hits",
        "measure_from_s",
        "misses",
        "requests",
        "server",
        "timeout_s",
    )

    def __init__(
        self,
        spec: Auth,
        kernel: Kernel,
        stations: list[Station],
        hop: Callable[[], float],
        measure_from_s: float,
        *,
        timeout_s: float = INTROSPECTION_TIMEOUT_S,
        cal: Calibration | None = None,
    ) -> None:
        self._kernel = kernel
        self.server = AuthServer(spec, kernel, stations, hop, cal)
        self.cache_ttl_s = spec.cache_ttl_s
        self.timeout_s = timeout_s
        self.measure_from_s = measure_from_s
        #: token -> time its latest answer arrived
        self._cache: dict[int, float] = {}
        self._flights: dict[int, _Flight] = {}
        self.hits = 0
        self.misses = 0
        self.coalesced = 0
        self.requests = 0

    def check(self, token: int, fn: Callback, arg: Any) -> None:
        """Call ``fn(arg)`` once ``token`` is known active (at once on a cache hit)."""
        now = self._kernel.now
        measured = now >= self.measure_from_s
        ttl = self.cache_ttl_s
        if ttl > 0.0:
            cached_s = self._cache.get(token)
            if cached_s is not None and now - cached_s < ttl:
                if measured:
                    self.hits += 1
                fn(arg)
                return
            flight = self._flights.get(token)
            if flight is not None and now - flight.sent_s < self.timeout_s:
                flight.waiters.append((fn, arg))
                if measured:
                    self.misses += 1
                    self.coalesced += 1
                return
        if measured:
            self.misses += 1
            self.requests += 1
        flight = _Flight(token, now, (fn, arg))
        if ttl > 0.0:
            self._flights[token] = flight
        self.server.request(self._answered, flight, self._lost)

    def _lost(self, flight: _Flight) -> None:
        """The request reached a down instance: later checks must not wait for it."""
        if self._flights.get(flight.token) is flight:
            del self._flights[flight.token]

    def _answered(self, flight: _Flight) -> None:
        token = flight.token
        if self.cache_ttl_s > 0.0:
            self._cache[token] = self._kernel.now
            if self._flights.get(token) is flight:
                del self._flights[token]
        for fn, arg in flight.waiters:
            fn(arg)

    @property
    def hit_ratio(self) -> float:
        """Hits over checks (NaN before any measured check)."""
        checks = self.hits + self.misses
        return self.hits / checks if checks else math.nan

    @property
    def cached_tokens(self) -> int:
        return len(self._cache)

    @property
    def in_flight(self) -> int:
        """Tokens with a request in flight."""
        return len(self._flights)
