"""Kafka's idempotent producer: produce requests, leader appends, acks, retries.

:meth:`KafkaProducer.publish` is called where the request reaches the
partition leader (the message service already paid the network hop, and pays
the hop of the response). The leader appends the records that arrived to its
log one batch at a time per partition (the log is appended under a lock:
records that queue during an append go into the next one), each append a job
of ``append_s`` on the leader's station.

* ``acks=0``: ``ok`` at once, before the leader has the record; a record that
  was in a crashed leader's queue, or that the new leader lacks (truncation),
  is gone. One published while the partition has no live leader waits in the
  producer's accumulator until a leader is elected (gone if that takes longer
  than the delivery timeout).
* ``acks=1``: ``ok`` when the leader has appended it.
* ``acks=all``: refused (NotEnoughReplicas) while the ISR is smaller than
  ``min_insync_replicas``; ``ok`` when every ISR member has the record (the
  high watermark passed it) and the ISR is still large enough.

A refused or interrupted request (no live leader, NotEnoughReplicas, the
leader crashed or lost leadership) is retried by the producer every
``retry.backoff.ms``, in order per partition (idempotent producer: a retried
record that the log already holds is not appended twice), until the
service's request timeout (taken as the producer's ``delivery.timeout.ms``);
then the producer drops it silently and the service reports the failure. The
broker therefore never calls ``error``: Kafka's producer retries every
retriable error itself.

Random numbers: ``broker.append`` (leaders' append times).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence

from sim.components.brokers.kafka_leaders import KafkaLeadership
from sim.components.brokers.kafka_replication import Record
from sim.components.durable import Done
from sim.components.station import Station
from sim.core.kernel import Kernel
from sim.core.metrics import Message
from sim.scenario.broker import KafkaAcks, KafkaConfig

#: ``retry.backoff.ms``: the producer retries a failed request after this long
RETRY_BACKOFF_S = 0.1


class KafkaProducer(KafkaLeadership):
    """The producer's requests to the partition leaders, and the leaders' appends.

    The consumer group above provides :meth:`_deliver`.
    """

    def __init__(
        self,
        spec: KafkaConfig,
        kernel: Kernel,
        hop: Callable[[], float],
        measure_from_s: float,
        consumers: Sequence[Station],
    ) -> None:
        super().__init__(spec, kernel, hop, measure_from_s, consumers)
        self.append_s = spec.append_s.sampler(kernel.streams.generator("broker.append"))
        self.acks = spec.acks
        self._acks0 = spec.acks is KafkaAcks.NONE
        self._acks1 = spec.acks is KafkaAcks.LEADER
        self._acks_all = spec.acks is KafkaAcks.ALL
        self.delivery_timeout_s = spec.request_timeout_s
        parts = self.partitions
        # leader appends: records waiting for the next append, the append in progress
        self._appendq: list[list[Record]] = [[] for _ in range(parts)]
        self._inbatch: list[list[Record] | None] = [None] * parts
        # the producer: sequence numbers, requests waiting to be retried (a heap by seq)
        self._seq = [0] * parts
        self._parked: list[list[tuple[int, Record]]] = [[] for _ in range(parts)]
        self._parked_since = [0.0] * parts
        self._flush_pending = [False] * parts
        self._arrive_at = [-1.0] * parts  # last arrival scheduled (requests keep their order)
        self.published = 0
        self.dropped = 0
        self.retries = 0
        self.expired = 0

    # ------------------------------------------------------------ produce

    def publish(self, msg: Message, ok: Done, error: Done) -> None:
        """A produce request of one record reaches the partition leader.

        ``error`` is never called: the producer retries retriable errors until
        its delivery timeout, then gives up silently (the service times out).
        """
        p = msg.conv % self.partitions
        seq = self._seq[p] + 1
        self._seq[p] = seq
        now = self.kernel.now
        req = Record(msg, ok, p, seq, now + self.delivery_timeout_s)
        self.published += 1
        if self._acks0:
            req.acked = True
            ok(msg)
        at = self._arrive_at[p]
        if at >= now:  # retried requests ahead of this one are still on the way
            self.after(at - now, self._arrive, req)
        else:
            self._arrive(req)

    def _writable(self, p: int) -> bool:
        lead = self.leader[p]
        if lead < 0 or not self.stations[lead].up:
            return False
        return not (self._acks_all and len(self.isr[p]) < self.min_isr)

    def _arrive(self, req: Record) -> None:
        """The request is at the leader (as the producer's metadata says)."""
        p = req.part
        parked = self._parked[p]
        if parked and parked[0][0] < req.seq:
            # an earlier record of the partition waits for a retry: keep the order
            self._park(req)
            return
        lead = self.leader[p]
        if lead < 0 or not self.stations[lead].up:
            # no live leader: the producer holds the record and retries (acks=0 too: a
            # record waits in its accumulator until the partition has a leader again)
            self._park(req)
            return
        if self._acks_all:
            if len(self.isr[p]) < self.min_isr:
                self.not_enough_replicas += 1
                self._park(req)
                return
            off = req.off
            if off >= 0:
                base = self._base[p]
                log = self._log[p]
                if off < base or (off < base + len(log) and log[off - base] is req):
                    self._duplicate(req)
                    return
        queue = self._appendq[p]
        queue.append(req)
        if self._inbatch[p] is None:
            self._start_append(p)

    def _duplicate(self, req: Record) -> None:
        """A retried acks=all record the log already holds (idempotent producer)."""
        p = req.part
        if req.off < self.hw[p]:
            req.acked = True
            req.ok(req.msg)
            return
        pend = self._pend[p]
        if not pend or pend[-1].off < req.off:
            pend.append(req)
            return
        i = len(pend)
        while i > 0 and pend[i - 1].off > req.off:
            i -= 1
        pend.insert(i, req)

    def _start_append(self, p: int) -> None:
        batch = self._appendq[p]
        self._appendq[p] = []
        self._inbatch[p] = batch
        self.stations[self.leader[p]].submit(
            self.append_s(), self._appended, (p, self.leader_epoch[p], batch)
        )

    def _appended(self, job: tuple[int, int, list[Record]]) -> None:
        p, epoch, batch = job
        if epoch != self.leader_epoch[p] or self._inbatch[p] is not batch:
            return  # leadership moved meanwhile: these requests were failed and retried
        self._inbatch[p] = None
        log = self._log[p]
        off = self._base[p] + len(log)
        for req in batch:
            req.off = off
            off += 1
            log.append(req)
        nodes = self.nodes
        lead = self.leader[p]
        self._leo[p * nodes + lead] = off
        if self._acks1:
            for req in batch:
                req.acked = True
                req.ok(req.msg)
        elif self._acks_all:
            self._pend[p].extend(batch)
        # wake the followers whose fetch waits at the leader
        fparked = self._fparked
        for f in self.replicas[p]:
            i = p * nodes + f
            if f != lead and fparked[i]:
                fparked[i] = False
                self._caught_s[i] = self.kernel.now
                self._fetch_req((p, f, self._fgen[i]))
        self._advance_hw(p)
        if self._appendq[p] and self._inbatch[p] is None:
            self._start_append(p)

    def _fail(self, req: Record) -> None:
        """The request failed at (or on the way to) the leader: retry, or lose it with acks=0."""
        if self._acks0:
            self.dropped += 1
            return
        self._park(req)

    def _park(self, req: Record) -> None:
        p = req.part
        parked = self._parked[p]
        if not parked:
            self._parked_since[p] = self.kernel.now
        heapq.heappush(parked, (req.seq, req))
        self.retries += 1
        self._maybe_flush(p)

    def _maybe_flush(self, p: int) -> None:
        """Schedule the producer's next retry of partition ``p`` if it can succeed.

        The producer retries every ``retry.backoff.ms``; retries that would fail
        the same way (no live leader, ISR too small) are not simulated one by
        one: the next retry tick after the partition becomes writable sends them.
        """
        if not self._parked[p] or self._flush_pending[p] or not self._writable(p):
            return
        self._flush_pending[p] = True
        now = self.kernel.now
        wait = RETRY_BACKOFF_S - (now - self._parked_since[p]) % RETRY_BACKOFF_S
        self.after(wait, self._flush, p)

    def _flush(self, p: int) -> None:
        self._flush_pending[p] = False
        if not self._writable(p):
            return  # wait for the leader or the ISR to come back
        parked = self._parked[p]
        self._parked[p] = []
        now = self.kernel.now
        hop = self.hop
        at = self._arrive_at[p]
        for _, req in sorted(parked, key=lambda item: item[0]):
            if now >= req.deadline:
                self.expired += 1
                if req.acked:
                    self.dropped += 1
                continue
            at = max(now + hop(), at)
            self.after(at - now, self._arrive, req)
        self._arrive_at[p] = at

    def _fail_requests(self, p: int) -> None:
        """The leader of ``p`` crashed or lost leadership: its open requests fail."""
        failed: list[Record] = list(self._pend[p])
        self._pend[p].clear()
        batch = self._inbatch[p]
        if batch is not None:
            failed.extend(batch)
            self._inbatch[p] = None
        failed.extend(self._appendq[p])
        self._appendq[p] = []
        for req in failed:
            self._fail(req)


__all__ = ["RETRY_BACKOFF_S", "KafkaProducer"]
