"""Amazon SQS as the broker: a managed queue, standard or FIFO, read by long polling.

SQS is one regional endpoint: ``crash(0)`` means the endpoint is unavailable
(every API call errors) until ``recover(0)``. Every API call takes ``api_s``
(request and response together); the service's own hops to and from the
endpoint are the message service's business. What the queue holds and how
consumers receive and delete it (long polls, visibility timeouts, retention,
standard queues' shards and duplicates, FIFO groups) is in
:mod:`~sim.components.brokers.sqs_delivery`, the base class of :class:`SqsQueue`;
this module sends.

* SendMessage: after ``api_s`` the message is stored and ``ok`` is called.
  Standard queues (``kind: sqs``) are at-least-once, best-effort order.
* FIFO queues (``kind: sqs_fifo``): a resend of a message within
  :data:`DEDUP_WINDOW_S` of its first successful send is accepted (``ok``) and not
  stored again. SendMessage calls are limited to ``fifo_ops_per_s`` per second (a
  token bucket holding 1 s of calls); a call over the limit fails with
  ThrottlingException (``error`` for all its messages, ``sqs_throttled`` counts
  them). With ``fifo_batch`` > 1 the publisher batches
  (SendMessageBatch): messages waiting together share a call of up to
  ``fifo_batch`` messages; a call leaves when full, or ``1 / fifo_ops_per_s``
  after its first message (so that a publisher at the call limit still batches).

Not modelled: throttling of standard queues (nearly unlimited) and of FIFO
receive/delete calls (each action has its own 300 TPS), FIFO high-throughput
mode, several messages of one group in one receive (the real service may return
them, to be processed in order: here the group waits for the delete), the
in-flight limits (120,000), message size limits and costs per request, short
polling (sampling a subset of servers), dead-letter queues, delay queues.

Random numbers: ``broker.api`` (call latencies, shared with the receiving side).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence

from sim.components.brokers.sqs_delivery import (
    DELETED,
    PENDING,
    RETRY_S,
    SqsDelivery,
    StoredCopy,
)
from sim.components.durable import Done
from sim.components.station import Station
from sim.core.kernel import Kernel
from sim.core.metrics import Message
from sim.scenario.broker import SqsConfig, SqsFifoConfig

#: FIFO deduplication interval
DEDUP_WINDOW_S = 300.0

#: one message of a SendMessage(Batch) call
_Entry = tuple[Message, Done, Done]


class SqsQueue(SqsDelivery):
    """One SQS queue, standard (``sqs``) or FIFO (``sqs_fifo``)."""

    def __init__(
        self,
        spec: SqsConfig | SqsFifoConfig,
        kernel: Kernel,
        hop: Callable[[], float],
        measure_from_s: float,
        consumers: Sequence[Station],
    ) -> None:
        if not isinstance(spec, SqsConfig | SqsFifoConfig):  # a caller that ignored the types
            raise ValueError(f"SqsQueue needs broker.kind sqs or sqs_fifo, got {spec.kind.value}")
        super().__init__(spec, kernel, hop, measure_from_s, consumers)
        self.spec = spec
        self.dedup: dict[int, float] = {}
        self.dedup_order: deque[tuple[float, int]] = deque()
        # fifo: SendMessage token bucket and the publisher's batch (a standard queue has
        # neither, and its sends never look at them)
        if isinstance(spec, SqsFifoConfig):
            ops_per_s, batch = spec.fifo_ops_per_s, spec.fifo_batch
        else:
            ops_per_s, batch = math.inf, 1
        self.rate = ops_per_s
        self.burst = ops_per_s  # one second of calls
        self.tokens = self.burst
        self.tokens_s = 0.0
        self.batch = batch
        self.linger_s = 1.0 / ops_per_s
        self.outbox: list[_Entry] = []
        self._outbox_no = 0
        self.sent = 0
        self.send_errors = 0
        self.throttled = 0
        self.throttled_calls = 0
        self.send_calls = 0
        self.deduplicated = 0

    # ------------------------------------------------------------ send

    def publish(self, msg: Message, ok: Done, error: Done) -> None:
        if not self.endpoint.up:
            self.send_errors += 1
            error(msg)
            return
        if not self.fifo:
            self.send_calls += 1
            self.after(self.api_s(), self._sent, (msg, ok, error))
        elif self.batch == 1:
            self._call([(msg, ok, error)])
        else:
            outbox = self.outbox
            outbox.append((msg, ok, error))
            if len(outbox) >= self.batch:
                self._flush(self._outbox_no)
            elif len(outbox) == 1:
                self.after(self.linger_s, self._flush, self._outbox_no)

    def _sent(self, entry: _Entry) -> None:
        msg, ok, error = entry
        if not self.endpoint.up:
            self.send_errors += 1
            error(msg)
            return
        self.sent += 1
        self._store(StoredCopy(msg, self.now))
        ok(msg)

    def _flush(self, outbox_no: int) -> None:
        if outbox_no != self._outbox_no or not self.outbox:
            return  # that batch already left, full
        self._outbox_no += 1
        entries = self.outbox
        self.outbox = []
        if not self.endpoint.up:
            for msg, _, error in entries:
                self.send_errors += 1
                error(msg)
            return
        self._call(entries)

    def _take_token(self) -> bool:
        now = self.now
        tokens = self.tokens + (now - self.tokens_s) * self.rate
        self.tokens = tokens if tokens < self.burst else self.burst
        self.tokens_s = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True

    def _call(self, entries: list[_Entry]) -> None:
        """One FIFO SendMessage(Batch) call."""
        self.send_calls += 1
        if not self._take_token():
            self.throttled_calls += 1
            self.throttled += len(entries)
            self.after(self.api_s(), self._throttled, entries)
            return
        self.after(self.api_s(), self._fifo_sent, (entries, self._fifo_arrive(entries)))

    def _throttled(self, entries: list[_Entry]) -> None:
        for msg, _, error in entries:
            error(msg)

    def _fifo_arrive(self, entries: list[_Entry]) -> list[StoredCopy | None]:
        """A FIFO call reaches the queue: each new message takes its place in its group
        now (the group's order is arrival order), a resend within the deduplication
        interval takes none (``None``)."""
        now = self.now
        dedup = self.dedup
        order = self.dedup_order
        horizon = now - DEDUP_WINDOW_S
        while order and order[0][0] <= horizon:
            t, old = order.popleft()
            if dedup.get(old) == t:
                del dedup[old]
        recs: list[StoredCopy | None] = []
        groups = self.groups
        for msg, _, _ in entries:
            first = dedup.get(msg.msg_id)
            if first is not None and first > horizon:
                recs.append(None)
                continue
            dedup[msg.msg_id] = now
            order.append((now, msg.msg_id))
            rec = StoredCopy(msg, now)
            rec.state = PENDING
            dq = groups.get(msg.conv)
            if dq is None:
                dq = groups[msg.conv] = deque()
            dq.append(rec)
            recs.append(rec)
        return recs

    def _fifo_sent(self, call: tuple[list[_Entry], list[StoredCopy | None]]) -> None:
        entries, recs = call
        if not self.endpoint.up:
            for (msg, _, error), rec in zip(entries, recs, strict=True):
                if rec is not None:
                    rec.state = DELETED  # never stored: it leaves its group
                    if self.dedup.get(msg.msg_id) == rec.sent_s:
                        del self.dedup[msg.msg_id]
                    self._group_ready(msg.conv, False)
                self.send_errors += 1
                error(msg)
            if self.waiting:
                self._wake()
            return
        for (msg, ok, _), rec in zip(entries, recs, strict=True):
            if rec is None:
                self.deduplicated += 1
            else:
                self.sent += 1
                self._store(rec)
            ok(msg)

    # ------------------------------------------------------------ faults and summary

    def crash(self, node: int) -> None:
        """The endpoint (``node`` 0, the only one) becomes unavailable."""
        if node != 0:
            raise ValueError(f"sqs is one endpoint: only broker.0 can fail, not broker.{node}")
        super().crash(node)

    def recover(self, node: int) -> None:
        if node != 0:
            raise ValueError(f"sqs is one endpoint: only broker.0 can fail, not broker.{node}")
        super().recover(node)

    def on_crash(self, node: int) -> None:
        self.event("sqs endpoint unavailable")
        # held long polls fail; their pollers call again later
        waiting = self.waiting
        self.waiting = deque()
        for poll in waiting:
            if poll.active:
                poll.active = False
                self.receive_errors += 1
                self.after(RETRY_S, self._poll_again, (poll.c, poll.epoch))

    def on_recover(self, node: int) -> None:
        self.event("sqs endpoint available")

    def counters(self) -> dict[str, float]:
        return {
            "sqs_sent": float(self.sent),
            "sqs_send_calls": float(self.send_calls),
            "sqs_send_errors": float(self.send_errors),
            "sqs_throttled": float(self.throttled),
            "sqs_deduplicated": float(self.deduplicated),
            "sqs_receives": float(self.receives),
            "sqs_empty_receives": float(self.empty_receives),
            "sqs_receive_errors": float(self.receive_errors),
            "sqs_received": float(self.received),
            "sqs_duplicates": float(self.duplicates),
            "sqs_visibility_returns": float(self.visibility_returns),
            "sqs_deletes": float(self.deletes),
            "sqs_delete_errors": float(self.delete_errors),
            "sqs_expired": float(self.expired),
            "sqs_max_depth": float(self.max_depth),
        }

    def backlog(self) -> int:
        return self.depth()


__all__ = ["DEDUP_WINDOW_S", "SqsQueue"]
