"""An SQS queue's stored messages and how consumers get them: long polls, visibility, retention.

* Consumers: each message service instance runs :data:`POLLERS` pollers. A poller
  calls ReceiveMessage (``WaitTimeSeconds`` 20, up to 10 messages); the call
  returns as soon as a message is available, or empty after 20 s, and the poller
  calls again. It holds back while its instance has :data:`MAX_UNDELETED`
  received messages not yet processed. A received message is invisible for
  ``visibility_timeout_s``; ``done`` sends DeleteMessage (``api_s``). A message
  not deleted in time (its consumer died, the delete failed) becomes visible
  again and is received again: a duplicate.
* Retention: a message older than ``retention_s`` is deleted unread
  (``sqs_expired``): if it was published and acknowledged, it is lost.

Standard queues (``kind: sqs``): the queue is spread over :data:`SHARDS`
hidden servers; each message lands on one at random and a receive takes each
message from a random non-empty server, so a busy conversation's messages come
out of order. Each message received comes with an extra copy, with probability
``duplicate_probability``, that a later receive returns (``sqs_duplicates``).

FIFO queues (``kind: sqs_fifo``): the message group is the conversation. Order
is strict within a group, and while one message of a group is in flight
(received, not deleted) no other message of that group is delivered.

:class:`SqsDelivery` is the base of :class:`~sim.components.brokers.sqs.SqsQueue`,
which adds the sending side (SendMessage, FIFO deduplication, throttling and
batching) and the endpoint's faults.

Random numbers: ``broker.api`` (call latencies, sends' too), ``broker.shard``
(standard: server choices), ``broker.duplicate`` (standard: extra copies).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence

from sim.components.durable import BrokerModel, Done
from sim.components.station import Station
from sim.core.distributions import BlockDraws
from sim.core.kernel import Kernel
from sim.core.metrics import Message
from sim.scenario.broker import SqsConfig, SqsFifoConfig

#: ReceiveMessage WaitTimeSeconds: the longest long poll SQS allows
LONG_POLL_S = 20.0
#: ReceiveMessage MaxNumberOfMessages: the most a receive returns
MAX_MESSAGES = 10
#: hidden servers a standard queue is spread over (a modelling device)
SHARDS = 8
#: concurrent long polls per consumer instance (assumption)
POLLERS = 2
#: received, unprocessed messages a consumer instance holds before it stops polling (assumption)
MAX_UNDELETED = 100
#: a poller whose call failed (endpoint down) calls again after this long
RETRY_S = 1.0
#: how often the model looks for consumer instances that (re)started and should poll
MONITOR_S = 1.0

#: states of a stored copy (``PENDING``: FIFO, placed in its group, its SendMessage not done)
VISIBLE, INFLIGHT, DELETED, EXPIRED, PENDING = range(5)


class StoredCopy:
    """One stored copy of a message."""

    __slots__ = ("expired", "msg", "receipt", "sent_s", "state")

    def __init__(self, msg: Message, sent_s: float) -> None:
        self.msg = msg
        self.sent_s = sent_s
        self.state = VISIBLE
        self.receipt = 0
        #: retention passed while in flight: dropped instead of becoming visible again
        self.expired = False


class _Poll:
    """A long poll held at the endpoint."""

    __slots__ = ("active", "c", "epoch")

    def __init__(self, c: int, epoch: int) -> None:
        self.c = c
        self.epoch = epoch
        self.active = True


class SqsDelivery(BrokerModel):
    """The messages an SQS queue holds, and their receipt by long-polling consumers."""

    managed = True

    def __init__(
        self,
        spec: SqsConfig | SqsFifoConfig,
        kernel: Kernel,
        hop: Callable[[], float],
        measure_from_s: float,
        consumers: Sequence[Station],
    ) -> None:
        super().__init__(kernel, "broker", 1, spec.workers, measure_from_s, hop, consumers)
        self.fifo = isinstance(spec, SqsFifoConfig)
        streams = kernel.streams
        self.api_s = spec.api_s.sampler(streams.generator("broker.api"))
        self.visibility_s = spec.visibility_timeout_s
        self.retention_s = spec.retention_s
        self.endpoint = self.stations[0]
        # standard: shards of visible copies
        self.shards: list[deque[StoredCopy]] = [deque() for _ in range(SHARDS)]
        self.visible = 0
        self._shard_u = BlockDraws(streams.generator("broker.shard").random)
        self._dup_u = BlockDraws(streams.generator("broker.duplicate").random)
        self.duplicate_p = spec.duplicate_probability if isinstance(spec, SqsConfig) else 0.0
        # fifo: per group the visible messages in order, groups in flight, groups ready
        self.groups: dict[int, deque[StoredCopy]] = {}
        self.busy_groups: set[int] = set()
        self.ready_groups: deque[int] = deque()
        self.queued_groups: set[int] = set()
        # visibility timeouts and retention: ordered deques, one timer each
        self.invisible: deque[tuple[float, StoredCopy, int]] = deque()
        self._vis_armed = False
        self.by_age: deque[StoredCopy] = deque()
        self._age_armed = False
        # consumers
        n = len(consumers)
        self.polling_epoch = [-1] * n
        self.undeleted = [0] * n
        self.parked = [0] * n
        self.waiting: deque[_Poll] = deque()
        self.receives = 0
        self.empty_receives = 0
        self.receive_errors = 0
        self.received = 0
        self.duplicates = 0
        self.visibility_returns = 0
        self.deletes = 0
        self.delete_errors = 0
        self.expired = 0
        self.max_depth = 0
        self._monitor(None)

    # ------------------------------------------------------------ the stored messages

    def _store(self, rec: StoredCopy) -> None:
        """A new message (not a copy): it starts its retention period."""
        by_age = self.by_age
        while by_age and by_age[0].state == DELETED:
            by_age.popleft()
        by_age.append(rec)
        if not self._age_armed:
            self._age_armed = True
            self.after(max(0.0, by_age[0].sent_s + self.retention_s - self.now), self._age, None)
        self._make_visible(rec, False)

    def _make_visible(self, rec: StoredCopy, front: bool) -> None:
        """``rec`` can be received: new (FIFO: already in its group), or back at the
        head of the queue (``front``) after its visibility timeout."""
        rec.state = VISIBLE
        if self.fifo:
            group = rec.msg.conv
            if front:
                dq = self.groups.get(group)
                if dq is None:
                    dq = self.groups[group] = deque()
                dq.appendleft(rec)
            self._group_ready(group, front)
        else:
            shard = self.shards[int(self._shard_u() * SHARDS)]
            if front:
                shard.appendleft(rec)
            else:
                shard.append(rec)
        self.visible += 1
        if self.visible > self.max_depth:
            self.max_depth = self.visible
        if self.waiting:
            self._wake()

    def _group_ready(self, group: int, front: bool) -> None:
        """FIFO: queue ``group`` for receives if none of it is in flight and its head is
        visible (a head whose SendMessage is still in progress holds the group back)."""
        if group in self.busy_groups or group in self.queued_groups:
            return
        dq = self.groups.get(group)
        if dq is None:
            return
        while dq and (dq[0].state == DELETED or dq[0].state == EXPIRED):
            dq.popleft()
        if not dq:
            del self.groups[group]
            return
        if dq[0].state != VISIBLE:
            return
        self.queued_groups.add(group)
        if front:
            self.ready_groups.appendleft(group)
        else:
            self.ready_groups.append(group)

    def _expire(self, rec: StoredCopy) -> None:
        """Retention passed for a visible message: deleted unread."""
        rec.state = EXPIRED
        self.visible -= 1
        self.expired += 1

    def _age(self, _: object) -> None:
        now = self.now
        by_age = self.by_age
        limit = self.retention_s
        while by_age:
            rec = by_age[0]
            if rec.state == DELETED or rec.state == EXPIRED:
                by_age.popleft()
                continue
            if rec.sent_s + limit > now + 1e-9:
                break
            by_age.popleft()
            if rec.state == VISIBLE:
                self._expire(rec)
            else:
                rec.expired = True
        if by_age:
            self.after(max(0.0, by_age[0].sent_s + limit - now), self._age, None)
        else:
            self._age_armed = False

    def _take(self, limit: int) -> list[StoredCopy]:
        """Up to ``limit`` visible messages for one receive."""
        batch: list[StoredCopy] = []
        too_old = self.now - self.retention_s
        if self.fifo:
            groups = self.groups
            ready = self.ready_groups
            while len(batch) < limit and ready:
                group = ready.popleft()
                self.queued_groups.discard(group)
                dq = groups.get(group)
                while dq:
                    rec = dq[0]
                    if rec.state == PENDING:
                        break  # ready again once that message is stored
                    dq.popleft()
                    if rec.state != VISIBLE:
                        continue
                    if rec.sent_s <= too_old:
                        self._expire(rec)
                        continue
                    batch.append(rec)
                    self.busy_groups.add(group)
                    break
                if dq is not None and not dq and group not in self.busy_groups:
                    del groups[group]
            return batch
        shards = self.shards
        while len(batch) < limit and self.visible > 0:
            start = int(self._shard_u() * SHARDS)
            for i in range(SHARDS):
                shard = shards[(start + i) % SHARDS]
                while shard and shard[0].state != VISIBLE:
                    shard.popleft()
                if shard:
                    rec = shard.popleft()
                    if rec.sent_s <= too_old:
                        self._expire(rec)
                    else:
                        batch.append(rec)
                    break
            else:
                break  # nothing visible after all (cannot happen while the count is right)
        return batch

    def _has_visible(self) -> bool:
        return bool(self.ready_groups) if self.fifo else self.visible > 0

    # ------------------------------------------------------------ consumers

    def _monitor(self, _: object) -> None:
        """Consumer instances that are up and not polling yet (a start or a restart) begin."""
        for c, station in enumerate(self.consumers):
            if station.up and self.polling_epoch[c] != station.epoch:
                epoch = station.epoch
                self.polling_epoch[c] = epoch
                self.undeleted[c] = 0
                self.parked[c] = 0
                for _ in range(POLLERS):
                    self._poll(c, epoch)
        self.after(MONITOR_S, self._monitor, None)

    def _poll(self, c: int, epoch: int) -> None:
        """A poller of consumer ``c`` calls ReceiveMessage, if its process still runs."""
        station = self.consumers[c]
        if not station.up or station.epoch != epoch:
            return  # the process is gone: so are its pollers
        if self.undeleted[c] + MAX_MESSAGES > MAX_UNDELETED:
            self.parked[c] += 1
            return
        self.receives += 1
        self.after(self.api_s(), self._receive, (c, epoch))

    def _poll_again(self, ctx: tuple[int, int]) -> None:
        self._poll(ctx[0], ctx[1])

    def _receive(self, ctx: tuple[int, int]) -> None:
        c, epoch = ctx
        if not self.endpoint.up:
            self.receive_errors += 1
            self.after(RETRY_S, self._poll_again, ctx)
            return
        batch = self._take(MAX_MESSAGES)
        if batch:
            self._hand(c, epoch, batch)
            self._poll(c, epoch)
            return
        poll = _Poll(c, epoch)
        waiting = self.waiting
        while waiting and not waiting[0].active:
            waiting.popleft()
        waiting.append(poll)
        self.after(LONG_POLL_S, self._poll_timeout, poll)

    def _poll_timeout(self, poll: _Poll) -> None:
        if poll.active:
            poll.active = False
            self.empty_receives += 1
            self._poll(poll.c, poll.epoch)

    def _wake(self) -> None:
        """Messages became visible: held long polls return with them."""
        waiting = self.waiting
        while waiting and self._has_visible():
            poll = waiting.popleft()
            if not poll.active:
                continue
            batch = self._take(MAX_MESSAGES)
            if not batch:
                waiting.appendleft(poll)  # only expired messages were left
                return
            poll.active = False
            self._hand(poll.c, poll.epoch, batch)
            self._poll(poll.c, poll.epoch)

    def _hand(self, c: int, epoch: int, batch: list[StoredCopy]) -> None:
        """The receive returns ``batch`` to consumer ``c``: each message turns invisible."""
        deadline = self.now + self.visibility_s
        invisible = self.invisible
        dup_p = self.duplicate_p
        self.received += len(batch)
        self.undeleted[c] += len(batch)
        for rec in batch:
            rec.state = INFLIGHT
            rec.receipt += 1
            receipt = rec.receipt
            self.visible -= 1
            invisible.append((deadline, rec, receipt))
            if dup_p > 0.0 and self._dup_u() < dup_p:
                self.duplicates += 1
                copy = StoredCopy(rec.msg, rec.sent_s)
                self.after(0.0, self._copy_visible, copy)
            self.consume(c, rec.msg, self._done_for(c, epoch, rec, receipt))
        if not self._vis_armed:
            self._vis_armed = True
            self.after(invisible[0][0] - self.now, self._visibility, None)

    def _done_for(self, c: int, epoch: int, rec: StoredCopy, receipt: int) -> Done:
        def done(_msg: Message) -> None:
            self._processed(c, epoch, rec, receipt)

        return done

    def _copy_visible(self, rec: StoredCopy) -> None:
        self._make_visible(rec, False)

    def _processed(self, c: int, epoch: int, rec: StoredCopy, receipt: int) -> None:
        """The consumer is done with a message: it frees room and sends DeleteMessage."""
        if self.polling_epoch[c] == epoch:
            self.undeleted[c] -= 1
            if self.parked[c] and self.undeleted[c] + MAX_MESSAGES <= MAX_UNDELETED:
                self.parked[c] -= 1
                self._poll(c, epoch)
        if not self.endpoint.up:
            self.delete_errors += 1
            return  # the message becomes visible again after its timeout
        self.after(self.api_s(), self._deleted, (rec, receipt))

    def _deleted(self, ctx: tuple[StoredCopy, int]) -> None:
        rec, receipt = ctx
        if not self.endpoint.up:
            self.delete_errors += 1
            return
        if rec.state != INFLIGHT or rec.receipt != receipt:
            return  # a stale receipt handle: the message was received again meanwhile
        rec.state = DELETED
        self.deletes += 1
        if self.fifo:
            self._release(rec.msg.conv)

    def _release(self, group: int) -> None:
        self.busy_groups.discard(group)
        self._group_ready(group, False)
        if self.waiting:
            self._wake()

    def _visibility(self, _: object) -> None:
        now = self.now + 1e-9
        invisible = self.invisible
        while invisible:
            deadline, rec, receipt = invisible[0]
            live = rec.state == INFLIGHT and rec.receipt == receipt
            if live and deadline > now:
                break
            invisible.popleft()
            if not live:
                continue
            # not deleted in time: visible again (or gone, if retention passed meanwhile)
            if rec.expired or rec.sent_s + self.retention_s <= now:
                rec.state = EXPIRED
                self.expired += 1
                if self.fifo:
                    self._release(rec.msg.conv)
                continue
            self.visibility_returns += 1
            if self.fifo:
                self.busy_groups.discard(rec.msg.conv)
            self._make_visible(rec, True)
        if invisible:
            self.after(max(0.0, invisible[0][0] - self.now), self._visibility, None)
        else:
            self._vis_armed = False

    def depth(self) -> int:
        """Visible messages."""
        return self.visible


__all__ = [
    "DELETED",
    "LONG_POLL_S",
    "MAX_MESSAGES",
    "PENDING",
    "RETRY_S",
    "VISIBLE",
    "SqsDelivery",
    "StoredCopy",
]
