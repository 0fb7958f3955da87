"""Kafka's partition log and its replication: replicas, followers' fetches, ISR, high watermark.

One topic of ``partitions`` partitions; a message goes to partition
``conv mod partitions``, so the order of a conversation is the order of one
partition. Partition ``p`` lives on nodes ``(p + i) mod nodes`` for
``i < replication_factor``; the first is its preferred leader.

Each follower runs a fetch loop per partition: a fetch waits at the leader
until there are records, the response crosses one hop, the follower appends
the batch (``append_s`` on its station) and its next fetch, one hop later,
tells the leader how far it got. The high watermark (HW) is the smallest log
end among the in-sync replicas (ISR); consumers see only records below it. A
leader drops from its ISR a follower that has not caught up for
``replica.lag.time.max.ms`` (checked every half of it); a follower that has
caught up with the HW joins it again.

:class:`KafkaReplication` is the lowest layer of
:class:`~sim.components.brokers.kafka.KafkaBroker`: leadership
(:mod:`~sim.components.brokers.kafka_leaders`), the producer
(:mod:`~sim.components.brokers.kafka_producer`) and the consumer group
(:mod:`~sim.components.brokers.kafka`) build on it.

Random numbers: ``broker.replica`` (followers' append times).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence

from sim.components.durable import BrokerModel, Done
from sim.components.station import Station
from sim.core.kernel import Kernel
from sim.core.metrics import Message
from sim.scenario.broker import KafkaConfig

#: ``replica.lag.time.max.ms`` (30 s since Kafka 2.5, KIP-537): a follower that
#: has not caught up for this long leaves the ISR
REPLICA_LAG_TIME_MAX_S = 30.0
#: the leader checks for lagging followers every half of it (``isr-expiration``)
ISR_CHECK_INTERVAL_S = REPLICA_LAG_TIME_MAX_S / 2.0
#: records per follower fetch: ``replica.fetch.max.bytes`` (1 MiB) over ~256 B a record
FETCH_MAX_RECORDS = 4096


class Record:
    """One record of the producer, through its retries to its place in the log."""

    __slots__ = ("acked", "deadline", "msg", "off", "ok", "part", "seq")

    def __init__(self, msg: Message, ok: Done, part: int, seq: int, deadline: float) -> None:
        self.msg = msg
        self.ok = ok
        self.part = part
        #: the producer's sequence number in the partition (retries keep it)
        self.seq = seq
        #: the producer gives up when a retry would start after this
        self.deadline = deadline
        #: offset in the log once appended, -1 before (and after a truncation)
        self.off = -1
        #: the producer was told ``ok``
        self.acked = False


class KafkaReplication(BrokerModel):
    """The partitions of one topic, their replicas, fetch loops, ISR and high watermark.

    The layers above provide :meth:`_park` and :meth:`_maybe_flush` (the
    producer), :meth:`_deliver` and :attr:`_inflight` (the consumer group).
    """

    #: the record each partition has in flight to its consumer (the consumer group's)
    _inflight: list[Record | None]

    def __init__(
        self,
        spec: KafkaConfig,
        kernel: Kernel,
        hop: Callable[[], float],
        measure_from_s: float,
        consumers: Sequence[Station],
    ) -> None:
        super().__init__(kernel, "broker", spec.nodes, spec.workers, measure_from_s, hop, consumers)
        self.fetch_append_s = spec.append_s.sampler(kernel.streams.generator("broker.replica"))
        self.min_isr = spec.min_insync_replicas
        nodes = spec.nodes
        parts = spec.partitions
        rf = min(spec.replication_factor, nodes)
        self.nodes = nodes
        self.partitions = parts
        #: replicas of each partition, preferred leader first
        self.replicas: list[tuple[int, ...]] = [
            tuple((p + i) % nodes for i in range(rf)) for p in range(parts)
        ]
        #: partitions each node holds a replica of
        self.parts_of: list[list[int]] = [[] for _ in range(nodes)]
        for p, reps in enumerate(self.replicas):
            for r in reps:
                self.parts_of[r].append(p)
        self.leader: list[int] = [reps[0] for reps in self.replicas]
        self.leader_epoch = [0] * parts
        self.isr: list[list[int]] = [list(reps) for reps in self.replicas]
        self.hw = [0] * parts
        # the leader's log from the consumers' committed offset on (``base``)
        self._log: list[deque[Record]] = [deque() for _ in range(parts)]
        self._base = [0] * parts
        # per (partition, node), index p * nodes + node
        slots = parts * nodes
        self._leo = [0] * slots  # the replica's log end offset
        self._known = [0] * slots  # the follower's log end as its leader last heard
        self._fgen = [0] * slots  # fetch-loop generation (stale responses are ignored)
        self._fparked = [True] * slots  # a caught-up fetch waits at the leader
        self._caught_s = [0.0] * slots  # when the follower was last caught up
        # acks=all requests appended and waiting for the HW, in offset order
        self._pend: list[deque[Record]] = [deque() for _ in range(parts)]
        # nodes back from a crash that are not yet in the ISR of all their partitions
        self._rejoining = [False] * nodes
        self._lag = 0
        self.max_lag = 0
        self.not_enough_replicas = 0
        self.isr_shrinks = 0
        self.isr_expands = 0
        self.after(ISR_CHECK_INTERVAL_S, self._isr_check, None)

    # ------------------------------------------------------------ introspection

    def partition(self, conv: int) -> int:
        """The partition of a conversation."""
        return conv % self.partitions

    def end(self, p: int) -> int:
        """The leader's log end offset of partition ``p``."""
        return self._base[p] + len(self._log[p])

    def lag(self) -> int:
        """Committed records that the group has not consumed yet, over all partitions."""
        return self._lag

    # ------------------------------------------------------------ the layers above

    def _park(self, req: Record) -> None:
        """The producer holds ``req`` for a retry (NotEnoughReplicasAfterAppend)."""
        raise NotImplementedError

    def _maybe_flush(self, p: int) -> None:
        """The producer retries what it holds for ``p`` if ``p`` can take it now."""
        raise NotImplementedError

    def _deliver(self, p: int) -> None:
        """The consumer group gets the next committed record of ``p``."""
        raise NotImplementedError

    # ------------------------------------------------------------ replication

    def _advance_hw(self, p: int) -> None:
        lead = self.leader[p]
        if lead < 0 or not self.stations[lead].up:
            return
        h = self._base[p] + len(self._log[p])
        known = self._known
        row = p * self.nodes
        isr = self.isr[p]
        for m in isr:
            if m != lead:
                k = known[row + m]
                if k < h:
                    h = k
        old = self.hw[p]
        if h <= old:
            return
        self.hw[p] = h
        self._lag += h - old
        if self._lag > self.max_lag:
            self.max_lag = self._lag
        pend = self._pend[p]
        if pend:
            enough = len(isr) >= self.min_isr
            while pend and pend[0].off < h:
                req = pend.popleft()
                if enough:
                    req.acked = True
                    req.ok(req.msg)
                else:  # NotEnoughReplicasAfterAppend: the producer retries
                    self.not_enough_replicas += 1
                    self._park(req)
        if self._inflight[p] is None:
            self._deliver(p)

    def _start_fetch(self, p: int, f: int) -> None:
        """Follower ``f`` (re)starts fetching partition ``p`` from its current leader."""
        i = p * self.nodes + f
        self._fgen[i] += 1
        self._fparked[i] = False
        self._known[i] = self._leo[i]
        lead = self.leader[p]
        if f in self.isr[p]:
            self._caught_s[i] = self.kernel.now
        if lead >= 0 and lead != f and self.stations[lead].up and self.stations[f].up:
            self.after(self.hop(), self._fetch_req, (p, f, self._fgen[i]))

    def _fetch_req(self, job: tuple[int, int, int]) -> None:
        """A fetch of follower ``f`` is at the leader: it tells how far the follower got
        (which may move the HW or bring the follower into the ISR); the leader answers
        with the records after that, or holds the fetch until there are some."""
        p, f, gen = job
        nodes = self.nodes
        i = p * nodes + f
        if self._fgen[i] != gen:
            return
        lead = self.leader[p]
        if lead < 0 or not self.stations[lead].up:
            return  # restarted when a leader is elected
        start = self._leo[i]
        if self._known[i] != start:
            self._known[i] = start
            isr = self.isr[p]
            if f in isr:
                self._advance_hw(p)
        isr = self.isr[p]
        if f not in isr and start >= self.hw[p]:
            isr.append(f)
            self.isr_expands += 1
            self._check_rejoined(f)
            self._maybe_flush(p)
        end = self._base[p] + len(self._log[p])
        if start >= end:
            self._fparked[i] = True
            self._caught_s[i] = self.kernel.now
            return
        upto = end if end - start <= FETCH_MAX_RECORDS else start + FETCH_MAX_RECORDS
        caught = self.kernel.now if upto == end else -1.0
        self.after(self.hop(), self._fetch_resp, (p, f, gen, upto, caught))

    def _fetch_resp(self, job: tuple[int, int, int, int, float]) -> None:
        p, f, gen = job[0], job[1], job[2]
        if self._fgen[p * self.nodes + f] != gen:
            return
        self.stations[f].submit(self.fetch_append_s(), self._fetch_appended, job)

    def _fetch_appended(self, job: tuple[int, int, int, int, float]) -> None:
        p, f, gen, upto = job[0], job[1], job[2], job[3]
        i = p * self.nodes + f
        if self._fgen[i] != gen:
            return
        if upto > self._leo[i]:
            self._leo[i] = upto
        self.after(self.hop(), self._fetch_ack, job)

    def _fetch_ack(self, job: tuple[int, int, int, int, float]) -> None:
        """The follower's next fetch reaches the leader, one hop after its append."""
        p, f, gen, _, caught = job
        if self._fgen[p * self.nodes + f] != gen:
            return
        if caught >= 0.0:
            self._caught_s[p * self.nodes + f] = caught
        self._fetch_req((p, f, gen))

    def _check_rejoined(self, node: int) -> None:
        if self._rejoining[node] and all(node in self.isr[p] for p in self.parts_of[node]):
            self._rejoining[node] = False
            self.event(f"kafka: node {node} back in the ISR of all its partitions")

    def _isr_check(self, _: object) -> None:
        """The leaders drop followers that have not caught up for replica.lag.time.max.ms."""
        now = self.kernel.now
        nodes = self.nodes
        shrunk: list[str] = []
        for p in range(self.partitions):
            lead = self.leader[p]
            if lead < 0 or not self.stations[lead].up:
                continue
            isr = self.isr[p]
            for f in list(isr):
                i = p * nodes + f
                if (
                    f != lead
                    and not self._fparked[i]
                    and now - self._caught_s[i] > REPLICA_LAG_TIME_MAX_S
                ):
                    isr.remove(f)
                    self.isr_shrinks += 1
                    shrunk.append(f"p{p}-{f}")
            if len(isr) < len(self.replicas[p]):
                self._advance_hw(p)
        if shrunk:
            lag = f"replica lag > {REPLICA_LAG_TIME_MAX_S:g} s"
            self.event(f"kafka: ISR shrink ({lag}): {' '.join(shrunk)}")
        self.after(ISR_CHECK_INTERVAL_S, self._isr_check, None)


__all__ = [
    "FETCH_MAX_RECORDS",
    "ISR_CHECK_INTERVAL_S",
    "REPLICA_LAG_TIME_MAX_S",
    "KafkaReplication",
    "Record",
]
