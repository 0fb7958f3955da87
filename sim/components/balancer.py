"""Load balancers: which gateway instance gets a new connection, which service instance a request.

Connections are balanced when a session starts (a WebSocket, or the kept-alive
HTTP connection that polls ride on) and stay on their instance; requests between
tiers are balanced one by one.

Policies (``load_balancer.policy``):

* ``round_robin``: instances in turn, skipping those out of rotation.
* ``least_connections``: fewest open connections for a new connection, fewest
  outstanding requests (in service plus queued) for a request.
* ``consistent_hash``: a hash ring with ``hash_points`` points per instance
  (libketama uses 160); a key goes to the first point clockwise from its hash
  whose instance is in rotation, so ejecting one of N instances moves only the
  keys it held, about 1/N of them. Keys are spread by SplitMix64; ring positions
  of keys below :data:`CACHED_KEYS` are computed in vectorised blocks and cached.
* ``power_of_two``: two distinct instances drawn at random, the less loaded one
  (Mitzenmacher, "The Power of Two Choices in Randomized Load Balancing",
  IEEE TPDS 2001: the maximum load falls from Θ(log n / log log n) to
  Θ(log log n) in the balls-into-bins setting).

Active health checks (``load_balancer.health_check``) probe every instance each
``interval_s``; ``unhealthy_threshold`` failures in a row take it out of
rotation, ``healthy_threshold`` passes in a row bring it back (HAProxy's
``inter 2s fall 3 rise 2`` by default). Without health checks every instance
stays in rotation, crashed or not.
"""

from __future__ import annotations

import hashlib
from array import array
from bisect import bisect_left
from collections.abc import Callable

import numpy as np

from sim.components.station import Station
from sim.core.distributions import BlockDraws
from sim.core.kernel import Kernel
from sim.scenario.architecture import BalancerPolicy, LoadBalancer

_MASK64 = (1 << 64) - 1

# policies as small ints: comparing them is much cheaper than loading an enum member
_ROUND_ROBIN, _LEAST_CONNECTIONS, _CONSISTENT_HASH, _POWER_OF_TWO = range(4)
_KIND = {
    BalancerPolicy.ROUND_ROBIN: _ROUND_ROBIN,
    BalancerPolicy.LEAST_CONNECTIONS: _LEAST_CONNECTIONS,
    BalancerPolicy.CONSISTENT_HASH: _CONSISTENT_HASH,
    BalancerPolicy.POWER_OF_TWO: _POWER_OF_TWO,
}

#: keys below this have their ring position cached (4 bytes each); others are hashed per call
CACHED_KEYS = 1 << 24


