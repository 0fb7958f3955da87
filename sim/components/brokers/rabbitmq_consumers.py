"""RabbitMQ's consumers: deliveries under a prefetch, acks, requeues, dead consumers.

Every live message service instance consumes every queue (competing
consumers, one channel each). A queue hands its ready messages round robin to
the consumers that have room under their prefetch (``prefetch`` unacked
deliveries per consumer, one limit per channel); ``done`` (basic.ack) reaches
the broker a hop later and frees the slot. Because several deliveries of one
queue are processed at once, they can complete out of queue order: per-queue
order holds only with prefetch 1 and one consumer.

A consumer instance that crashes is found dead by the AMQP heartbeat: no frame
from it (acks, or heartbeats every ``HEARTBEAT_TIMEOUT_S / 2`` when idle) for
:data:`HEARTBEAT_TIMEOUT_S`; then its unacked deliveries are requeued at the
head of their queues and go to the other consumers. A consumer instance that is
back before that (a restart) resets the old connection at once (TCP RST) and
opens a new one. The broker is not told of consumer crashes: a monitor looks at
the consumer stations every :data:`MONITOR_S`, a device of the simulation.

:class:`RabbitMqConsumers` is the base of
:class:`~sim.components.brokers.rabbitmq.RabbitMqBroker`, which adds the queues
themselves: publishes, confirms, replication and failover.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence

from sim.components.durable import BrokerModel
from sim.components.station import Station
from sim.core.kernel import Kernel
from sim.core.metrics import Message
from sim.scenario.broker import RabbitMqConfig

#: RabbitMQ's default heartbeat timeout (``heartbeat`` = 60 s): a peer silent this long is dead
HEARTBEAT_TIMEOUT_S = 60.0
#: an idle connection sends a heartbeat frame every half timeout
HEARTBEAT_INTERVAL_S = HEARTBEAT_TIMEOUT_S / 2
#: how often the model looks at the consumer stations for crashes and restarts
MONITOR_S = 1.0


class RabbitMqConsumers(BrokerModel):
    """The ready messages of ``partitions`` queues and the consumers' channels.

    The queues above provide :meth:`available`.
    """

    def __init__(
        self,
        spec: RabbitMqConfig,
        kernel: Kernel,
        hop: Callable[[], float],
        measure_from_s: float,
        consumers: Sequence[Station],
    ) -> None:
        super().__init__(kernel, "broker", spec.nodes, spec.workers, measure_from_s, hop, consumers)
        self.prefetch = spec.prefetch
        queues = spec.partitions
        self.queues = queues
        #: each queue's messages waiting for a consumer (and whether one was delivered before)
        self.ready: list[deque[tuple[Message, bool]]] = [deque() for _ in range(queues)]
        # consumers: one channel per message service instance
        n = len(consumers)
        self.alive = [False] * n
        self.gen = [0] * n
        self.conn_epoch = [0] * n
        self.inflight = [0] * n
        self.unacked: list[dict[int, tuple[int, Message]]] = [{} for _ in range(n)]
        self.last_frame_s = [0.0] * n
        self.last_up_s = [0.0] * n
        self.suspect = [False] * n
        #: live channels with room under their prefetch
        self.free = 0
        self.rr = [0] * queues
        #: queues with ready messages that no consumer had room for, served as slots free up
        self.starved: deque[int] = deque()
        self.in_starved = bytearray(queues)
        self._tag = 0
        self.requeued = 0
        self.redelivered = 0
        self.delivered = 0
        self.max_depth = 0
        self.dead_consumers = 0
        for c, station in enumerate(consumers):
            if station.up:
                self._connect(c)
        self.after(MONITOR_S, self._monitor, None)

    def available(self, q: int) -> bool:
        """Whether queue ``q`` accepts publishes and delivers now."""
        raise NotImplementedError

    # ------------------------------------------------------------ deliveries

    def _next_consumer(self, q: int) -> int:
        if self.free == 0:
            return -1
        alive = self.alive
        inflight = self.inflight
        prefetch = self.prefetch
        n = len(alive)
        i = self.rr[q]
        for _ in range(n):
            c = i
            i += 1
            if i == n:
                i = 0
            if alive[c] and inflight[c] < prefetch:
                self.rr[q] = i
                return c
        return -1

    def _dispatch(self, q: int) -> None:
        """Hand queue ``q``'s ready messages to consumers with room."""
        ready = self.ready[q]
        if not ready or not self.available(q):
            return
        while ready:
            c = self._next_consumer(q)
            if c < 0:
                if not self.in_starved[q]:
                    self.in_starved[q] = 1
                    self.starved.append(q)
                return
            msg, redelivered = ready.popleft()
            self._deliver(c, q, msg, redelivered)

    def _serve(self, c: int) -> None:
        """Consumer ``c`` has room: give it messages of queues that were waiting for room."""
        starved = self.starved
        ready_of = self.ready
        while starved and self.alive[c] and self.inflight[c] < self.prefetch:
            q = starved[0]
            ready = ready_of[q]
            if not ready or not self.available(q):
                starved.popleft()
                self.in_starved[q] = 0
                continue
            msg, redelivered = ready.popleft()
            self._deliver(c, q, msg, redelivered)
            starved.rotate(-1)

    def _deliver(self, c: int, q: int, msg: Message, redelivered: bool) -> None:
        self._tag += 1
        tag = self._tag
        self.unacked[c][tag] = (q, msg)
        self.inflight[c] += 1
        if self.inflight[c] == self.prefetch:
            self.free -= 1
        self.delivered += 1
        if redelivered:
            self.redelivered += 1
        gen = self.gen[c]
        self.consume(c, msg, lambda _m: self._ack_sent(c, gen, tag))

    def _ack_sent(self, c: int, gen: int, tag: int) -> None:
        self.later(self.hop(), self._acked, (c, gen, tag))

    def _acked(self, ack: tuple[int, int, int]) -> None:
        c, gen, tag = ack
        if gen != self.gen[c] or not self.alive[c]:
            return  # an ack on a connection that is gone: the delivery was requeued
        if self.unacked[c].pop(tag, None) is None:
            return  # requeued meanwhile (its queue's node crashed)
        self.last_frame_s[c] = self.now
        self.inflight[c] -= 1
        if self.inflight[c] == self.prefetch - 1:
            self.free += 1
        self._serve(c)

    def _requeue(self, entries: list[tuple[int, Message]]) -> None:
        """Put unacked deliveries back at the head of their queues, in delivery order."""
        queues = set()
        for q, msg in reversed(entries):
            self.ready[q].appendleft((msg, True))
            queues.add(q)
        self.requeued += len(entries)
        for q in sorted(queues):
            if len(self.ready[q]) > self.max_depth:
                self.max_depth = len(self.ready[q])
            self._dispatch(q)

    # ------------------------------------------------------------ consumer connections

    def _connect(self, c: int) -> None:
        self.gen[c] += 1
        self.alive[c] = True
        self.conn_epoch[c] = self.consumers[c].epoch
        self.inflight[c] = 0
        self.unacked[c] = {}
        self.suspect[c] = False
        self.last_frame_s[c] = self.now
        self.last_up_s[c] = self.now
        self.free += 1
        self._serve(c)

    def _disconnect(self, c: int, why: str) -> None:
        if not self.alive[c]:
            return
        entries = list(self.unacked[c].values())
        if self.inflight[c] < self.prefetch:
            self.free -= 1
        self.alive[c] = False
        self.gen[c] += 1
        self.inflight[c] = 0
        self.unacked[c] = {}
        self.suspect[c] = False
        self.dead_consumers += 1
        self.event(f"consumer {c} connection closed ({why}): {len(entries)} requeued")
        self._requeue(entries)

    def _monitor(self, _: object) -> None:
        now = self.now
        for c, station in enumerate(self.consumers):
            if self.alive[c]:
                if station.up and station.epoch == self.conn_epoch[c]:
                    self.last_up_s[c] = now
                elif station.up:
                    # restarted: the old connection is reset as soon as the broker writes to it
                    self._disconnect(c, "reset")
                    self._connect(c)
                elif not self.suspect[c]:
                    self.suspect[c] = True
                    heartbeat = (self.last_up_s[c] // HEARTBEAT_INTERVAL_S) * HEARTBEAT_INTERVAL_S
                    last = max(self.last_frame_s[c], heartbeat)
                    self.after(
                        max(0.0, last + HEARTBEAT_TIMEOUT_S - now),
                        self._heartbeat_missed,
                        (c, self.gen[c]),
                    )
            elif station.up:
                self._connect(c)
        self.after(MONITOR_S, self._monitor, None)

    def _heartbeat_missed(self, ctx: tuple[int, int]) -> None:
        c, gen = ctx
        if gen == self.gen[c] and self.alive[c]:
            self._disconnect(c, "heartbeat timeout")

    def unacked_count(self, c: int) -> int:
        """Deliveries to consumer ``c`` not yet acked, as the broker sees them."""
        return self.inflight[c]


__all__ = ["HEARTBEAT_INTERVAL_S", "HEARTBEAT_TIMEOUT_S", "MONITOR_S", "RabbitMqConsumers"]
