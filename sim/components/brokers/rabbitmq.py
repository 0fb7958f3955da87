"""RabbitMQ as the broker: durable queues with publisher confirms and acked deliveries.

The message service publishes each accepted message to a consistent-hash
exchange bound to ``partitions`` queues: a message goes to queue
``conversation mod queues``, and queue ``q``'s leader lives on node
``q mod nodes``. Every live message service instance consumes every queue
(competing consumers, one channel each).

Deliveries to the consumers, their prefetch, acks and the detection of dead
consumers are in :mod:`~sim.components.brokers.rabbitmq_consumers`, the base
class of :class:`RabbitMqBroker`.

Queue types (``broker.queue_type``):

* ``classic``: a durable queue of persistent messages on one node. The publisher
  confirm (``ok``) comes after the node's append (``append_s``, the fsync'd
  write). While the node is down the queue is unavailable: publishes error at
  once (the channel is refused), publishes in progress at the crash error
  (connection closed), deliveries stop. What the node had confirmed is on its
  disk: it is delivered after the node recovers, and deliveries that were out
  unacked at the crash are requeued (delivered again, flagged ``redelivered``).
* ``quorum``: a Raft log replicated on ``min(3, nodes)`` nodes. The confirm comes
  once a majority appended: the leader's append, then to each follower a hop,
  its append and a hop back. A leader crash starts an election that takes
  ``failover_s``; publishes meanwhile (and those in progress at the crash) are
  held by the client and sent to the new leader, as the quorum queue client
  resends its pending commands. Committed messages are on a majority: none is
  lost. Without a live majority the queue is unavailable: publishes error at once.

Not modelled: delivery CPU on the broker nodes (only appends use their
workers), memory and disk alarms (flow control), the quorum queue delivery
limit and dead lettering, per-consumer (rather than per-channel) prefetch,
consumer connections pinned to a broker node, leader rebalancing after a
recovery, lazy/stream queues, and publish-side batching of confirms.

Random numbers: ``broker.append`` (append times).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence

from sim.components.brokers.rabbitmq_consumers import RabbitMqConsumers
from sim.components.durable import Done
from sim.components.station import Station
from sim.core.kernel import Kernel
from sim.core.metrics import Message
from sim.scenario.broker import QueueType, RabbitMqConfig

#: replicas of a quorum queue (RabbitMQ's default quorum initial group size, capped by nodes)
QUORUM_SIZE = 3

_PENDING, _COMMITTED, _DONE = range(3)


class _Pub:
    """One publish waiting for its confirm."""

    __slots__ = ("acks", "error", "msg", "ok", "q", "state", "term")

    def __init__(self, q: int, msg: Message, ok: Done, error: Done) -> None:
        self.q = q
        self.msg = msg
        self.ok = ok
        self.error = error
        self.term = 0
        self.acks = 0
        self.state = _PENDING


class RabbitMqBroker(RabbitMqConsumers):
    """A RabbitMQ cluster of ``nodes`` nodes with ``partitions`` classic or quorum queues."""

    def __init__(
        self,
        spec: RabbitMqConfig,
        kernel: Kernel,
        hop: Callable[[], float],
        measure_from_s: float,
        consumers: Sequence[Station],
    ) -> None:
        super().__init__(spec, kernel, hop, measure_from_s, consumers)
        self.spec = spec
        self.append_s = spec.append_s.sampler(kernel.streams.generator("broker.append"))
        self.quorum = spec.queue_type is QueueType.QUORUM
        self.failover_s = spec.failover_s
        nodes = spec.nodes
        queues = self.queues
        size = min(QUORUM_SIZE, nodes) if self.quorum else 1
        self.majority = size // 2 + 1
        #: nodes holding queue q (classic: its one node; quorum: leader first)
        self.replicas: list[tuple[int, ...]] = [
            tuple((q + i) % nodes for i in range(size)) for q in range(queues)
        ]
        #: queues with a replica on each node
        self.node_queues: list[list[int]] = [[] for _ in range(nodes)]
        for q, reps in enumerate(self.replicas):
            for node in reps:
                self.node_queues[node].append(q)
        self.leader = [q % nodes for q in range(queues)]
        self.electing = [False] * queues
        #: bumped when a queue's leader changes or it loses its majority: stale work is ignored
        self.term = [0] * queues
        #: publishes in the order the queue received them: enqueued and confirmed in that order
        self.order: list[deque[_Pub]] = [deque() for _ in range(queues)]
        #: quorum: publishes the client holds for the next leader
        self.held: list[list[_Pub]] = [[] for _ in range(queues)]
        self.publish_errors = 0
        self.confirmed = 0
        self.held_publishes = 0
        self.elections = 0

    # ------------------------------------------------------------ queues

    def queue_of(self, msg: Message) -> int:
        return msg.conv % self.queues

    def available(self, q: int) -> bool:
        """Whether queue ``q`` accepts publishes and delivers now."""
        if not self.quorum:
            return self.stations[self.leader[q]].up
        return (
            self.leader[q] >= 0
            and not self.electing[q]
            and self._live_replicas(q) >= (self.majority)
        )

    def _live_replicas(self, q: int) -> int:
        stations = self.stations
        return sum(1 for node in self.replicas[q] if stations[node].up)

    def depth(self, q: int) -> int:
        """Ready messages of queue ``q`` (not counting unacked deliveries)."""
        return len(self.ready[q])

    # ------------------------------------------------------------ publish

    def publish(self, msg: Message, ok: Done, error: Done) -> None:
        q = msg.conv % self.queues
        pub = _Pub(q, msg, ok, error)
        if self.available(q):
            self._start(pub)
        elif self.quorum and self.electing[q]:
            self.held_publishes += 1
            self.held[q].append(pub)  # the client resends it to the new leader
        else:
            self.publish_errors += 1
            error(msg)

    def _start(self, pub: _Pub) -> None:
        q = pub.q
        pub.term = self.term[q]
        pub.acks = 0
        pub.state = _PENDING
        self.order[q].append(pub)
        station = self.stations[self.leader[q]]
        if self.quorum:
            station.submit(self.append_s(), self._leader_appended, pub)
        else:
            station.submit(self.append_s(), self._committed, pub)

    def _leader_appended(self, pub: _Pub) -> None:
        q = pub.q
        if pub.term != self.term[q] or pub.state != _PENDING:
            return
        pub.acks = 1
        if pub.acks >= self.majority:
            self._committed(pub)
            return
        leader = self.leader[q]
        stations = self.stations
        for node in self.replicas[q]:
            if node != leader and stations[node].up:
                self.later(self.hop(), self._to_follower, (pub, node))

    def _to_follower(self, job: tuple[_Pub, int]) -> None:
        self.stations[job[1]].submit(self.append_s(), self._follower_appended, job[0])

    def _follower_appended(self, pub: _Pub) -> None:
        self.later(self.hop(), self._follower_acked, pub)

    def _follower_acked(self, pub: _Pub) -> None:
        q = pub.q
        if pub.term != self.term[q] or pub.state != _PENDING:
            return
        pub.acks += 1
        if pub.acks == self.majority:
            self._committed(pub)

    def _committed(self, pub: _Pub) -> None:
        """The message is durable by the queue's rules (on disk, on a majority)."""
        if pub.term != self.term[pub.q] or pub.state != _PENDING:
            return
        pub.state = _COMMITTED
        self._release(pub.q, True)

    def _release(self, q: int, confirm: bool) -> None:
        """Enqueue the committed head of the queue's log, in order; confirm them if
        ``confirm``, else (the channel closed first) the publisher gets an error."""
        order = self.order[q]
        ready = self.ready[q]
        released = False
        while order and order[0].state != _PENDING:
            pub = order.popleft()
            if pub.state != _COMMITTED:
                continue
            pub.state = _DONE
            ready.append((pub.msg, False))
            released = True
            if confirm:
                self.confirmed += 1
                pub.ok(pub.msg)
            else:
                self.publish_errors += 1
                pub.error(pub.msg)
        if released:
            if len(ready) > self.max_depth:
                self.max_depth = len(ready)
            self._dispatch(q)

    # ------------------------------------------------------------ faults

    def on_crash(self, node: int) -> None:
        for q in self.node_queues[node]:
            if self.quorum:
                self._quorum_crash(q, node)
            else:
                self._classic_crash(q)

    def _classic_crash(self, q: int) -> None:
        self.term[q] += 1
        self._fail_pending(q)
        # deliveries out unacked go back to the queue (they were never acked: on disk)
        entries: list[tuple[int, Message]] = []
        for c in range(len(self.consumers)):
            unacked = self.unacked[c]
            mine = [tag for tag, (dq, _) in unacked.items() if dq == q]
            for tag in mine:
                entries.append((tag, unacked.pop(tag)[1]))
            if mine:
                if self.alive[c] and self.inflight[c] == self.prefetch:
                    self.free += 1
                self.inflight[c] -= len(mine)
        if entries:
            entries.sort(key=lambda entry: entry[0])  # delivery order
            for _, msg in reversed(entries):
                self.ready[q].appendleft((msg, True))
            self.requeued += len(entries)
        self.event(f"queue {q} unavailable (node {self.leader[q]} down)")
        for c in range(len(self.consumers)):
            self._serve(c)

    def _fail_pending(self, q: int) -> None:
        """The publisher's channel to the queue is gone: unconfirmed publishes error.
        Those already durable (waiting behind an earlier one) stay in the queue."""
        failed = [pub for pub in self.order[q] if pub.state == _PENDING]
        failed.extend(self.held[q])
        self.held[q] = []
        for pub in failed:
            pub.state = _DONE
        self._release(q, False)
        self.order[q].clear()
        for pub in failed:
            self.publish_errors += 1
            pub.error(pub.msg)

    def _quorum_crash(self, q: int, node: int) -> None:
        live = self._live_replicas(q)
        if self.leader[q] == node:
            self.term[q] += 1
            self.leader[q] = -1
            if live >= self.majority:
                # the client holds its unconfirmed publishes for the new leader
                # (in Raft an entry is committed only after all earlier ones: hold them all)
                pubs = list(self.order[q])
                self.order[q].clear()
                self.held[q].extend(pubs)
                self.held_publishes += len(pubs)
                self._elect(q, f"leader on node {node} down")
            else:
                self.electing[q] = False
                self._fail_pending(q)
                self.event(f"queue {q} unavailable: no majority")
        elif live < self.majority and (self.leader[q] >= 0 or self.electing[q]):
            self.term[q] += 1
            self._fail_pending(q)
            if self.electing[q]:
                self.electing[q] = False
                self.leader[q] = -1
            self.event(f"queue {q} unavailable: no majority")

    def _elect(self, q: int, why: str) -> None:
        self.electing[q] = True
        self.elections += 1
        self.event(f"queue {q}: election ({why})")
        self.after(self.failover_s, self._elected, (q, self.term[q]))

    def _elected(self, ctx: tuple[int, int]) -> None:
        q, term = ctx
        if term != self.term[q] or not self.electing[q]:
            return
        self.electing[q] = False
        stations = self.stations
        live = [node for node in self.replicas[q] if stations[node].up]
        if len(live) < self.majority:
            self.leader[q] = -1
            self._fail_pending(q)
            self.event(f"queue {q} unavailable: no majority")
            return
        self.term[q] += 1
        self.leader[q] = live[0]
        self.event(f"queue {q}: leader on node {live[0]}")
        held = self.held[q]
        self.held[q] = []
        for pub in held:
            self._start(pub)
        self._dispatch(q)

    def on_recover(self, node: int) -> None:
        for q in self.node_queues[node]:
            if not self.quorum:
                self.event(f"queue {q} available (node {node} back)")
                self._dispatch(q)
            elif self.leader[q] < 0 and not self.electing[q]:
                if self._live_replicas(q) >= self.majority:
                    self._elect(q, f"majority back with node {node}")
            elif self.available(q):
                self._dispatch(q)

    # ------------------------------------------------------------ summary

    def counters(self) -> dict[str, float]:
        return {
            "rabbitmq_confirmed": float(self.confirmed),
            "rabbitmq_publish_errors": float(self.publish_errors),
            "rabbitmq_held_publishes": float(self.held_publishes),
            "rabbitmq_delivered": float(self.delivered),
            "rabbitmq_redelivered": float(self.redelivered),
            "rabbitmq_requeued": float(self.requeued),
            "rabbitmq_max_depth": float(self.max_depth),
            "rabbitmq_elections": float(self.elections),
            "rabbitmq_dead_consumers": float(self.dead_consumers),
        }

    def backlog(self) -> int:
        return sum(self.depth(q) for q in range(self.queues))


__all__ = ["RabbitMqBroker"]
