"""Apache Kafka as the message broker: partitions, ISR replication, leader election, a group.

:class:`KafkaBroker` is built in layers, one concept per module, each a base
class of the next:

* :mod:`~sim.components.brokers.kafka_replication`: the partitions, their
  replicas and logs, followers' fetch loops, the ISR and the high watermark;
* :mod:`~sim.components.brokers.kafka_leaders`: fencing crashed brokers,
  leader elections and truncation, rejoining, preferred leaders;
* :mod:`~sim.components.brokers.kafka_producer`: the idempotent producer,
  leader appends, ``acks`` and retries;
* this module: the consumer group, and the broker's counters.

**Consumers.** One consumer group whose members are the message service
instances; partition ``p`` goes to member ``p mod k`` of the ``k`` live
members (in index order). One record per partition is in flight: the next
committed record is handed over when ``done`` says the previous one is
stored. A member that stops heartbeating (its station crashed or restarted)
leaves the group ``session.timeout.ms`` after its last heartbeat; the group
rebalances and its partitions resume from their committed offsets, so the
record that was in flight is delivered again (the service deduplicates).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sim.components.brokers.kafka_producer import KafkaProducer
from sim.components.brokers.kafka_replication import Record
from sim.components.station import Station
from sim.core.kernel import Kernel
from sim.core.metrics import Message
from sim.scenario.broker import KafkaConfig

#: consumer ``session.timeout.ms`` (45 s since Kafka 3.0, KIP-735)
SESSION_TIMEOUT_S = 45.0
#: consumer ``heartbeat.interval.ms``
HEARTBEAT_INTERVAL_S = 3.0


class _Commit:
    """``done`` for one consumer instance: commits the offset of the record it stored.

    One object per group membership (not per record): when the member has left
    the group, or its instance is down, the commit is refused as Kafka refuses a
    commit from a stale generation.
    """

    __slots__ = ("broker", "consumer", "gen")

    def __init__(self, broker: KafkaBroker, consumer: int, gen: int) -> None:
        self.broker = broker
        self.consumer = consumer
        self.gen = gen

    def __call__(self, msg: Message) -> None:
        self.broker._commit(self.consumer, self.gen, msg)


class KafkaBroker(KafkaProducer):
    """A Kafka cluster with one topic and one consumer group (see the module docstring)."""

    def __init__(
        self,
        spec: KafkaConfig,
        kernel: Kernel,
        hop: Callable[[], float],
        measure_from_s: float,
        consumers: Sequence[Station],
    ) -> None:
        super().__init__(spec, kernel, hop, measure_from_s, consumers)
        parts = self.partitions
        # the consumer group
        count = len(consumers)
        self._member = [st.up for st in consumers]
        self._member_epoch = [st.epoch for st in consumers]
        self._member_gen = [0] * count
        self._last_hb = [0.0] * count
        self._expiring = [False] * count
        self._commits = [_Commit(self, c, 0) for c in range(count)]
        self._owner = [-1] * parts
        self._inflight: list[Record | None] = [None] * parts
        # the member processing the record in flight, and its membership generation
        self._holder = [-1] * parts
        self._holder_gen = [0] * parts
        self._assign()
        self.consumed = 0
        self.rebalances = 0
        self.redelivered = 0
        if count:
            self.after(HEARTBEAT_INTERVAL_S, self._heartbeat, None)

    def counters(self) -> dict[str, float]:
        return {
            "broker_published": float(self.published),
            "broker_consumed": float(self.consumed),
            "broker_truncated": float(self.truncated),
            "broker_truncated_unacked": float(self.truncated_unacked),
            "broker_dropped": float(self.dropped),
            "broker_produce_errors": float(self.not_enough_replicas),
            "broker_produce_retries": float(self.retries),
            "broker_produce_expired": float(self.expired),
            "broker_elections": float(self.elections),
            "broker_isr_shrinks": float(self.isr_shrinks),
            "broker_isr_expands": float(self.isr_expands),
            "broker_rebalances": float(self.rebalances),
            "broker_redelivered": float(self.redelivered),
            "broker_max_lag": float(self.max_lag),
        }

    # ------------------------------------------------------------ consumer group

    def _alive(self, c: int) -> bool:
        station = self.consumers[c]
        return station.up and station.epoch == self._member_epoch[c]

    def _assign(self) -> None:
        members = [c for c in range(len(self.consumers)) if self._member[c]]
        k = len(members)
        for p in range(self.partitions):
            self._owner[p] = members[p % k] if k else -1

    def _deliver(self, p: int) -> None:
        """Hand the next committed record of ``p`` to its owner, if nothing is in flight."""
        log = self._log[p]
        if self._base[p] >= self.hw[p] or not log:
            return
        c = self._owner[p]
        if c < 0 or not self._alive(c):
            return  # a dead member fetches nothing: the partition waits for a rebalance
        req = log[0]
        self._inflight[p] = req
        self._holder[p] = c
        self._holder_gen[p] = self._member_gen[c]
        self.consume(c, req.msg, self._commits[c])

    def _commit(self, c: int, gen: int, msg: Message) -> None:
        if gen != self._member_gen[c] or not self._alive(c):
            return  # a commit from a member that left the group (or died) is refused
        p = msg.conv % self.partitions
        req = self._inflight[p]
        if req is None or req.msg is not msg or self._holder[p] != c:
            return
        self._inflight[p] = None
        self._log[p].popleft()
        self._base[p] += 1
        self._lag -= 1
        self.consumed += 1
        self._deliver(p)

    def _heartbeat(self, _: object) -> None:
        now = self.kernel.now
        joined = False
        for c, station in enumerate(self.consumers):
            if self._member[c]:
                if self._alive(c):
                    self._last_hb[c] = now
                elif not self._expiring[c]:
                    self._expiring[c] = True
                    wait = max(0.0, self._last_hb[c] + SESSION_TIMEOUT_S - now)
                    self.after(wait, self._session_over, (c, self._member_gen[c]))
            elif station.up:
                self._join(c)
                joined = True
        if joined:
            self._rebalance("member joined")
        self.after(HEARTBEAT_INTERVAL_S, self._heartbeat, None)

    def _join(self, c: int) -> None:
        self._member[c] = True
        self._member_epoch[c] = self.consumers[c].epoch
        self._member_gen[c] += 1
        self._commits[c] = _Commit(self, c, self._member_gen[c])
        self._last_hb[c] = self.kernel.now
        self._expiring[c] = False

    def _session_over(self, job: tuple[int, int]) -> None:
        c, gen = job
        if gen != self._member_gen[c] or not self._member[c]:
            return
        self._expiring[c] = False
        if self._alive(c):
            return
        self._member[c] = False
        self._member_gen[c] += 1
        why = f"consumer {c} session timed out"
        if self.consumers[c].up:
            self._join(c)  # the restarted instance joins as a new member
            why += ", rejoined"
        self._rebalance(why)

    def _rebalance(self, why: str) -> None:
        self.rebalances += 1
        self._assign()
        for p in range(self.partitions):
            holder = self._holder[p]
            if self._inflight[p] is not None and (
                not self._member[holder] or self._member_gen[holder] != self._holder_gen[p]
            ):
                # its member left without committing: resume from the committed offset
                self._inflight[p] = None
                self.redelivered += 1
        members = [c for c in range(len(self.consumers)) if self._member[c]]
        self.event(f"kafka: consumer group rebalance ({why}); members {members}")
        for p in range(self.partitions):
            if self._inflight[p] is None:
                self._deliver(p)

    def backlog(self) -> int:
        return self.lag()


__all__ = ["KafkaBroker"]
