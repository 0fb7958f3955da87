"""The message service: idempotent accept, the durability point, per-conversation seq, acks.

A send accepted for the first time is written to the store (or published to the
broker, whose consumers, the service's instances, write it to the store); when
it is durable it takes its conversation's next ``seq``, the waiting attempts
are acked through their gateways and the delivery fans it out. A re-send of a
message already durable is acked again (idempotent accept). With ``ack_after:
gateway`` the sender was acked on receipt and the first acceptance sequences
the message in memory; with ``ack_after: broker`` the ack follows the publish.
Mirrors ``reference_impl``'s message service.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Sequence

from sim.components.durable import BrokerModel, StoreModel
from sim.components.resilience.defences import Defences
from sim.components.resilience.guard import GuardedCall
from sim.components.station import Station
from sim.core.kernel import Kernel, Timeouts
from sim.core.metrics import Message, Recorder
from sim.model.costs import Costs
from sim.model.protocol import ClientSide, SendCtx
from sim.model.server.links import Links
from sim.model.server.presence import Presence
from sim.scenario.architecture import AckAfter, Architecture

#: a consumer whose store write failed tries again after this long
CONSUMER_RETRY_S = 0.1
#: with ``ack_after: gateway``, a write the store refused is tried again after this long
MEMORY_REWRITE_S = 0.1


class MessageService:
    """Accept, write, sequence and ack the messages of one architecture."""

    clients: ClientSide  # the clients register with the server (Server.attach)

    def __init__(
        self,
        arch: Architecture,
        kernel: Kernel,
        recorder: Recorder,
        costs: Costs,
        links: Links,
        presence: Presence,
        store: StoreModel,
        broker: BrokerModel | None,
        consumers: list[Station],
        defences: Defences,
        log: dict[int, list[Message]],
        conversations: int,
        fan_out: Callable[[Message], None],
    ) -> None:
        self.kernel = kernel
        self.after = kernel.after
        self.rec = recorder
        self.costs = costs
        self._hop = links.hop
        self._outbound = links.outbound
        self._from_service_to_gateway = links.service_to_gateway
        self.presence_gw = presence.gw
        self.presence_epoch = presence.epoch
        self.store = store
        self.broker = broker
        #: the message service instances, which also consume from the broker
        self.consumers = consumers
        self._consumer_done: dict[int, list[Callable[[Message], None]]] = {}
        self.ack_at_gateway = arch.ack_after is AckAfter.GATEWAY
        self.ack_at_broker = arch.ack_after is AckAfter.BROKER
        self._store_timeouts = Timeouts(
            kernel, arch.store.request_timeout_s, self._write_timeout, self._write_pending
        )
        self._broker_timeouts = Timeouts(
            kernel, arch.broker.request_timeout_s, self._write_timeout, self._write_pending
        )
        self.store_guard = defences.store
        self.broker_guard = defences.broker
        self.write_buffer = defences.buffer
        if self.write_buffer is not None:
            self.write_buffer.write = self._start_write
        # per conversation: next seq and the log of accepted messages (index seq - 1)
        self.next_seq = array("i", [1]) * conversations
        self.log = log
        self.fan_out = fan_out

    def accept(self, ctx: SendCtx) -> None:
        """Idempotent accept: a message already durable (or published, when that is the
        ack point) is acked again; one being written gains a waiter; else the write starts."""
        msg = ctx[0]
        if msg.durable or (msg.published and self.ack_at_broker):
            self._ack(ctx)
            return
        if self.ack_at_gateway and not msg.seq and self.broker is None:
            # accepted in memory, the durability point of ack_after: gateway: the first
            # acceptance assigns the seq and fans out; the store write follows
            self._sequence(msg)
            self.fan_out(msg)
        waiter = (ctx[1], ctx[2], ctx[3])
        if msg.writing:
            assert msg.waiters is not None
            msg.waiters.append(waiter)
            return
        if msg.waiters is None:
            msg.waiters = [waiter]
        else:  # published, and waiting for the store (ack_after: store)
            msg.waiters.append(waiter)
            return
        msg.writing = True
        self._start_write(msg)

    def _start_write(self, msg: Message) -> None:
        """Publish or write a message being written (also a held one, again). A breaker
        or bulkhead that refuses the call fails it at once, in the service."""
        msg.write_no += 1
        if self.broker is not None:
            guard = self.broker_guard
            if guard is None:
                self._hop(self._publish, msg)
            else:
                call = guard.begin(self._published, self._write_failed, msg)
                if call is None:
                    self._give_up_write(msg)
                    return
                self._hop(self._publish_guarded, call)
            self._broker_timeouts.start((msg, msg.write_no))
        elif self.costs.store_write_instant:
            self._durable(msg)
        else:
            guard = self.store_guard
            if guard is None:
                self._hop(self._store_write, msg)
            else:
                call = guard.begin(self._written, self._write_failed, msg)
                if call is None:
                    self._give_up_write(msg)
                    return
                self._hop(self._store_write_guarded, call)
            self._store_timeouts.start((msg, msg.write_no))

    def _store_write(self, msg: Message) -> None:
        self.store.write(msg, self._written, self._write_failed)

    def _store_write_guarded(self, call: GuardedCall) -> None:
        self.store.write(call.arg, call.ok, call.error)

    def _written(self, msg: Message) -> None:
        self._hop(self._durable, msg)

    @staticmethod
    def _write_pending(ctx: tuple[Message, int]) -> bool:
        """Whether write ``ctx`` still waits (False for ever once False: a later write
        of the message has another number)."""
        return ctx[0].writing and ctx[0].write_no == ctx[1]

    def _write_timeout(self, ctx: tuple[Message, int]) -> None:
        if self._write_pending(ctx):
            self.rec.write_timeouts += 1
            self._write_failed_now(ctx[0])

    def _write_failed(self, msg: Message) -> None:
        """The store or broker refused the write: the waiting attempts get an error."""
        self._hop(self._write_failed_now, msg)

    def _write_failed_now(self, msg: Message) -> None:
        if not msg.writing:
            return
        self.rec.write_errors += 1
        self._give_up_write(msg)

    def _give_up_write(self, msg: Message) -> None:
        """The write failed (or was refused at once): held for later with ``queue_writes``
        (nobody is answered; retries join it), else the waiting attempts get an error."""
        buffer = self.write_buffer
        if buffer is not None and not msg.published and buffer.hold(msg):
            msg.write_no += 1  # the pending timeout of the failed write no longer applies
            return
        if self.ack_at_gateway and not msg.published:
            # the sender was acked already: the service keeps the message in memory and
            # writes it again until the store takes it (protocol: "accepted in memory")
            msg.write_no += 1
            self.rec.memory_rewrites += 1
            self.after(MEMORY_REWRITE_S, self._rewrite_from_memory, msg)
            return
        msg.writing = False
        waiters = msg.waiters
        msg.waiters = None
        self.rec.error(self.kernel.now)
        if waiters and not self.ack_at_gateway:
            for epoch, gw, attempt in waiters:
                self._from_service_to_gateway(self._reject_at_gateway, (msg, epoch, gw, attempt))

    def _rewrite_from_memory(self, msg: Message) -> None:
        if msg.writing and not msg.durable:
            self._start_write(msg)

    def _reject_at_gateway(self, ctx: SendCtx) -> None:
        user = ctx[0].sender
        if self.presence_gw[user] >= 0 and self.presence_epoch[user] == ctx[1]:
            self._outbound(ctx[2], self.clients.send_rejected, ctx)

    def _durable(self, msg: Message) -> None:
        """The store holds the message: it takes its conversation's next seq, the
        waiting senders are acked and the members get it (with ``ack_after: gateway``
        that happened at the first acceptance, in memory)."""
        if msg.durable:
            return  # a late duplicate write of a message already stored
        msg.durable = True
        msg.durable_s = self.kernel.now
        msg.writing = False
        if self.write_buffer is not None:
            self.write_buffer.written(msg)
        if msg.seq:
            return  # accepted in memory (ack_after: gateway): sequenced and fanned out then
        self._sequence(msg)
        waiters = msg.waiters
        msg.waiters = None
        if waiters and not self.ack_at_gateway:
            for epoch, gw, attempt in waiters:
                self._from_service_to_gateway(self._ack_at_gateway, (msg, epoch, gw, attempt))
        self.fan_out(msg)

    def _sequence(self, msg: Message) -> None:
        """The message takes its conversation's next seq and its place in the log."""
        conv = msg.conv
        msg.seq = self.next_seq[conv]
        self.next_seq[conv] = msg.seq + 1
        log = self.log.get(conv)
        if log is None:
            self.log[conv] = [msg]
        else:
            log.append(msg)
        self.rec.accepted(self.kernel.now)

    def _ack(self, ctx: SendCtx) -> None:
        if self.ack_at_gateway:
            return
        self._from_service_to_gateway(self._ack_at_gateway, ctx)

    def _ack_at_gateway(self, ctx: SendCtx) -> None:
        user = ctx[0].sender
        if self.presence_gw[user] >= 0 and self.presence_epoch[user] == ctx[1]:
            self._outbound(ctx[2], self.clients.send_acked, ctx)

    # ------------------------------------------------------------ broker

    def _publish(self, msg: Message) -> None:
        assert self.broker is not None
        self.broker.publish(msg, self._published, self._write_failed)

    def _publish_guarded(self, call: GuardedCall) -> None:
        assert self.broker is not None
        self.broker.publish(call.arg, call.ok, call.error)

    def _published(self, msg: Message) -> None:
        self._hop(self._published_now, msg)

    def _published_now(self, msg: Message) -> None:
        if msg.published:
            return
        msg.published = True
        if self.write_buffer is not None:
            self.write_buffer.written(msg)  # the broker answers again
        if not self.ack_at_broker:
            return  # the sender waits for the store write (or was acked at the gateway)
        msg.writing = False
        waiters = msg.waiters
        msg.waiters = None
        if waiters:
            for epoch, gw, attempt in waiters:
                self._from_service_to_gateway(self._ack_at_gateway, (msg, epoch, gw, attempt))

    def consume(self, consumer: int, msg: Message, done: Callable[[Message], None]) -> None:
        """The broker hands a record to consumer ``consumer`` (a message service instance)."""
        station = self.consumers[consumer]
        self._hop(self._consume_at, (station, msg, done))

    def _consume_at(self, job: tuple[Station, Message, Callable[[Message], None]]) -> None:
        station, msg, done = job
        station.submit(self.costs.service(), self._consumed, (msg, done))

    def _consumed(self, job: tuple[Message, Callable[[Message], None]]) -> None:
        msg, done = job
        if msg.durable:
            self.rec.broker_redeliveries += 1
            done(msg)
            return
        dones = self._consumer_done.get(msg.msg_id)
        if dones is not None:
            dones.append(done)  # a second copy while the first is being written
            self.rec.broker_redeliveries += 1
            return
        self._consumer_done[msg.msg_id] = [done]
        self._consumer_write(msg)

    def _consumer_write(self, msg: Message) -> None:
        if self.costs.store_write_instant:
            self._consumer_stored(msg)
        elif self.store_guard is None:
            self._hop(self._consumer_store_write, msg)
        else:
            call = self.store_guard.begin(
                self._consumer_stored_hop, self._consumer_store_failed, msg
            )
            if call is None:
                self.after(CONSUMER_RETRY_S, self._consumer_write, msg)  # refused at once
            else:
                self._hop(self._consumer_store_write_guarded, call)

    def _consumer_store_write(self, msg: Message) -> None:
        self.store.write(msg, self._consumer_stored_hop, self._consumer_store_failed)

    def _consumer_store_write_guarded(self, call: GuardedCall) -> None:
        self.store.write(call.arg, call.ok, call.error)

    def _consumer_stored_hop(self, msg: Message) -> None:
        self._hop(self._consumer_stored, msg)

    def _consumer_stored(self, msg: Message) -> None:
        self._durable(msg)
        for done in self._consumer_done.pop(msg.msg_id, ()):
            done(msg)

    def _consumer_store_failed(self, msg: Message) -> None:
        """The consumer keeps the record and tries the store again a little later."""
        self.rec.write_errors += 1
        self.after(CONSUMER_RETRY_S, self._consumer_write, msg)

    # ------------------------------------------------------------ losses

    def forget(self, msgs: Sequence[Message]) -> None:
        """The store lost messages it had acknowledged (a rollback): syncs skip them."""
        for msg in msgs:
            if msg.durable and not msg.gone:
                msg.gone = True
                self.rec.store_lost += 1


__all__ = ["CONSUMER_RETRY_S", "MEMORY_REWRITE_S", "MessageService"]
