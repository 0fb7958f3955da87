"""Apache Kafka as the message broker: partitions, ISR replication, leader election, a group.

One topic of ``partitions`` partitions; a message goes to partition
``conv mod partitions``, so the order of a conversation is the order of one
partition. Partition ``p`` lives on nodes ``(p + i) mod nodes`` for
``i < replication_factor``; the first is its preferred leader.

**Produce.** :meth:`KafkaBroker.publish` is called where the request reaches
the partition leader (the message service already paid the network hop, and
pays the hop of the response). The leader appends the records that arrived to
its log one batch at a time per partition (the log is appended under a lock:
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

**Replication.** Each follower runs a fetch loop per partition: a fetch waits
at the leader until there are records, the response crosses one hop, the
follower appends the batch (``append_s`` on its station) and its next fetch,
one hop later, tells the leader how far it got. The high watermark (HW) is
the smallest log end among the ISR; consumers see only records below it.

**Faults.** A crashed node is fenced by the controller after
``broker.session.timeout.ms`` (``failover_s``): it leaves every ISR it was in
(unless it was the only member) and the partitions it led elect the first
unfenced ISR member in replica order (clean election only: with no candidate
the partition stays offline until one returns). The new leader's log is the
truth: records the old leader had beyond it are truncated, as are the
followers' logs. Independently, a leader drops from its ISR a follower that
has not caught up for ``replica.lag.time.max.ms`` (checked every half of it).
A crash is a broker process crash: the node's log survives it (the page
cache is not lost), its queued and running work does not. A recovered node
truncates to its leader's log, fetches what it missed and rejoins the ISR
once it reaches the HW. Every five minutes the controller
moves leadership back to preferred leaders that are in sync
(``auto.leader.rebalance.enable``).

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

import heapq
from collections import deque
from collections.abc import Callable, Sequence

from sim.components.durable import BrokerModel, Done
from sim.components.station import Station
from sim.core.kernel import Kernel
from sim.core.metrics import Message
from sim.scenario.broker import Broker, KafkaAcks

#: ``replica.lag.time.max.ms`` (30 s since Kafka 2.5, KIP-537): a follower that
#: has not caught up for this long leaves the ISR
REPLICA_LAG_TIME_MAX_S = 30.0
#: the leader checks for lagging followers every half of it (``isr-expiration``)
ISR_CHECK_INTERVAL_S = REPLICA_LAG_TIME_MAX_S / 2.0
#: ``retry.backoff.ms``: the producer retries a failed request after this long
RETRY_BACKOFF_S = 0.1
#: consumer ``session.timeout.ms`` (45 s since Kafka 3.0, KIP-735)
SESSION_TIMEOUT_S = 45.0
#: consumer ``heartbeat.interval.ms``
HEARTBEAT_INTERVAL_S = 3.0
#: ``leader.imbalance.check.interval.seconds``
LEADER_IMBALANCE_CHECK_S = 300.0
#: ``leader.imbalance.per.broker.percentage``
LEADER_IMBALANCE_RATIO = 0.10
#: records per follower fetch: ``replica.fetch.max.bytes`` (1 MiB) over ~256 B a record
FETCH_MAX_RECORDS = 4096


class _Req:
    """One produce request of the producer (one record), through its retries."""

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


class KafkaBroker(BrokerModel):
    """A Kafka cluster with one topic and one consumer group (see the module docstring)."""

    def __init__(
        self,
        spec: Broker,
        kernel: Kernel,
        hop: Callable[[], float],
        measure_from_s: float,
        consumers: Sequence[Station],
    ) -> None:
        super().__init__(kernel, "broker", spec.nodes, spec.workers, measure_from_s, hop, consumers)
        streams = kernel.streams
        self.append_s = spec.append_s.sampler(streams.generator("broker.append"))
        self.fetch_append_s = spec.append_s.sampler(streams.generator("broker.replica"))
        self.acks = spec.acks
        self._acks0 = spec.acks is KafkaAcks.NONE
        self._acks1 = spec.acks is KafkaAcks.LEADER
        self._acks_all = spec.acks is KafkaAcks.ALL
        self.min_isr = spec.min_insync_replicas
        self.failover_s = spec.failover_s
        self.delivery_timeout_s = spec.request_timeout_s
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
        self._log: list[deque[_Req]] = [deque() for _ in range(parts)]
        self._base = [0] * parts
        # per (partition, node), index p * nodes + node
        slots = parts * nodes
        self._leo = [0] * slots  # the replica's log end offset
        self._known = [0] * slots  # the follower's log end as its leader last heard
        self._fgen = [0] * slots  # fetch-loop generation (stale responses are ignored)
        self._fparked = [True] * slots  # a caught-up fetch waits at the leader
        self._caught_s = [0.0] * slots  # when the follower was last caught up
        # leader appends: records waiting for the next append, the append in progress
        self._appendq: list[list[_Req]] = [[] for _ in range(parts)]
        self._inbatch: list[list[_Req] | None] = [None] * parts
        # acks=all requests appended and waiting for the HW, in offset order
        self._pend: list[deque[_Req]] = [deque() for _ in range(parts)]
        # the producer: sequence numbers, requests waiting to be retried (a heap by seq)
        self._seq = [0] * parts
        self._parked: list[list[tuple[int, _Req]]] = [[] for _ in range(parts)]
        self._parked_since = [0.0] * parts
        self._flush_pending = [False] * parts
        self._arrive_at = [-1.0] * parts  # last arrival scheduled (requests keep their order)
        # node state as the controller sees it
        self._down = [False] * nodes
        self._fenced = [False] * nodes
        self._incarnation = [0] * nodes
        self._rejoining = [False] * nodes
        # the consumer group
        count = len(consumers)
        self._member = [st.up for st in consumers]
        self._member_epoch = [st.epoch for st in consumers]
        self._member_gen = [0] * count
        self._last_hb = [0.0] * count
        self._expiring = [False] * count
        self._commits = [_Commit(self, c, 0) for c in range(count)]
        self._owner = [-1] * parts
        self._inflight: list[_Req | None] = [None] * parts
        # the member processing the record in flight, and its membership generation
        self._holder = [-1] * parts
        self._holder_gen = [0] * parts
        self._assign()
        # counters
        self._lag = 0
        self.max_lag = 0
        self.published = 0
        self.consumed = 0
        self.truncated = 0
        self.truncated_unacked = 0
        self.dropped = 0
        self.not_enough_replicas = 0
        self.retries = 0
        self.expired = 0
        self.elections = 0
        self.isr_shrinks = 0
        self.isr_expands = 0
        self.rebalances = 0
        self.redelivered = 0
        self.after(ISR_CHECK_INTERVAL_S, self._isr_check, None)
        self.after(LEADER_IMBALANCE_CHECK_S, self._preferred_check, None)
        if count:
            self.after(HEARTBEAT_INTERVAL_S, self._heartbeat, None)

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
        req = _Req(msg, ok, p, seq, now + self.delivery_timeout_s)
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

    def _arrive(self, req: _Req) -> None:
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

    def _duplicate(self, req: _Req) -> None:
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

    def _appended(self, job: tuple[int, int, list[_Req]]) -> None:
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

    def _fail(self, req: _Req) -> None:
        """The request failed at (or on the way to) the leader: retry, or lose it with acks=0."""
        if self._acks0:
            self.dropped += 1
            return
        self._park(req)

    def _park(self, req: _Req) -> None:
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
        failed: list[_Req] = list(self._pend[p])
        self._pend[p].clear()
        batch = self._inbatch[p]
        if batch is not None:
            failed.extend(batch)
            self._inbatch[p] = None
        failed.extend(self._appendq[p])
        self._appendq[p] = []
        for req in failed:
            self._fail(req)

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

    # ------------------------------------------------------------ leadership

    def _set_leader(self, p: int, new: int, why: str) -> None:
        """Make ``new`` (-1: none) the leader of ``p``; its log is the truth from now on."""
        old = self.leader[p]
        self.leader[p] = new
        self.leader_epoch[p] += 1
        self._fail_requests(p)
        nodes = self.nodes
        row = p * nodes
        reps = self.replicas[p]
        if new >= 0:
            self.elections += 1
            new_end = self._leo[row + new]
            end = self._base[p] + len(self._log[p])
            note = ""
            if new_end < end:
                log = self._log[p]
                acked = 0
                for _ in range(end - new_end):
                    req = log.pop()
                    req.off = -1
                    if req.acked:
                        acked += 1
                self.truncated += acked
                self.truncated_unacked += end - new_end - acked
                note = f"; truncated {end - new_end} records ({acked} acknowledged: lost)"
            for r in reps:
                if self._leo[row + r] > new_end:
                    self._leo[row + r] = new_end
            for r in reps:
                if r != new:
                    self._start_fetch(p, r)
            self.event(
                f"kafka: p{p} leader {old} -> {new} (epoch {self.leader_epoch[p]}, {why}){note}"
            )
        else:
            for r in reps:
                self._fgen[row + r] += 1
                self._fparked[row + r] = False
            self.event(f"kafka: p{p} offline: no in-sync replica to elect ({why})")
        self._advance_hw(p)
        self._maybe_flush(p)
        if self._inflight[p] is None:
            self._deliver(p)

    def on_crash(self, node: int) -> None:
        if self._down[node]:
            return
        self._down[node] = True
        self._incarnation[node] += 1
        nodes = self.nodes
        now = self.kernel.now
        for p in self.parts_of[node]:
            i = p * nodes + node
            self._fgen[i] += 1
            if self._fparked[i]:
                self._caught_s[i] = now
            self._fparked[i] = False
            if self.leader[p] == node:
                self._fail_requests(p)
        self.after(self.failover_s, self._session_expired, (node, self._incarnation[node]))

    def _session_expired(self, job: tuple[int, int]) -> None:
        node, incarnation = job
        if self._incarnation[node] == incarnation and self._down[node] and not self._fenced[node]:
            self._fence(node, "session timeout")

    def _fence(self, node: int, why: str) -> None:
        """The controller fences ``node``: it leaves every non-singleton ISR, leaders move."""
        self._fenced[node] = True
        shrunk: list[int] = []
        for p in self.parts_of[node]:
            isr = self.isr[p]
            if node in isr and len(isr) > 1:
                isr.remove(node)
                self.isr_shrinks += 1
                shrunk.append(p)
            if self.leader[p] == node:
                cand = -1
                for r in self.replicas[p]:
                    if r in isr and not self._fenced[r]:
                        cand = r
                        break
                self._set_leader(p, cand, f"node {node} fenced")
            elif p in shrunk:
                self._advance_hw(p)
        self.event(f"kafka: node {node} fenced ({why}); ISR shrink in {len(shrunk)} partitions")

    def on_recover(self, node: int) -> None:
        if not self._down[node]:
            return
        if not self._fenced[node]:
            # the restarted broker registers anew: its old incarnation is fenced first
            self._fence(node, "restarted")
        self._down[node] = False
        self._fenced[node] = False
        self._incarnation[node] += 1
        self._rejoining[node] = True
        nodes = self.nodes
        for p in self.parts_of[node]:
            if self.leader[p] < 0:
                if node in self.isr[p]:
                    self._set_leader(p, node, f"node {node} back")
                continue
            i = p * nodes + node
            end = self._base[p] + len(self._log[p])
            if self._leo[i] > end:
                self._leo[i] = end
            self._start_fetch(p, node)
        self.event(f"kafka: node {node} unfenced, catching up")
        self._check_rejoined(node)

    def _preferred_check(self, _: object) -> None:
        """auto.leader.rebalance: move leadership back to in-sync preferred leaders."""
        for b in range(self.nodes):
            if self._down[b] or self._fenced[b]:
                continue
            preferred = [p for p in range(self.partitions) if self.replicas[p][0] == b]
            moved = [p for p in preferred if self.leader[p] != b]
            if not preferred or len(moved) <= LEADER_IMBALANCE_RATIO * len(preferred):
                continue
            for p in moved:
                if b in self.isr[p]:
                    self._set_leader(p, b, "preferred leader election")
        self.after(LEADER_IMBALANCE_CHECK_S, self._preferred_check, None)

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
