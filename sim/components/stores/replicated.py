"""Replicated and managed message stores: Cassandra, DynamoDB and a MongoDB replica set.

Each store implements :class:`~sim.components.durable.StoreModel`: ``write(msg,
ok, error)`` makes a message durable by the system's own rules and
``read(key, ok, error, arg)`` answers one query of a sync or poll. The time
between the call and ``ok`` is the store's side of the request: the hops
between the message service and the store are the service's business (it hops
before calling and after being called back).

What sets the three apart:

* :class:`CassandraStore`: a token ring of ``nodes`` nodes, ``replication_factor``
  replicas per partition, a consistency level per request, hinted handoff to
  replicas that are down. A write that the live replicas cannot satisfy fails at
  once (``UnavailableException``); one that loses replicas on the way times out.
* :class:`DynamoDbStore`: a managed regional endpoint whose table is split in
  ``partitions`` partitions, each with its own provisioned throughput (token
  buckets with burst capacity). A hot partition throttles while the table as a
  whole is far from its capacity; the SDK retries throttled requests with
  exponential backoff.
* :class:`MongoDbStore`: a replica set with one primary. A primary crash leaves
  the set without a primary until the secondaries time out and elect one;
  ``w:1`` writes the old primary had acknowledged but no secondary had
  replicated are rolled back and reported through :attr:`lost`.

Random numbers come from the named streams ``store.write`` and ``store.read``
(service times), ``store.backoff`` (DynamoDB SDK jitter) and ``store.election``
(MongoDB election duration).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import Any

from sim.components.durable import Done, StoreModel
from sim.core.distributions import BlockDraws, Sampler
from sim.core.kernel import Kernel
from sim.core.metrics import Message
from sim.scenario.store import Consistency, Store, WriteConcern

_MASK64 = (1 << 64) - 1


def stable_hash(key: int) -> int:
    """A 64-bit hash of an integer key, the same in every process (SplitMix64's finaliser).

    Python's ``hash()`` of an int is the int itself; this spreads consecutive ids
    over a ring or a set of partitions the way a partitioner's token does.
    """
    z = (key + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def consistency_count(level: Consistency, replication_factor: int) -> int:
    """Replicas that must answer at ``level``: ONE 1, QUORUM RF//2+1, ALL RF."""
    if level is Consistency.ONE:
        return 1
    if level is Consistency.QUORUM:
        return replication_factor // 2 + 1
    return replication_factor


# ============================================================== Cassandra


class _Op:
    """One client request to a Cassandra coordinator: done after ``need`` replica answers."""

    __slots__ = ("acks", "arg", "done", "error", "need", "ok")

    def __init__(
        self, arg: Any, ok: Callable[[Any], None], error: Callable[[Any], None], need: int
    ) -> None:
        self.arg = arg
        self.ok = ok
        self.error = error
        self.need = need
        self.acks = 0
        self.done = False


class CassandraStore(StoreModel):
    """Apache Cassandra: a token ring, replicas per partition, tunable consistency.

    * A conversation's replicas are ``replication_factor`` consecutive nodes of
      the ring from :func:`stable_hash` of the conversation (reads: of the user
      id, the partition key of an inbox query).
    * The driver is token-aware: the coordinator is a live replica, so its own
      write or read costs no internal hop; every other replica is a hop away
      each way.
    * Write: sent to every live replica; ``ok`` when ``write_consistency``
      replicas acknowledged. Fewer live replicas than that: ``error`` at once
      (``UnavailableException``, nothing is written, nothing hinted). Replicas
      that are down, or crash before acknowledging, get a hint (with
      ``hinted_handoff``, if down for less than ``max_hint_window_s``), replayed
      to them when they recover.
    * Read: asks ``read_consistency`` live replicas (the coordinator first); the
      answer comes when the slowest of them answered.
    * A request not answered within ``request_timeout_s`` fails (the driver's
      ``basic.request.timeout``), so that a caller without its own timeout (a
      broker consumer) is never left waiting.
    """

    def __init__(
        self, spec: Store, kernel: Kernel, hop: Callable[[], float], measure_from_s: float
    ) -> None:
        if spec.replication_factor > spec.nodes:
            raise ValueError(
                f"cassandra: replication_factor ({spec.replication_factor}) > nodes ({spec.nodes})"
            )
        super().__init__(kernel, "store", spec.nodes, spec.workers, measure_from_s, hop)
        streams = kernel.streams
        self.write_s: Sampler = spec.write_s.sampler(streams.generator("store.write"))
        self.read_s: Sampler = spec.read_s.sampler(streams.generator("store.read"))
        rf = spec.replication_factor
        n = spec.nodes
        self.replication_factor = rf
        self.write_level = consistency_count(spec.write_consistency, rf)
        self.read_level = consistency_count(spec.read_consistency, rf)
        self.timeout_s = spec.request_timeout_s
        self.hinted_handoff = spec.hinted_handoff
        self.max_hint_window_s = spec.max_hint_window_s
        #: replicas of each ring position: RF consecutive nodes
        self._ring = [tuple((start + i) % n for i in range(rf)) for start in range(n)]
        #: since when each node is down (-1: up)
        self.down_since = [-1.0] * n
        #: hints waiting for each node
        self.hints: list[list[Message]] = [[] for _ in range(n)]
        #: writes sent to each replica and not yet written there: hinted if it crashes
        self._inflight: list[dict[int, Message]] = [{} for _ in range(n)]
        self._next_write = 0
        self.unavailable = 0
        self.timeouts = 0
        self.hints_stored = 0
        self.hints_replayed = 0
        self.hints_dropped = 0

    def replicas(self, key: int) -> tuple[int, ...]:
        """The nodes that hold partition ``key``, in ring order."""
        return self._ring[stable_hash(key) % len(self.stations)]

    # ------------------------------------------------------------ writes

    def write(self, msg: Message, ok: Done, error: Done) -> None:
        stations = self.stations
        reps = self.replicas(msg.conv)
        live = [r for r in reps if stations[r].up]
        if len(live) < self.write_level:
            self.unavailable += 1
            error(msg)
            return
        op = _Op(msg, ok, error, self.write_level)
        coordinator = live[0]
        for r in reps:
            if not stations[r].up:
                self._hint(r, msg)
                continue
            wid = self._next_write
            self._next_write = wid + 1
            self._inflight[r][wid] = msg
            if r == coordinator:
                stations[r].submit(self.write_s(), self._wrote_local, (op, r, wid))
            else:
                self.after(self.hop(), self._write_at_replica, (op, r, wid))
        self.after(self.timeout_s, self._timeout, op)

    def _write_at_replica(self, job: tuple[_Op, int, int]) -> None:
        self.stations[job[1]].submit(self.write_s(), self._wrote_remote, job)

    def _wrote_local(self, job: tuple[_Op, int, int]) -> None:
        op, r, wid = job
        self._inflight[r].pop(wid, None)
        self._ack(op)

    def _wrote_remote(self, job: tuple[_Op, int, int]) -> None:
        op, r, wid = job
        self._inflight[r].pop(wid, None)
        self.after(self.hop(), self._ack, op)

    def _ack(self, op: _Op) -> None:
        if op.done:
            return
        op.acks += 1
        if op.acks >= op.need:
            op.done = True
            op.ok(op.arg)

    def _timeout(self, op: _Op) -> None:
        if op.done:
            return
        op.done = True
        self.timeouts += 1
        op.error(op.arg)

    def _hint(self, node: int, msg: Message) -> None:
        if not self.hinted_handoff:
            return
        if self.now - self.down_since[node] >= self.max_hint_window_s:
            self.hints_dropped += 1  # the node needs a repair to get this write
            return
        self.hints[node].append(msg)
        self.hints_stored += 1

    # ------------------------------------------------------------ reads

    def read(
        self, key: int, ok: Callable[[Any], None], error: Callable[[Any], None], arg: Any
    ) -> None:
        stations = self.stations
        live = [r for r in self.replicas(key) if stations[r].up]
        k = self.read_level
        if len(live) < k:
            self.unavailable += 1
            error(arg)
            return
        op = _Op(arg, ok, error, k)
        stations[live[0]].submit(self.read_s(), self._ack, op)
        for r in live[1:k]:
            self.after(self.hop(), self._read_at_replica, (op, r))
        self.after(self.timeout_s, self._timeout, op)

    def _read_at_replica(self, job: tuple[_Op, int]) -> None:
        self.stations[job[1]].submit(self.read_s(), self._read_remote_done, job[0])

    def _read_remote_done(self, op: _Op) -> None:
        self.after(self.hop(), self._ack, op)

    # ------------------------------------------------------------ faults

    def on_crash(self, node: int) -> None:
        self.down_since[node] = self.now
        pending = self._inflight[node]
        for msg in pending.values():
            self._hint(node, msg)  # the coordinator hints a replica that did not answer
        pending.clear()
        self.event(f"cassandra node {node} down")

    def on_recover(self, node: int) -> None:
        self.down_since[node] = -1.0
        hints = self.hints[node]
        self.hints[node] = []
        for _ in hints:
            self.after(self.hop(), self._replay, node)
        self.event(f"cassandra node {node} up: replaying {len(hints)} hints")

    def _replay(self, node: int) -> None:
        self.stations[node].submit(self.write_s(), self._replayed, node)

    def _replayed(self, node: int) -> None:
        self.hints_replayed += 1

    def counters(self) -> dict[str, float]:
        return {
            "store_unavailable": float(self.unavailable),
            "store_timeouts": float(self.timeouts),
            "store_hints_stored": float(self.hints_stored),
            "store_hints_replayed": float(self.hints_replayed),
            "store_hints_dropped": float(self.hints_dropped),
        }


# ============================================================== DynamoDB

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
        spec: Store,
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
        if spec.nodes != 1:
            raise ValueError(
                f"dynamodb is one regional endpoint: store.nodes must be 1, got {spec.nodes}"
            )
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


# ============================================================== MongoDB

_WAITING = 0
_INFLIGHT = 1
_DONE = 2


class _MReq:
    """A driver operation: waiting for a primary, at the primary, or done."""

    __slots__ = ("arg", "error", "ok", "retried", "rid", "selection", "state", "write")

    def __init__(
        self, arg: Any, ok: Callable[[Any], None], error: Callable[[Any], None], write: bool
    ) -> None:
        self.arg = arg
        self.ok = ok
        self.error = error
        self.write = write
        self.retried = False
        self.state = _WAITING
        self.rid = -1
        self.selection = 0


class MongoDbStore(StoreModel):
    """A MongoDB replica set: one primary, secondaries applying its oplog, elections.

    * Writes and reads go to the primary (readPreference ``primary``). A write
      takes ``write_s`` on the primary and enters its oplog. Each secondary
      pulls the oplog (the oplog fetcher's awaitData getMore): a getMore
      waiting at the primary is answered at once with the entries it lacks; the
      batch travels a hop, enters the secondary's oplog, is applied there
      (``write_s`` per entry) and the next getMore travels a hop back. Entries
      written while a getMore is on its way wait at the primary: that round
      trip is the window of ``w1`` writes a crash rolls back. Applied
      positions go back to the primary (a hop). ``w1``: ``ok`` when the
      primary wrote the entry; ``majority``: when a majority of members (the
      primary included) applied it.
    * Primary crash: no primary until the secondaries notice
      (``election_timeout_s``) and elect one (``election_s``, a few hundred
      ms). Operations meanwhile wait for a primary (server selection) and
      fail after ``server_selection_timeout_s`` (30 s) without one; the
      operations in progress at the crash are retried once (retryable writes
      and reads), then fail.
    * The new primary is the live member with the most recent oplog entry.
      The entries after it are rolled back: the acknowledged ones (``w1``
      writes) go to :attr:`lost` and are counted. With ``majority`` nothing
      acknowledged is rolled back.
    * A primary that cannot see a majority steps down after
      ``election_timeout_s``; an election needs a majority of members up.
    * A member that recovers rejoins as a secondary, caught up at once when
      there is a primary (its initial sync or catch-up is not modelled);
      without a primary it keeps its oplog and may be elected.
    """

    def __init__(
        self,
        spec: Store,
        kernel: Kernel,
        hop: Callable[[], float],
        measure_from_s: float,
        *,
        election_s: tuple[float, float] = (0.2, 0.5),
        server_selection_timeout_s: float = 30.0,
    ) -> None:
        super().__init__(kernel, "store", spec.nodes, spec.workers, measure_from_s, hop)
        streams = kernel.streams
        self.write_s: Sampler = spec.write_s.sampler(streams.generator("store.write"))
        self.read_s: Sampler = spec.read_s.sampler(streams.generator("store.read"))
        election_rng = streams.generator("store.election")
        low, high = election_s
        self._election_s: Sampler = BlockDraws(lambda k: election_rng.uniform(low, high, k))
        n = spec.nodes
        self.majority = n // 2 + 1
        self.write_concern = spec.write_concern
        self.w1 = spec.write_concern is WriteConcern.W1
        self.election_timeout_s = spec.election_timeout_s
        self.server_selection_timeout_s = server_selection_timeout_s
        self.primary: int | None = 0
        #: the election term: replication and positions of an older term are ignored
        self.term = 1
        #: bumped whenever the primary changes or goes: its operations in progress are void
        self.epoch = 1
        #: the primary's oplog, and whether each entry was acknowledged to the client
        self.oplog: list[Message] = []
        self.acked = bytearray()
        #: oplog entries each member holds (fetched into its oplog: what elections compare)
        self.received = [0] * n
        #: entries the primary has shipped to each secondary; a getMore waiting at the primary
        self._sent = [0] * n
        self._parked = [i != 0 for i in range(n)]
        #: each member's applied oplog prefix, and entries applied beyond it (out of order)
        self.pos = [0] * n
        self._beyond: list[set[int]] = [set() for _ in range(n)]
        #: members' positions as the primary knows them (for the majority commit point)
        self.seen = [0] * n
        self.commit = 0
        self._majority_wait: deque[tuple[int, _MReq]] = deque()
        self._inflight: dict[int, _MReq] = {}
        self._waiting: dict[int, _MReq] = {}
        self._next_rid = 0
        self._election_gen = 0
        self._election_pending = False
        self.elections = 0
        self.stepdowns = 0
        self.rolled_back = 0
        self.rolled_back_unacked = 0
        self.retried = 0
        self.selection_timeouts = 0

    # ------------------------------------------------------------ requests

    def write(self, msg: Message, ok: Done, error: Done) -> None:
        self._select(_MReq(msg, ok, error, True))

    def read(
        self, key: int, ok: Callable[[Any], None], error: Callable[[Any], None], arg: Any
    ) -> None:
        self._select(_MReq(arg, ok, error, False))

    def _rid(self, req: _MReq) -> int:
        rid = self._next_rid
        self._next_rid = rid + 1
        req.rid = rid
        return rid

    def _select(self, req: _MReq) -> None:
        """Server selection: the primary, or wait for one (at most the selection timeout)."""
        if self.primary is not None:
            self._dispatch(req)
            return
        req.state = _WAITING
        self._waiting[self._rid(req)] = req
        req.selection += 1
        self.after(self.server_selection_timeout_s, self._selection_expired, (req, req.selection))

    def _selection_expired(self, ctx: tuple[_MReq, int]) -> None:
        req, selection = ctx
        if req.state != _WAITING or req.selection != selection:
            return
        self._waiting.pop(req.rid, None)
        req.state = _DONE
        self.selection_timeouts += 1
        req.error(req.arg)

    def _dispatch(self, req: _MReq) -> None:
        primary = self.primary
        assert primary is not None
        req.state = _INFLIGHT
        rid = self._rid(req)
        self._inflight[rid] = req
        cost = self.write_s() if req.write else self.read_s()
        self.stations[primary].submit(cost, self._at_primary, (req, self.epoch, rid))

    def _finish(self, req: _MReq) -> None:
        self._inflight.pop(req.rid, None)
        req.state = _DONE
        req.ok(req.arg)

    def _at_primary(self, job: tuple[_MReq, int, int]) -> None:
        req, epoch, rid = job
        if epoch != self.epoch or req.state != _INFLIGHT or req.rid != rid:
            return
        if not req.write:
            self._finish(req)
            return
        idx = len(self.oplog)
        self.oplog.append(req.arg)
        self.acked.append(0)
        parked = self._parked
        for s in range(len(parked)):
            if parked[s]:
                self._ship(s)
        if self.w1:
            self.acked[idx] = 1
            self._finish(req)
        else:
            self._majority_wait.append((idx, req))
            self._advance_commit()

    # ------------------------------------------------------------ replication

    def _ship(self, s: int) -> None:
        """Answer secondary ``s``'s waiting getMore with the oplog entries it lacks."""
        start = self._sent[s]
        end = len(self.oplog)
        self._sent[s] = end
        self._parked[s] = False
        self.after(self.hop(), self._batch, (s, self.term, start, end))

    def _batch(self, job: tuple[int, int, int, int]) -> None:
        """A batch reaches secondary ``s``: into its oplog, to be applied; next getMore."""
        s, term, start, end = job
        station = self.stations[s]
        if term != self.term or not station.up:
            return
        if end > self.received[s]:
            self.received[s] = end
        for idx in range(start, end):
            station.submit(self.write_s(), self._applied, (s, term, idx))
        self.after(self.hop(), self._get_more, (s, term))

    def _get_more(self, job: tuple[int, int]) -> None:
        s, term = job
        if term != self.term or self.primary is None or not self.stations[s].up:
            return  # the fetcher restarts with the next primary
        if self._sent[s] < len(self.oplog):
            self._ship(s)
        else:
            self._parked[s] = True  # awaitData: answered by the next write

    def _applied(self, job: tuple[int, int, int]) -> None:
        s, term, idx = job
        if term != self.term or idx < self.pos[s]:
            return
        beyond = self._beyond[s]
        beyond.add(idx)
        p = self.pos[s]
        while p in beyond:
            beyond.remove(p)
            p += 1
        if p != self.pos[s]:
            self.pos[s] = p
            if self.primary is not None:
                self.after(self.hop(), self._position, (s, term, p))

    def _position(self, job: tuple[int, int, int]) -> None:
        s, term, p = job
        if term != self.term or self.primary is None:
            return
        if p > self.seen[s]:
            self.seen[s] = p
            self._advance_commit()

    def _advance_commit(self) -> None:
        primary = self.primary
        positions = sorted(
            (len(self.oplog) if i == primary else self.seen[i] for i in range(len(self.stations))),
            reverse=True,
        )
        point = positions[self.majority - 1]
        if point <= self.commit:
            return
        self.commit = point
        waiting = self._majority_wait
        while waiting and waiting[0][0] < point:
            idx, req = waiting.popleft()
            if req.state == _INFLIGHT:
                self.acked[idx] = 1
                self._finish(req)

    # ------------------------------------------------------------ faults

    def _live(self) -> list[int]:
        return [i for i, st in enumerate(self.stations) if st.up]

    def _lose_primary(self) -> None:
        """The primary is gone (crash or step-down): operations in progress retry once."""
        old = self.primary
        assert old is not None
        self.primary = None
        self.epoch += 1
        self.pos[old] = self.received[old] = len(self.oplog)
        self._beyond[old].clear()
        self._majority_wait.clear()
        pending = list(self._inflight.values())
        self._inflight.clear()
        for req in pending:
            if req.retried:
                req.state = _DONE
                req.error(req.arg)
            else:
                req.retried = True
                self.retried += 1
                self._select(req)

    def _schedule_election(self, delay_s: float) -> None:
        self._election_gen += 1
        self._election_pending = True
        self.after(delay_s, self._elect, self._election_gen)

    def on_crash(self, node: int) -> None:
        self._parked[node] = False
        if node == self.primary:
            self.event(f"mongodb primary {node} down")
            self._lose_primary()
            self._schedule_election(self.election_timeout_s + self._election_s())
        elif self.primary is not None and len(self._live()) < self.majority:
            self.after(self.election_timeout_s, self._check_majority, self.epoch)

    def _check_majority(self, epoch: int) -> None:
        if epoch != self.epoch or self.primary is None:
            return
        if len(self._live()) < self.majority:
            self.stepdowns += 1
            self.event(f"mongodb primary {self.primary} steps down: no majority")
            self._lose_primary()

    def on_recover(self, node: int) -> None:
        if self.primary is not None:
            # rejoins as a secondary; its catch-up (or initial sync) is not modelled: instant
            end = len(self.oplog)
            self.pos[node] = self.received[node] = self._sent[node] = self.seen[node] = end
            self._beyond[node].clear()
            self._parked[node] = True
            self._advance_commit()
        else:
            # keeps the oplog it had, and may be elected
            self.pos[node] = self.received[node] = min(self.received[node], len(self.oplog))
            self._beyond[node].clear()
            if not self._election_pending and len(self._live()) >= self.majority:
                self._schedule_election(self._election_s())
        self.event(f"mongodb member {node} back")

    def _elect(self, gen: int) -> None:
        if gen != self._election_gen or self.primary is not None:
            return
        self._election_pending = False
        live = self._live()
        if len(live) < self.majority:
            self.event("mongodb: no majority up, no election")
            return
        received = self.received
        winner = max(live, key=lambda i: (received[i], -i))
        cut = received[winner]
        lost = [m for m, a in zip(self.oplog[cut:], self.acked[cut:], strict=True) if a]
        unacked = len(self.oplog) - cut - len(lost)
        del self.oplog[cut:]
        del self.acked[cut:]
        up = set(live)
        for i in range(len(received)):
            # members drain what they fetched (a new primary does before taking writes)
            received[i] = min(received[i], cut)
            self.pos[i] = self._sent[i] = received[i]
            self._beyond[i].clear()
            self._parked[i] = i != winner and i in up
        self.term += 1
        self.epoch += 1
        self.primary = winner
        self.seen = list(self.pos)
        self.commit = 0
        self.elections += 1
        self.event(f"mongodb election: member {winner} primary (term {self.term})")
        if lost or unacked:
            self.rolled_back += len(lost)
            self.rolled_back_unacked += unacked
            self.event(f"mongodb rollback: {len(lost)} acknowledged, {unacked} other writes")
        self._advance_commit()
        waiting = list(self._waiting.values())
        self._waiting.clear()
        for req in waiting:
            self._dispatch(req)
        if lost:
            self.lost(lost)

    def counters(self) -> dict[str, float]:
        return {
            "store_elections": float(self.elections),
            "store_stepdowns": float(self.stepdowns),
            "store_rolled_back": float(self.rolled_back),
            "store_retried": float(self.retried),
            "store_selection_timeouts": float(self.selection_timeouts),
        }


__all__ = [
    "CassandraStore",
    "DynamoDbStore",
    "MongoDbStore",
    "consistency_count",
    "stable_hash",
]