def splitmix64(key: int) -> int:
    """A 64-bit mix of an integer key (the SplitMix64 finaliser): consecutive keys spread
    uniformly over the ring."""
    z = (key + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def splitmix64_array(keys: np.ndarray) -> np.ndarray:
    """:func:`splitmix64` of each key of a uint64 array (arithmetic modulo 2**64)."""
    z = keys.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def ring_point(name: str, index: int, point: int) -> int:
    """Position on the ring of point ``point`` of instance ``index`` of balancer ``name``.

    A stable hash (blake2b), not Python's ``hash``, which is salted per process.
    """
    digest = hashlib.blake2b(f"{name}.{index}.{point}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def _no_draws() -> float:
    raise RuntimeError("this balancer does not draw random numbers")


class Balancer:
    """Spreads connections and requests over a tier's instances.

    Args:
        spec: the ``load_balancer`` section of the architecture.
        stations: the tier's instances, ``stations[i].index == i``.
        kernel: schedules the health checks and provides the random stream
            ``balancer.{name}`` (power of two choices).
        name: the tier, e.g. ``"gateway"`` or ``"service"``; names the random
            stream and seeds the ring's point positions.

    Attributes:
        connections: open connections per instance, maintained by the caller.
        ejections: ``(ejected_at_s, readmitted_at_s or None, station name)`` per
            ejection by the health checks, in order of ejection.

    When no instance is in rotation the balancer *fails open* and routes to all
    of them, like AWS Application and Network Load Balancers: "If a target group
    contains only unhealthy registered targets, the load balancer routes requests
    to all those targets, regardless of their health status" (Elastic Load
    Balancing user guide, "Health checks for your target groups").

    **Extension points.** A new policy plugs in at five places, all in this
    class except the first:

    1. *Its name and settings:* a member of
       :class:`~sim.scenario.schema.BalancerPolicy` and any fields it needs in
       :class:`~sim.scenario.schema.LoadBalancer` (as ``hash_points``), in
       ``sim/scenario/schema.py``; documented in ``docs/parameters.md`` and in
       the policy table of ``docs/components.md``.
    2. *Its number:* a small int after ``_POWER_OF_TWO`` and an entry in
       ``_KIND``. Every pick compares ``self._kind`` with these ints, which is
       cheaper than comparing enum members.
    3. *Its state,* built in ``__init__`` only when ``self._kind`` is the new
       policy (as the ring of consistent hashing). Random numbers come from a
       stream of the balancer's own (``balancer.{name}``, drawn in blocks with
       :class:`~sim.core.distributions.BlockDraws`), so that the draws of every
       other stream stay as they were.
    4. *Its picks:* a branch in :meth:`pick_connection` (a long-lived
       connection: the counts in ``connections``) and one in
       :meth:`pick_request` (one request: jobs in service plus queued,
       ``busy + len(queue)``), tested after the other policies' branches, just
       before the fall-through to least connections, so that the policies
       before it pay nothing for it. It picks only instances in
       rotation: ``_active`` (their indices) or ``_routable[i]``, both of which
       already fail open; ``_all`` says every instance is routable, the fast
       path. It returns ``None`` only when the tier has no instance.
    5. *Its cursor,* if it keeps one: :meth:`skip` advances it past the users
       online at time 0, whom ``sim.model.run`` places on the gateways in turn,
       outside the balancer, adding them to ``connections``.

    Health is decided in ``_check`` (an active probe of ``Station.up``); another
    way of judging instances (passive outlier detection, say) takes them out
    of and back into rotation through ``_eject`` and ``_readmit``, which keep
    the routing state and ``ejections`` (reported in ``Result.faults`` by
    ``sim.model.faults.injector``) consistent.
    """

    def __init__(
        self, spec: LoadBalancer, stations: list[Station], kernel: Kernel, name: str
    ) -> None:
        self.spec = spec
        self.policy = spec.policy
        self.name = name
        self.stations = stations
        n = len(stations)
        self.connections = [0] * n
        self.ejections: list[tuple[float, float | None, str]] = []
        self._kernel = kernel
        self._kind = _KIND[spec.policy]
        self._next = 0
        # health state: in rotation per instance, and consecutive check results
        self._in = [True] * n
        self._fails = [0] * n
        self._passes = [0] * n
        self._open: dict[int, int] = {}  # instance -> its open entry in ``ejections``
        # routing state derived from ``_in`` (all instances when none is in: fail open)
        self._all = True
        self._routable = [True] * n
        self._active = list(range(n))
        # consistent hashing: sorted point positions, the instance owning each, and
        # the ring position of keys 0, 1, 2, ... computed in vectorised blocks
        self._ring_hashes: list[int] = []
        self._ring_owners: list[int] = []
        self._ring_array = np.zeros(0, dtype=np.uint64)
        self._positions = array("i")
        if self._kind == _CONSISTENT_HASH and n:
            points = sorted(
                (ring_point(name, i, p), i) for i in range(n) for p in range(spec.hash_points)
            )
            self._ring_hashes = [h for h, _ in points]
            self._ring_owners = [i for _, i in points]
            self._ring_array = np.array(self._ring_hashes, dtype=np.uint64)
        # power of two choices: one uniform float in [0, 1) per pick, drawn in blocks
        self._uniform: Callable[[], float] = _no_draws
        if self._kind == _POWER_OF_TWO:
            self._uniform = BlockDraws(kernel.streams.generator(f"balancer.{name}").random)
        hc = spec.health_check
        if hc.enabled and n:
            for i in range(n):
                kernel.after((i + 1) / n * hc.interval_s, self._check, i)

    # ------------------------------------------------------------ rotation

    def healthy(self, index: int) -> bool:
        """True while instance ``index`` is in rotation (not ejected by the health checks)."""
        return self._in[index]

    def _refresh(self) -> None:
        active = [i for i, ok in enumerate(self._in) if ok]
        if active:
            self._active = active
            self._routable = list(self._in)
            self._all = len(active) == len(self._in)
        else:  # fail open
            self._active = list(range(len(self._in)))
            self._routable = [True] * len(self._in)
            self._all = True

    def _check(self, index: int) -> None:
        """One periodic health check of instance ``index``."""
        hc = self.spec.health_check
        if self.stations[index].up:
            self._fails[index] = 0
            if not self._in[index]:
                self._passes[index] += 1
                if self._passes[index] >= hc.healthy_threshold:
                    self._readmit(index)
        else:
            self._passes[index] = 0
            if self._in[index]:
                self._fails[index] += 1
                if self._fails[index] >= hc.unhealthy_threshold:
                    self._eject(index)
        self._kernel.after(hc.interval_s, self._check, index)

    def _eject(self, index: int) -> None:
        self._in[index] = False
        self._fails[index] = self._passes[index] = 0
        self._open[index] = len(self.ejections)
        self.ejections.append((self._kernel.now, None, self.stations[index].name))
        self._refresh()

    def _readmit(self, index: int) -> None:
        self._in[index] = True
        self._fails[index] = self._passes[index] = 0
        at = self._open.pop(index)
        ejected_s, _, station = self.ejections[at]
        self.ejections[at] = (ejected_s, self._kernel.now, station)
        self._refresh()

    # ------------------------------------------------------------ policies

    def skip(self, count: int) -> None:
        """Advance round robin past ``count`` assignments made outside the balancer."""
        if self.stations:
            self._next = (self._next + count) % len(self.stations)

    def _round_robin(self) -> Station | None:
        stations = self.stations
        n = len(stations)
        if not n:
            return None
        i = self._next
        if not self._all:
            routable = self._routable
            while not routable[i]:
                i = i + 1 if i + 1 < n else 0
        self._next = i + 1 if i + 1 < n else 0
        return stations[i]

    def _ring_position(self, key: int) -> int:
        """Index of the first ring point clockwise from the hash of ``key``."""
        positions = self._positions
        if 0 <= key < len(positions):
            return positions[key]
        if 0 <= key < CACHED_KEYS:
            # extend the cache (at least doubling it) with one vectorised search
            start = len(positions)
            stop = min(max(key + 1, 2 * start, 1024), CACHED_KEYS)
            hashes = splitmix64_array(np.arange(start, stop, dtype=np.uint64))
            found = np.searchsorted(self._ring_array, hashes, side="left")
            found[found == len(self._ring_array)] = 0
            positions.frombytes(found.astype(np.int32).tobytes())
            return positions[key]
        pos = bisect_left(self._ring_hashes, splitmix64(key & _MASK64))
        return 0 if pos == len(self._ring_hashes) else pos

    def _by_hash(self, key: int) -> Station:
        pos = self._ring_position(key)
        owners = self._ring_owners
        owner = owners[pos]
        if not self._all:
            routable = self._routable
            last = len(owners) - 1
            while not routable[owner]:
                pos = pos + 1 if pos < last else 0
                owner = owners[pos]
        return self.stations[owner]

    def _two_choices(self) -> tuple[int, int]:
        """Two distinct instances in rotation, uniformly at random."""
        active = self._active
        m = len(active)
        if m == 1:
            return active[0], active[0]
        # u * m < m for every double u < 1, so i is in range(m); the fractional part
        # of u * m is uniform on [0, 1) and independent of i (with 53 - log2(m) bits),
        # which saves a second draw; j skips i, so the two are distinct
        scaled = self._uniform() * m
        i = int(scaled)
        j = int((scaled - i) * (m - 1))
        if j >= i:
            j += 1
        return active[i], active[j]

    def pick_connection(self, key: int) -> Station | None:
        """Instance for a new long-lived connection of user ``key``; None with no instances."""
        kind = self._kind
        stations = self.stations
        if kind == _ROUND_ROBIN or len(stations) <= 1:
            return self._round_robin()
        if kind == _CONSISTENT_HASH:
            return self._by_hash(key)
        counts = self.connections
        if kind == _POWER_OF_TWO:
            i, j = self._two_choices()
            return stations[i if counts[i] <= counts[j] else j]
        # least connections
        if self._all:
            return stations[counts.index(min(counts))]
        best = -1
        low = 0
        for i in self._active:
            if best < 0 or counts[i] < low:
                best, low = i, counts[i]
        return stations[best]

    def pick_request(self, key: int) -> Station | None:
        """Instance for one request (conversation or user ``key``); None with no instances.

        Least connections means least outstanding requests here: jobs in service
        plus jobs queued at the instance.
        """
        kind = self._kind
        stations = self.stations
        if kind == _ROUND_ROBIN or len(stations) <= 1:
            return self._round_robin()
        if kind == _CONSISTENT_HASH:
            return self._by_hash(key)
        if kind == _POWER_OF_TWO:
            i, j = self._two_choices()
            a, b = stations[i], stations[j]
            return a if a.busy + len(a.queue) <= b.busy + len(b.queue) else b
        # least outstanding requests: the first instance with the fewest (an idle one
        # ends the scan, which is what a lightly loaded tier mostly finds)
        candidates = stations if self._all else [stations[i] for i in self._active]
        best: Station | None = None
        low = 0
        for s in candidates:
            load = s.busy + len(s.queue)
            if load == 0:
                return s
            if best is None or load < low:
                best, low = s, load
        return best
