"""What a client receives: dedup, display in seq order, gaps, syncs and polls.

A client drops a delivery it has displayed already (dedup by seq, which the
service assigns once per msg_id), displays in seq order, holds a message that
arrives ahead of a gap and asks for a sync to fill the gap; on reconnect it
syncs every conversation from its cursor. On the polling transports it polls:
every ``poll_interval_s`` (short polling) or again as soon as a poll returns
(long polling). Mirrors ``reference_impl``'s client.
"""

from __future__ import annotations

from sim.core.kernel import Kernel, Timeouts
from sim.core.metrics import PATH_ONLINE, Message, Recorder
from sim.model.client.state import CONNECTED, PATH_GONE, ClientLink, ClientState
from sim.model.costs import Costs
from sim.model.protocol import DeliverCtx, PollReply, ServerSide, SyncCtx, SyncReply
from sim.model.transport import ClientTransport
from sim.scenario.resilience import Resilience
from sim.workload.population import Conversations


class Timeline:
    """Every client's view of its conversations."""

    def __init__(
        self,
        kernel: Kernel,
        recorder: Recorder,
        convs: Conversations,
        costs: Costs,
        server: ServerSide,
        transport: ClientTransport,
        resilience: Resilience,
        state: ClientState,
        link: ClientLink,
        horizon_s: float,
    ) -> None:
        self.kernel = kernel
        self.after = kernel.after
        self.rec = recorder
        self.convs = convs
        self.costs = costs
        self.server = server
        self.state = state.state
        self.epoch = state.epoch
        self.gateway = state.gateway
        self.cursor = state.cursor
        self.held = state.held
        self.syncing = state.syncing
        self.sync_sent_s = state.sync_sent_s
        self._uplink = link.uplink
        self._frame_up = link.frame_up
        self.control_up = link.control_up
        self.control_down = link.control_down
        self.poll_interval_s = transport.poll_interval_s
        self.polls_on_reply = transport.polls_on_reply
        self.polls_on_timer = transport.polls_on_timer
        #: a failed sync is asked again after the send timeout
        self.timeout_s = resilience.timeout_s
        self.sync_timeout_s = resilience.sync_timeout_s
        #: timers that would fire after this never matter and are not scheduled
        self.horizon_s = horizon_s
        self._sync_timeouts = Timeouts(
            kernel, self.sync_timeout_s, self._sync_timed_out, self._awaiting_sync
        )

    def deliver(self, ctx: DeliverCtx) -> None:
        """Pushed messages reach the client (WebSocket)."""
        user, epoch, batch, path, ref_s = ctx
        if self.epoch[user] != epoch:
            self.rec.lost_in_flight += len(batch)
            return
        now = self.kernel.now
        rec = self.rec
        # the frames down and the delivery ack back over the same connection
        rec.wire(now, sum(msg.down_bytes for msg, _ in batch) + self.control_up, True)
        if len(batch) == 1:
            msg, slot = batch[0]
            if msg.seq == self.cursor[slot] + 1 and slot not in self.held:
                # the usual case: next in line, nothing held, displayed at once
                rec.display(msg, user, now, msg.send_s if path == PATH_ONLINE else ref_s, path)
                self.cursor[slot] = msg.seq
            else:
                self._receive(user, batch, path, ref_s)
        else:
            self._receive(user, batch, path, ref_s)
        gw = self.gateway[user]
        if not self.costs.control_instant and gw >= 0:
            self._uplink(self.server.receive_delivery_ack, (user, epoch, gw))

    def poll_reply(self, ctx: PollReply) -> None:
        user, epoch, batch = ctx
        if self.epoch[user] != epoch:
            self.rec.lost_in_flight += len(batch)
            return
        now = self.kernel.now
        self.rec.wire(now, self.control_down + sum(m.down_bytes for m, _ in batch))
        if not batch and self.rec.measure_from_s <= now < self.rec.measure_to_s:
            self.rec.empty_polls += 1  # in the measurement window, as requests and bytes
        self._receive(user, batch, PATH_ONLINE, -1.0)
        if self.polls_on_reply:
            self.poll((user, epoch))

    def sync_reply(self, ctx: SyncReply) -> None:
        user, epoch, batch, path, ref_s, more, requested = ctx
        if self.epoch[user] != epoch:
            return
        now = self.kernel.now
        self.rec.wire(now, self.control_down + sum(m.down_bytes for m, _ in batch))
        self.syncing.difference_update(requested)
        pop = self.sync_sent_s.pop
        for slot in requested:
            pop(slot, None)
        self._receive(user, batch, path, ref_s, True)
        if more:
            self.request_sync(user, list(self.convs.slots_of(user)), path, ref_s)

    def sync_failed(self, ctx: SyncCtx) -> None:
        """The server could not read the inbox: ask again after the send timeout."""
        user, epoch, cursors, path, ref_s = ctx
        if self.epoch[user] != epoch:
            return
        self.rec.wire(self.kernel.now, self.control_down)
        slots = [slot for slot, _ in cursors]
        for slot in slots:
            self.syncing.discard(slot)
        if self.kernel.now + self.timeout_s < self.horizon_s:
            self.after(self.timeout_s, self._sync_again, (user, epoch, slots, path, ref_s))

    def _sync_again(self, ctx: tuple[int, int, list[int], int, float]) -> None:
        user, epoch, slots, path, ref_s = ctx
        if self.epoch[user] == epoch and self.state[user] == CONNECTED:
            self.request_sync(user, [s for s in slots if s not in self.syncing], path, ref_s)

    def _receive(
        self,
        user: int,
        batch: list[tuple[Message, int]],
        path: int,
        ref_s: float,
        from_store: bool = False,
    ) -> None:
        """Dedup by seq, display in seq order, hold messages that arrive after a gap.

        A sync reply (``from_store``) may carry *tombstones*: messages the store
        lost or the inbox expired. They fill their place in the seq order without
        being displayed, so that the messages after them are not held forever.
        """
        cursor = self.cursor
        now = self.kernel.now
        rec = self.rec
        gaps: list[int] = []
        for msg, slot in batch:
            seq = msg.seq
            current = cursor[slot]
            held = self.held.get(slot)
            if seq <= current or (held is not None and seq in held):
                rec.redelivered += 1
                continue
            tomb = from_store and msg.gone
            if seq == current + 1:
                # one's own message was shown when it was written
                if msg.sender != user and not tomb:
                    rec.display(msg, user, now, msg.send_s if path == PATH_ONLINE else ref_s, path)
                current = seq
                if held:
                    while current + 1 in held:
                        nxt, nxt_path = held.pop(current + 1)
                        if nxt.sender != user and nxt_path != PATH_GONE:
                            nxt_ref = nxt.send_s if nxt_path == PATH_ONLINE else ref_s
                            rec.display(nxt, user, now, nxt_ref, nxt_path)
                        current += 1
                cursor[slot] = current
            else:
                if held is None:
                    held = self.held[slot] = {}
                held[seq] = (msg, PATH_GONE if tomb else path)
                if slot not in self.syncing:
                    gaps.append(slot)
        if gaps:
            self.request_sync(user, gaps, PATH_ONLINE, -1.0)

    def request_sync(self, user: int, slots: list[int], path: int, ref_s: float) -> None:
        if not slots:
            return
        now = self.kernel.now
        self.syncing.update(slots)
        self.sync_sent_s.update(dict.fromkeys(slots, now))
        cursors = list(zip(slots, map(self.cursor.__getitem__, slots), strict=True))
        self._frame_up(now, self.costs.control_bytes + 8 * len(slots))
        epoch = self.epoch[user]
        self._uplink(self.server.receive_sync, (user, epoch, cursors, path, ref_s))
        if now + self.sync_timeout_s < self.horizon_s:
            self._sync_timeouts.start((user, epoch, slots, path, ref_s, now))

    def _awaiting_sync(self, ctx: tuple[int, int, list[int], int, float, float]) -> bool:
        """Whether the sync ``ctx`` still waits for its reply on some slot.

        False for ever once False: the connection (epoch) never comes back, and a
        slot's pending request only ever moves to a later time.
        """
        user, epoch, slots, _, _, sent_s = ctx
        if self.epoch[user] != epoch or self.state[user] != CONNECTED:
            return False
        syncing = self.syncing
        sent = self.sync_sent_s
        return any(s in syncing and sent.get(s) == sent_s for s in slots)

    def _sync_timed_out(self, ctx: tuple[int, int, list[int], int, float, float]) -> None:
        """No reply to a sync (its request or reply was lost in a crash): ask again."""
        user, epoch, slots, path, ref_s, sent_s = ctx
        if self.epoch[user] != epoch or self.state[user] != CONNECTED:
            return
        again = [s for s in slots if s in self.syncing and self.sync_sent_s.get(s) == sent_s]
        if again:
            self.rec.sync_timeouts += 1
            for slot in again:
                self.syncing.discard(slot)
            self.request_sync(user, again, path, ref_s)

    # ------------------------------------------------------------ polling

    def start_polling(self, user: int) -> None:
        if self.state[user] == CONNECTED:
            self.poll((user, self.epoch[user]))

    def poll(self, ctx: tuple[int, int]) -> None:
        user, epoch = ctx
        if self.epoch[user] != epoch or self.state[user] != CONNECTED:
            return
        self.rec.wire(self.kernel.now, self.control_up, True)
        self._uplink(self.server.receive_poll, ctx)
        if self.polls_on_timer:
            self.after(self.poll_interval_s, self.poll, ctx)


__all__ = ["Timeline"]
