"""Amazon DynamoDB as the message store: a managed endpoint, partitions, throttling.

The table is split in ``partitions`` partitions, each with its own provisioned
throughput (token buckets with burst capacity). A hot partition throttles while
the table as a whole is far from its capacity; the SDK retries throttled
requests with exponential backoff. The hops between the message service and
the endpoint are the service's business.

Random numbers come from the named streams ``store.write`` and ``store.read``
(service times) and ``store.backoff`` (the SDK's jitter).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from sim.components.durable import Done, StoreModel
from sim.components.stores.placement import stable_hash
from sim.core.distributions import BlockDraws, Sampler
from sim.core.kernel import Kernel
from sim.core.metrics import Message
from sim.scenario.store import DynamoDbConfig

#: a managed endpoint has no queue of its own that a workload could fill
_MANAGED_WORKERS = 1 << 30


class _Req:
    """A DynamoDB request as the SDK sees it: the call, its cost, its retries so far."""

    __slots__ = ("arg", "error", "ok", "partition", "rid", "tries", "units", "write")

    def __init__(
        self,
        arg: Any,
        ok: Callable[[Any], None],
        error: Callable[[Any], None],
        write: bool,
        partition: int,
        units: float,
    ) -> None:
        self.arg = arg
        self.ok = ok
        self.error = error
        self.write = write
        self.partition = partition
        self.units = units
        self.tries = 0
        self.rid = -1


def _draw(
    tokens: list[float], last: list[float], rate: float, cap: float, req: _Req, now: float
) -> bool:
    """A token bucket per partition, refilled lazily: take ``req.units`` if there are enough."""
    p = req.partition
    level = min(cap, tokens[p] + rate * (now - last[p]))
    last[p] = now
    if level < req.units:
        tokens[p] = level
        return False
    tokens[p] = level - req.units
    return True


class DynamoDbStore(StoreModel):
    """Amazon DynamoDB, provisioned capacity: partitions with token buckets, SDK retries.

    * One node: the regional endpoint. ``crash(0)`` makes it unavailable: every
      call, and every call in progress, errors.
    * ``partitions`` partitions; a write goes to the partition of its
      conversation, a read (a Query of the user's inbox) to the partition of
      the user.
    * Each partition has a write and a read token bucket filling at
      ``write_units_per_partition`` WCU/s and ``read_units_per_partition``
      RCU/s and holding up to ``burst_s`` (300 s) of unused capacity (burst
      capacity). Buckets start with ``initial_burst_s`` (1 s) of capacity.
    * A write costs ``ceil(item_bytes / 1024)`` WCU, the item being the payload
      plus ``item_overhead_bytes`` of attributes; a read costs
      ``ceil(query_bytes / 4096)`` RCU, half that when eventually consistent.
    * A request finding too few tokens is throttled
      (``ProvisionedThroughputExceededException``): the SDK sleeps a full-jitter
      exponential backoff (``backoff_base_s`` doubling, at most
      ``backoff_max_s``) and retries, up to ``sdk_max_retries`` times, then
      the call errors.
    * Otherwise the call takes ``write_s`` / ``read_s``, with no queueing: the
      service scales its request routers and storage nodes by itself.
    """

    managed = True

    def __init__(
        self,
        spec: DynamoDbConfig,
        kernel: Kernel,
        hop: Callable[[], float],
        measure_from_s: float,
        *,
        item_overhead_bytes: int = 100,
        query_bytes: int = 1024,
        burst_s: float = 300.0,
        initial_burst_s: float = 1.0,
        backoff_base_s: float = 0.025,
        backoff_max_s: float = 20.0,
    ) -> None:
        super().__init__(kernel, "store", 1, _MANAGED_WORKERS, measure_from_s, hop)
        streams = kernel.streams
        self.write_s: Sampler = spec.write_s.sampler(streams.generator("store.write"))
        self.read_s: Sampler = spec.read_s.sampler(streams.generator("store.read"))
        backoff_rng = streams.generator("store.backoff")
        self._uniform: Sampler = BlockDraws(backoff_rng.random)
        self.node = self.stations[0]
        self.partitions = spec.partitions
        self.item_overhead_bytes = item_overhead_bytes
        self.consistent_reads = spec.consistent_reads
        units = math.ceil(query_bytes / 4096)
        self.read_units: float = float(units) if spec.consistent_reads else units / 2.0
        self.max_retries = spec.sdk_max_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        p = spec.partitions
        self.wcu_rate = spec.write_units_per_partition
        self.rcu_rate = spec.read_units_per_partition
        self.wcu_cap = self.wcu_rate * burst_s
        self.rcu_cap = self.rcu_rate * burst_s
        self._w_tokens = [self.wcu_rate * initial_burst_s] * p
        self._r_tokens = [self.rcu_rate * initial_burst_s] * p
        self._w_last = [0.0] * p
        self._r_last = [0.0] * p
        self._last_throttle = [-math.inf] * p
        self._inflight: dict[int, _Req] = {}
        self._next_rid = 0
        self.throttled = 0
        self.throttled_writes = 0
        self.throttled_reads = 0
        self.throttle_errors = 0
        self.refused = 0
        self.wcu_consumed = 0.0
        self.rcu_consumed = 0.0
        self.throttled_by_partition = [0] * p

    def partition_of(self, key: int) -> int:
        return stable_hash(key) % self.partitions

    def write_units(self, msg: Message) -> int:
        return max(1, math.ceil((msg.payload_bytes + self.item_overhead_bytes) / 1024))

    def write(self, msg: Message, ok: Done, error: Done) -> None:
        req = _Req(msg, ok, error, True, self.partition_of(msg.conv), self.write_units(msg))
        self._attempt(req)

    def read(
        self, key: int, ok: Callable[[Any], None], error: Callable[[Any], None], arg: Any
    ) -> None:
        self._attempt(_Req(arg, ok, error, False, self.partition_of(key), self.read_units))

    def _take(self, req: _Req) -> bool:
        """Consume the request's units from its partition's bucket, if there are enough."""
        if req.write:
            taken = _draw(self._w_tokens, self._w_last, self.wcu_rate, self.wcu_cap, req, self.now)
            if taken:
                self.wcu_consumed += req.units
            return taken
        taken = _draw(self._r_tokens, self._r_last, self.rcu_rate, self.rcu_cap, req, self.now)
        if taken:
            self.rcu_consumed += req.units
        return taken

    def _attempt(self, req: _Req) -> None:
        if not self.node.up:
            self.refused += 1
            req.error(req.arg)
            return
        if self._take(req):
            rid = self._next_rid
            self._next_rid = rid + 1
            req.rid = rid
            self._inflight[rid] = req
            cost = self.write_s() if req.write else self.read_s()
            self.node.submit(cost, self._served, req)
            return
        self._throttle(req)

    def _throttle(self, req: _Req) -> None:
        p = req.partition
        self.throttled += 1
        self.throttled_by_partition[p] += 1
        if req.write:
            self.throttled_writes += 1
        else:
            self.throttled_reads += 1
        if self.now - self._last_throttle[p] > 1.0:
            self.event(f"dynamodb partition {p} throttling")
        self._last_throttle[p] = self.now
        if req.tries >= self.max_retries:
            self.throttle_errors += 1
            req.error(req.arg)
            return
        ceiling = min(self.backoff_max_s, self.backoff_base_s * (2.0**req.tries))
        req.tries += 1
        # the exception travels back to the SDK, it sleeps, the retry travels to the endpoint
        delay = self.hop() + self._uniform() * ceiling + self.hop()
        self.after(delay, self._attempt, req)

    def _served(self, req: _Req) -> None:
        if self._inflight.pop(req.rid, None) is None:
            return  # failed when the endpoint went down
        req.ok(req.arg)

    def on_crash(self, node: int) -> None:
        pending = list(self._inflight.values())
        self._inflight.clear()
        self.event(f"dynamodb endpoint unavailable ({len(pending)} calls in progress fail)")
        for req in pending:
            self.refused += 1
            req.error(req.arg)

    def on_recover(self, node: int) -> None:
        self.event("dynamodb endpoint available")

    def counters(self) -> dict[str, float]:
        return {
            "store_throttled": float(self.throttled),
            "store_throttle_errors": float(self.throttle_errors),
            "store_refused": float(self.refused),
            "store_wcu": self.wcu_consumed,
            "store_rcu": self.rcu_consumed,
        }


__all__ = ["DynamoDbStore"]
