"""Delivery: a sequenced message reaches every other member of its conversation.

Fan-out sends it to each member but the sender: pushed to a connected WebSocket
client, queued for a polling client's next poll (completing a held long poll at
once), or left in the inbox for an offline member (optionally with a push
notification). Polls read the inbox through the message service; a client
coming online syncs each conversation from its cursor, in batches of
``offline.sync_batch``, from the store or from its inbox queue or topic.
Mirrors ``reference_impl``'s delivery and inbox.
"""

from __future__ import annotations

import math
from typing import Any

from sim.components.durable import StoreModel
from sim.components.inbox import Inbox
from sim.components.resilience.defences import Defences
from sim.components.resilience.guard import GuardedCall
from sim.core.kernel import Kernel
from sim.core.metrics import PATH_ONLINE, PATH_SYNC, Message, Recorder
from sim.model.costs import Costs
from sim.model.protocol import Batch, ClientSide, PollReply, SyncCtx, UserEpoch
from sim.model.server.links import Links
from sim.model.server.presence import Presence
from sim.model.transport import ClientTransport
from sim.scenario.architecture import InboxKind, Offline
from sim.workload.population import Conversations


class Delivery:
    """Fan-out, pushes, polls and syncs of one architecture."""

    clients: ClientSide  # the clients register with the server (Server.attach)

    def __init__(
        self,
        kernel: Kernel,
        recorder: Recorder,
        convs: Conversations,
        costs: Costs,
        links: Links,
        presence: Presence,
        transport: ClientTransport,
        offline: Offline,
        log: dict[int, list[Message]],
        store: StoreModel,
        inbox: Inbox,
        defences: Defences,
    ) -> None:
        self.kernel = kernel
        self.after = kernel.after
        self.rec = recorder
        self.convs = convs
        self.costs = costs
        self.net = links.net
        self._hop = links.hop
        self._hops = links.hops
        self._hop_s = links.hop_s
        self._on_gateway = links.on_gateway
        self._service_step = links.service_step
        self._outbound = links.outbound
        self._from_service_to_gateway = links.service_to_gateway
        self.presence_gw = presence.gw
        self.presence_epoch = presence.epoch
        self._connected = presence.connected
        self.pushes = transport.pushes
        self.holds_polls = transport.holds_polls
        self.long_poll_timeout_s = transport.long_poll_timeout_s
        #: the accepted messages of each conversation, in seq order (index seq - 1)
        self.log = log
        self.store = store
        self.inbox = inbox
        self.defences = defences
        self.store_guard = defences.store
        #: messages older than this in an inbox queue or topic have expired
        self.retention_s = math.inf if offline.inbox is InboxKind.STORE else offline.retention_s
        self.sync_batch = offline.sync_batch
        self.push_notifications = offline.push
        # polling transports: messages waiting for a user's next poll, and held long polls
        self.pending: dict[int, Batch] = {}
        self.held_polls: dict[int, int] = {}
        self._poll_ids = 0

    def drop_user(self, user: int) -> None:
        """The user's connection closed: what was held for it goes."""
        self.pending.pop(user, None)
        self.held_polls.pop(user, None)

    # ------------------------------------------------------------ fan-out

    def fan_out(self, msg: Message) -> None:
        members, slots = self.convs.members_and_slots(msg.conv)
        sender = msg.sender
        pushes = self.pushes
        inbox_copies = self.inbox.separate
        # service and gateway are one process (monolith) or a zero-delay hop apart
        direct = self.costs.monolith or self._hop_s == 0.0
        for user, slot in zip(members, slots, strict=True):
            if user == sender:
                continue
            gw = self.presence_gw[user]
            if gw < 0:
                if self.push_notifications:
                    self.rec.push_notifications += 1
                if inbox_copies:
                    self.inbox.put()
                continue
            if pushes:
                push = (msg, user, slot, gw, self.presence_epoch[user])
                if direct:
                    self._push(push)
                else:
                    self._hop(self._push, push)
            else:
                waiting = self.pending.get(user)
                if waiting is None:
                    self.pending[user] = [(msg, slot)]
                else:
                    waiting.append((msg, slot))
                if user in self.held_polls:
                    self._from_service_to_gateway(self._release_poll, user)

    def _push(self, ctx: tuple[Message, int, int, int, int]) -> None:
        msg, user, slot, gw, epoch = ctx
        if self.presence_gw[user] < 0 or self.presence_epoch[user] != epoch:
            self.rec.lost_in_flight += 1
            return
        if self.net.cuts and not self.costs.monolith and self.net.cut("service", "gateway"):
            return
        self._outbound(gw, self.clients.deliver, (user, epoch, [(msg, slot)], PATH_ONLINE, -1.0))

    # ------------------------------------------------------------ polls

    def poll_arrives(self, ctx: UserEpoch) -> None:
        """A poll reaches the user's gateway; it queries the inbox through the service."""
        user, epoch = ctx
        if not self._connected(user, epoch):
            return
        self._on_gateway(
            self.presence_gw[user],
            self.costs.inbound(),
            self.costs.gateway_instant,
            self._poll_at_gateway,
            ctx,
        )

    def _poll_at_gateway(self, ctx: UserEpoch) -> None:
        self._service_step(self._poll_read, ctx, ctx[0])

    def _poll_read(self, ctx: UserEpoch) -> None:
        if self.costs.store_read_instant:
            self._poll_answer(ctx)
        elif self.store_guard is None:
            self._hop(self._poll_at_store, ctx)
        else:
            call = self.store_guard.begin(self._poll_read_done, self._poll_read_failed, ctx)
            if call is None:  # refused at once, in the service
                self._from_service_to_gateway(self._poll_failed_answer, ctx)
            else:
                self._hop(self._read_guarded, call)

    def _poll_at_store(self, ctx: UserEpoch) -> None:
        self.store.read(ctx[0], self._poll_read_done, self._poll_read_failed, ctx)

    def _read_guarded(self, call: GuardedCall) -> None:
        """A store read for a poll or a sync (keyed by the user), through the guard."""
        self.store.read(call.arg[0], call.ok, call.error, call.arg)

    def _poll_read_failed(self, ctx: UserEpoch) -> None:
        # the store could not answer: the poll gets an empty reply
        self._hops(1 if self.costs.monolith else 2, self._poll_failed_answer, ctx)

    def _poll_failed_answer(self, ctx: UserEpoch) -> None:
        user, epoch = ctx
        if self._connected(user, epoch):
            if self.defences.cache:
                # serve_reads_from_cache: what waits for the user is in the service's memory
                self.defences.cache_reads += 1
                self._poll_answer(ctx)
                return
            self._reply_poll((user, epoch, []))

    def _poll_read_done(self, ctx: UserEpoch) -> None:
        # store -> service -> gateway: the reply is composed on arrival at the gateway
        self._hops(1 if self.costs.monolith else 2, self._poll_answer, ctx)

    def _poll_answer(self, ctx: UserEpoch) -> None:
        user, epoch = ctx
        if not self._connected(user, epoch):
            return
        batch = self.pending.pop(user, None)
        if batch or not self.holds_polls:
            self._reply_poll((user, epoch, batch or []))
            return
        self._poll_ids += 1
        poll_id = self._poll_ids
        self.held_polls[user] = poll_id
        self.after(self.long_poll_timeout_s, self._poll_timeout, (user, epoch, poll_id))

    def _poll_timeout(self, ctx: tuple[int, int, int]) -> None:
        user, epoch, poll_id = ctx
        if self.held_polls.get(user) == poll_id and self._connected(user, epoch):
            del self.held_polls[user]
            self._reply_poll((user, epoch, []))

    def _release_poll(self, user: int) -> None:
        if user not in self.held_polls:
            return  # already answered by an earlier message of the same fan-out
        del self.held_polls[user]
        batch = self.pending.pop(user, [])
        self._reply_poll((user, self.presence_epoch[user], batch))

    def _reply_poll(self, ctx: PollReply) -> None:
        user = ctx[0]
        gw = self.presence_gw[user]
        if gw < 0:
            return
        self._outbound(gw, self.clients.poll_reply, ctx)

    # ------------------------------------------------------------ syncs

    def sync_arrives(self, ctx: SyncCtx) -> None:
        """A sync request reaches the user's gateway."""
        user, epoch = ctx[0], ctx[1]
        if not self._connected(user, epoch):
            return
        self._on_gateway(
            self.presence_gw[user],
            self.costs.inbound(),
            self.costs.gateway_instant,
            self._sync_at_gateway,
            ctx,
        )

    def _sync_at_gateway(self, ctx: Any) -> None:
        self._service_step(self._sync_read, ctx, ctx[0])

    def _sync_read(self, ctx: Any) -> None:
        if self.inbox.separate and ctx[3] == PATH_SYNC:
            # a reconnecting user drains its inbox queue or topic, not the store
            self.after(self.inbox.read_s(self._waiting(ctx[2])), self._sync_read_done, ctx)
        elif self.costs.store_read_instant:
            self._sync_answer(ctx)
        elif self.store_guard is None:
            self._hop(self._sync_at_store, ctx)
        else:
            call = self.store_guard.begin(self._sync_read_done, self._sync_read_failed, ctx)
            if call is None:  # refused at once, in the service
                self._from_service_to_gateway(self._sync_failed_answer, ctx)
            else:
                self._hop(self._read_guarded, call)

    def _waiting(self, cursors: list[tuple[int, int]]) -> int:
        slot_conv = self.convs.slot_conv
        waiting = 0
        for slot, cursor in cursors:
            log = self.log.get(slot_conv[slot])
            if log is not None and len(log) > cursor:
                waiting += len(log) - cursor
        return waiting

    def _sync_at_store(self, ctx: Any) -> None:
        self.store.read(ctx[0], self._sync_read_done, self._sync_read_failed, ctx)

    def _sync_read_failed(self, ctx: Any) -> None:
        self._hops(1 if self.costs.monolith else 2, self._sync_failed_answer, ctx)

    def _sync_failed_answer(self, ctx: SyncCtx) -> None:
        user, epoch = ctx[0], ctx[1]
        if self._connected(user, epoch):
            if self.defences.cache:
                self._sync_from_cache(ctx)
                return
            self.rec.sync_errors += 1
            self._outbound(self.presence_gw[user], self.clients.sync_failed, ctx)

    def _sync_from_cache(self, ctx: SyncCtx) -> None:
        """serve_reads_from_cache: conversations whose missing messages are all among the
        last ``cache_messages`` the service wrote are answered from its cache; the others
        get the error (the client asks again)."""
        user, epoch, cursors, path, ref_s = ctx
        slot_conv = self.convs.slot_conv
        limit = self.defences.cache_messages
        cached: list[tuple[int, int]] = []
        missed: list[tuple[int, int]] = []
        for slot, cursor in cursors:
            log = self.log.get(slot_conv[slot])
            if log is None or len(log) - cursor <= limit:
                cached.append((slot, cursor))
            else:
                missed.append((slot, cursor))
        if cached:
            self.defences.cache_reads += 1
            self._sync_answer((user, epoch, cached, path, ref_s))
        if missed:
            self.defences.cache_misses += 1
            self.rec.sync_errors += 1
            failed = (user, epoch, missed, path, ref_s)
            self._outbound(self.presence_gw[user], self.clients.sync_failed, failed)

    def _sync_read_done(self, ctx: Any) -> None:
        self._hops(1 if self.costs.monolith else 2, self._sync_answer, ctx)

    def _sync_answer(self, ctx: SyncCtx) -> None:
        user, epoch, cursors, path, reconnect_s = ctx
        if not self._connected(user, epoch):
            return
        slot_conv = self.convs.slot_conv
        batch: Batch = []
        more = False
        limit = self.sync_batch
        expire_before = self.kernel.now - self.retention_s
        logs = self.log
        for slot, cursor in cursors:
            log = logs.get(slot_conv[slot])
            if log is None or len(log) <= cursor:
                continue
            for msg in log[cursor:]:
                if len(batch) >= limit:
                    more = True
                    break
                if msg.durable_s < expire_before and not msg.gone:
                    # waited in the inbox longer than its retention: deleted unread
                    msg.gone = True
                    self.rec.inbox_expired += 1
                batch.append((msg, slot))
            if more:
                break
        reply = (user, epoch, batch, path, reconnect_s, more, [slot for slot, _ in cursors])
        self._outbound(self.presence_gw[user], self.clients.sync_reply, reply)


__all__ = ["Delivery"]
