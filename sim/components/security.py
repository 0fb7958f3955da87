"""Defences at the gateway: a per-user rate limiter, an abuse detector, token checks.

Standalone components; ``sim.model.server`` wires them into the message path.
Like the rest of the simulator they are callbacks, not SimPy processes, and keep
per-user state only for users who actually sent something.

* :class:`TokenBuckets`: one token bucket per user, refilled lazily.
* :class:`Detector`: a sliding-window rate estimate per user built from two fixed
  windows, as Cloudflare's rate limiter does; a user above the threshold is
  blocked for a while.
* :class:`AuthServer` and :class:`Introspection`: the authorization server as a
  pool of stations, and the gateway's OAuth 2.0 token introspection (RFC 7662)
  with an answer cache and coalescing of concurrent misses.
* :class:`TokenClock`: when a user's access token is refreshed, and the token id
  it carries at a given time.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from sim.components.station import Station
from sim.core.distributions import Constant, Distribution, Sampler, lognormal
from sim.core.kernel import Kernel
from sim.scenario.calibration import Calibration, load_calibration
from sim.scenario.security import Auth

Callback = Callable[[Any], None]

#: Token shortfall the bucket forgives, in tokens. Simulated times are sums of
#: floats, so a sender at exactly the refill rate may find 0.999999999999 tokens
#: where the exact arithmetic gives 1; without the tolerance it would be refused.
#: The bucket never goes below zero, so the forgiven amounts cannot accumulate.
TOKEN_EPSILON = 1e-9

#: Bits of a token id left for the refresh count: token id = user * 2**20 + refreshes.
TOKEN_REFRESH_BITS = 20

#: An introspection request in flight for longer than this is presumed lost (its
#: auth instance crashed while serving it): the next check of the token sends a
#: new request instead of waiting for it. Kong's ``oauth2-introspection`` plugin
#: times out its introspection calls after ``timeout`` = 10000 ms by default.
INTROSPECTION_TIMEOUT_S = 10.0

# --------------------------------------------------------------------- rate limit


class TokenBuckets:
    """A token bucket per user: ``rate_per_s`` tokens a second, at most ``burst`` held.

    A send takes one token; a send finding less than one token is refused (and
    takes nothing). Buckets are refilled lazily: a user's state is ``(tokens,
    time of last send)``, kept only for users who sent, and brought up to date
    when the user sends again. A new user starts with a full bucket.

    Over any interval of length ``d`` a user gets at most ``burst + rate_per_s * d``
    sends through; a user sending at a steady rate ``r <= rate_per_s`` is never
    refused once the bucket has been emptied by an initial burst, and one sending
    steadily at ``r > rate_per_s`` has a fraction ``rate_per_s / r`` accepted in
    the long run.
    """

    __slots__ = ("_state", "accepted", "burst", "rate_per_s", "refused")

    def __init__(self, rate_per_s: float, burst: float) -> None:
        if rate_per_s <= 0:
            raise ValueError(f"rate_per_s must be > 0, got {rate_per_s}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst}")
        self.rate_per_s = float(rate_per_s)
        self.burst = float(burst)
        self._state: dict[int, tuple[float, float]] = {}
        self.accepted = 0
        self.refused = 0

    def take(self, user: int, now: float) -> bool:
        """Take a token for one send of ``user`` at ``now``; False: the send is refused."""
        state = self._state.get(user)
        if state is None:
            tokens = self.burst
        else:
            tokens = state[0] + (now - state[1]) * self.rate_per_s
            if tokens > self.burst:
                tokens = self.burst
        if tokens < 1.0 - TOKEN_EPSILON:
            self._state[user] = (tokens, now)
            self.refused += 1
            return False
        tokens -= 1.0
        self._state[user] = (tokens if tokens > 0.0 else 0.0, now)
        self.accepted += 1
        return True

    def tokens(self, user: int, now: float) -> float:
        """Tokens ``user`` holds at ``now`` (without taking any)."""
        state = self._state.get(user)
        if state is None:
            return self.burst
        return min(self.burst, state[0] + (now - state[1]) * self.rate_per_s)

    @property
    def users(self) -> int:
        """Users with a bucket: those who sent at least once."""
        return len(self._state)


# ----------------------------------------------------------------------- detector


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


# ------------------------------------------------------------------- auth server


def introspection_call_s(cal: Calibration | None = None) -> float:
    """Measured CPU seconds of one introspection at the authorization server:
    ``Calibration.introspection_call_s``, read from
    ``models/calibration/reference_costs.yaml`` (``benchmarks/reference_costs.py``
    times ``reference_impl``'s ``IntrospectionAuthenticator.authenticate`` against
    its in-process ``IntrospectionService``), else the figure of the reference run."""
    return (cal if cal is not None else load_calibration()).introspection_call_s


def auth_request_cost(spec: Auth, cal: Calibration | None = None) -> Distribution:
    """CPU time of one request at an authorization server instance.

    ``spec.server.service_time_s`` when set, else ``spec.server.request_s``, else
    lognormal with mean = measured ``server_frame_s`` (handling a request) +
    ``introspection_call_s`` (looking the token up), cv 1 (the default of every
    tier, see ``docs/parameters.md``).
    """
    server = spec.server
    if server.service_time_s is not None:
        return server.service_time_s
    if server.request_s is not None:
        return server.request_s
    cal = cal if cal is not None else load_calibration()
    return lognormal(cal.server_frame_s + introspection_call_s(cal), 1.0)


class AuthServer:
    """The authorization server: requests reach its instances round robin over the network.

    ``request(fn, arg)`` sends one request over an internal hop (``hop()`` is a
    one-way delay in seconds) to the next instance, which serves it as a job on
    its :class:`Station` (a FIFO queue in front of ``workers`` servers); the
    answer comes back over another hop and ``fn(arg)`` is called. Used for
    introspection (:class:`Introspection`) and for token refreshes.

    **Lost requests.** An instance that is down when the request reaches it
    drops the job (``Station.submit``), and one that crashes while serving it
    loses it: ``fn`` is then never called. The caller's own timeout handles
    that, as a real client's would. ``lost`` counts the requests found dropped
    on arrival (a crash during service is visible only in the station's
    ``dropped``).
    """

    __slots__ = ("_after", "_cost", "_hop", "_instant", "_next", "lost", "requests", "stations")

    def __init__(
        self,
        spec: Auth,
        kernel: Kernel,
        stations: list[Station],
        hop: Callable[[], float],
        cal: Calibration | None = None,
    ) -> None:
        if not stations:
            raise ValueError("the authorization server needs at least one station")
        self.stations = stations
        self._after = kernel.after
        self._hop = hop
        cost = auth_request_cost(spec, cal)
        #: a constant 0 service time skips the stations (as every tier's does)
        self._instant = cost.is_zero
        self._cost: Sampler = (
            cost.sampler(kernel.streams.generator("auth.cost"))
            if not isinstance(cost, Constant)
            else _constant(cost.value)
        )
        self._next = 0
        self.requests = 0
        self.lost = 0

    def pick(self) -> Station:
        """The next instance, round robin (whether up or not: the balancer does not know)."""
        station = self.stations[self._next]
        self._next = (self._next + 1) % len(self.stations)
        return station

    def request(self, fn: Callback, arg: Any, lost: Callback | None = None) -> None:
        """Send one request; ``fn(arg)`` is called when its answer is back (if ever).

        ``lost(arg)``, if given, is called instead when the request reaches an
        instance that is down (not when the instance crashes while serving it).
        """
        self.requests += 1
        station = self.pick()
        self._delay(self._hop(), self._arrive, (station, fn, arg, lost))

    def _delay(self, delay_s: float, fn: Callback, arg: Any) -> None:
        if delay_s > 0.0:
            self._after(delay_s, fn, arg)
        else:
            fn(arg)

    def _arrive(self, job: tuple[Station, Callback, Any, Callback | None]) -> None:
        station, fn, arg, lost = job
        if not station.up:
            station.submit(0.0, fn, arg)  # the station counts the drop
            self.lost += 1
            if lost is not None:
                lost(arg)
        elif self._instant:
            self._answer((fn, arg))
        else:
            station.submit(self._cost(), self._answer, (fn, arg))

    def _answer(self, job: tuple[Callback, Any]) -> None:
        self._delay(self._hop(), job[0], job[1])


def _constant(value: float) -> Sampler:
    return lambda: value


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


# ------------------------------------------------------------------ token refresh


class TokenClock:
    """Access-token lifetimes: when a user refreshes, and which token it holds.

    A user who comes online at ``since_s`` gets a token then (part of logging in,
    not modelled as a request) and, while it stays online, refreshes it every
    ``token_ttl_s``: at ``since_s + k * token_ttl_s`` for k = 1, 2, ... Each
    refresh is one request to the authorization server (``AuthServer.request``).
    A user online for less than ``token_ttl_s`` never refreshes.

    **Token ids.** The token a user holds after ``k`` refreshes is
    ``user * 2**20 + k`` (:meth:`token`). A refresh therefore changes the id, so
    a gateway's introspection cache entry for the old token is never hit again
    and the next check of the new token is a miss, as with real opaque tokens.
    The refresh count restarts at 0 each session (a new login), so the first
    token of every session is ``user * 2**20``: it may still be cached from the
    previous session (a cache shorter than a session, the usual case, has
    forgotten it). ``k`` must stay below 2**20 (about 12 days at a 1 s TTL).
    """

    __slots__ = ("token_ttl_s",)

    def __init__(self, token_ttl_s: float) -> None:
        if token_ttl_s <= 0:
            raise ValueError(f"token_ttl_s must be > 0, got {token_ttl_s}")
        self.token_ttl_s = float(token_ttl_s)

    @staticmethod
    def token(user: int, refreshes: int) -> int:
        """The token id of ``user`` after ``refreshes`` refreshes in this session."""
        if not 0 <= refreshes < 1 << TOKEN_REFRESH_BITS:
            raise ValueError(f"refreshes must lie in [0, 2**20), got {refreshes}")
        return (user << TOKEN_REFRESH_BITS) + refreshes

    @staticmethod
    def user_of(token: int) -> int:
        return token >> TOKEN_REFRESH_BITS

    def refreshes(self, since_s: float, now: float) -> int:
        """Refreshes done by ``now`` by a user online since ``since_s`` (a refresh due
        exactly at ``now`` counts as done)."""
        if now < since_s:
            return 0
        ttl = self.token_ttl_s
        k = math.floor((now - since_s) / ttl)
        # the division may round across a multiple: settle k on the times themselves
        if since_s + (k + 1) * ttl <= now:
            k += 1
        elif k > 0 and since_s + k * ttl > now:
            k -= 1
        return k

    def token_at(self, user: int, since_s: float, now: float) -> int:
        """The token ``user``, online since ``since_s``, sends with at ``now``."""
        return self.token(user, self.refreshes(since_s, now))

    def next_refresh_s(self, since_s: float, now: float) -> float:
        """The first refresh strictly after ``now`` of a user online since ``since_s``."""
        return since_s + (self.refreshes(since_s, now) + 1) * self.token_ttl_s
