"""Apache Cassandra as the message store: a token ring, replicas, tunable consistency.

Implements :class:`~sim.components.durable.StoreModel`: ``write(msg, ok,
error)`` makes a message durable by the consistency level's rule and
``read(key, ok, error, arg)`` answers one query of a sync or poll. The time
between the call and ``ok`` is the store's side of the request: the hops
between the message service and the store are the service's business (it hops
before calling and after being called back). A write that the live replicas
cannot satisfy fails at once (``UnavailableException``); one that loses
replicas on the way times out.

Random numbers come from the named streams ``store.write`` and ``store.read``
(service times).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sim.components.durable import Done, StoreModel
from sim.components.stores.placement import consistency_count, stable_hash
from sim.core.distributions import Sampler
from sim.core.kernel import Kernel
from sim.core.metrics import Message
from sim.scenario.store import CassandraConfig


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
        self, spec: CassandraConfig, kernel: Kernel, hop: Callable[[], float], measure_from_s: float
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


__all__ = ["CassandraStore"]
