"""The client side of every user: connection, outbox with retries, display in seq order.

Client state is kept in arrays indexed by user or by membership slot, never in
per-user objects. A client:

* connects when its session starts (TCP + TLS, plus the WebSocket upgrade), then
  syncs every conversation from its cursor and resends its outbox;
* sends with a timeout per attempt, retries with backoff, gives up after
  ``max_attempts`` (the message is then *failed*);
* drops a delivery it has displayed already (dedup by seq, which the service
  assigns once per msg_id), displays in seq order, holds a message that arrives
  ahead of a gap and asks for a sync to fill the gap;
* polls, on the polling transports: every ``poll_interval_s`` (short polling) or
  again as soon as a poll returns (long polling).
"""

from __future__ import annotations

from array import array
from collections.abc import Callable
from typing import Any

from sim.components.resilience import backoff_s
from sim.core.distributions import BlockDraws
from sim.core.kernel import Kernel, Timeouts
from sim.core.metrics import PATH_ONLINE, PATH_SYNC, Message, Recorder
from sim.model.costs import Costs, websocket_header_bytes
from sim.model.server import SendCtx, Server
from sim.scenario.architecture import TransportKind
from sim.scenario.resilience import Backoff
from sim.scenario.schema import Scenario
from sim.workload.population import Conversations

OFFLINE, CONNECTING, CONNECTED = 0, 1, 2
#: a tombstone held in seq order: takes its place, is never displayed
PATH_GONE = -1


class Clients:
    """All users' client applications."""

    def __init__(
        self,
        scenario: Scenario,
        kernel: Kernel,
        recorder: Recorder,
        convs: Conversations,
        costs: Costs,
        server: Server,
        stop_sending_s: float,
        ack_lost: Callable[[SendCtx], bool] | None = None,
    ) -> None:
        """``ack_lost(ctx)``, when given, is asked of every send ack that reaches its
        connection: True loses the frame on the way down (the sender times out and
        retries). Scripted validations drop chosen acks with it."""
        arch = scenario.architecture
        users = scenario.workload.users
        self.kernel = kernel
        self.after = kernel.after
        self.rec = recorder
        self.convs = convs
        self.costs = costs
        self.server = server
        self.ack_lost = ack_lost
        self.transport = arch.transport.kind
        self.poll_interval_s = arch.transport.poll_interval_s
        self.state = bytearray(users)
        self.epoch = array("i", [0]) * users
        self.gateway = array("i", [-1]) * users
        self.online_since = array("d", [0.0]) * users
        self.cursor = array("i", [0]) * len(convs.user_convs)
        self.held: dict[int, dict[int, tuple[Message, int]]] = {}
        self.syncing: set[int] = set()
        #: when the sync now awaited for a slot was requested
        self.sync_sent_s: dict[int, float] = {}
        self.outbox: dict[int, list[Message]] = {}
        res = arch.resilience
        self.timeout_s = res.timeout_s
        self.sync_timeout_s = res.sync_timeout_s
        #: access tokens are renewed this often while connected (0: no authorization server)
        self.token_ttl_s = arch.auth.token_ttl_s if server.auth_server is not None else 0.0
        self.connect_timeout_s = res.connect_timeout_s
        self.reconnect = res.reconnect
        #: consecutive failed connection attempts of users reconnecting
        self.reconnects: dict[int, int] = {}
        self.max_attempts = res.retry.max_attempts
        self.backoff = res.retry.backoff
        self.base_s = res.retry.base_s
        self.cap_s = res.retry.cap_s
        jitter_rng = kernel.streams.generator("client.backoff")
        self._uniform = BlockDraws(jitter_rng.random)
        #: decorrelated jitter: the previous delay, per message retried and per user reconnecting
        self._previous_s: dict[int, float] = {}
        self._previous_reconnect_s: dict[int, float] = {}
        #: retry timers that would fire after this never matter and are not scheduled
        self.horizon_s = scenario.run.duration_s + scenario.run.drain_s
        self.stop_sending_s = stop_sending_s
        self.next_msg_id = 0
        self.control_up, self.control_down = self._frame_bytes(costs.control_bytes)
        # the three timeouts every connection, send and sync starts (most never fire)
        self._connect_timeouts = Timeouts(
            kernel, self.connect_timeout_s, self._connect_timed_out, self._connecting
        )
        self._send_timeouts = Timeouts(kernel, self.timeout_s, self._timed_out, self._awaiting_ack)
        self._sync_timeouts = Timeouts(
            kernel, self.sync_timeout_s, self._sync_timed_out, self._awaiting_sync
        )
        # token renewals: one per connected user per token lifetime, out of the heap too
        self._refreshes = Timeouts(
            kernel, self.token_ttl_s or 1.0, self._refresh, self._connected_as
        )
        self._sizes: dict[int, tuple[int, int, int, int]] = {}

    # ------------------------------------------------------------ link helpers

    def _uplink(self, fn: Any, arg: Any) -> None:
        if self.costs.client_zero:
            fn(arg)
        else:
            self.after(self.costs.client_rtt() * 0.5, fn, arg)

    def _frame_bytes(self, body_bytes: int) -> tuple[int, int]:
        """Bytes of a frame or request with ``body_bytes``, up (client to server) and down.

        WebSocket frames carry their RFC 6455 header (masked upstream); HTTP requests
        carry the request and response headers, counted once, with the request.
        """
        if self.transport is TransportKind.WEBSOCKET:
            return (
                body_bytes + websocket_header_bytes(body_bytes, True),
                body_bytes + websocket_header_bytes(body_bytes, False),
            )
        return body_bytes + self.costs.header_bytes, body_bytes

    def _frame_up(self, now: float, body_bytes: int) -> None:
        """A client-to-server frame or request on the client link."""
        self.rec.wire(now, self._frame_bytes(body_bytes)[0], True)

    # ------------------------------------------------------------ sessions

    def go_online(self, user: int) -> None:
        now = self.kernel.now
        self.epoch[user] += 1
        self.state[user] = CONNECTING
        self.online_since[user] = now
        rtt = 0.0 if self.costs.client_zero else self.costs.client_rtt()
        if self.transport is TransportKind.WEBSOCKET:
            self.rec.wire(now, self.costs.header_bytes, True)  # the Upgrade exchange
        ctx = (user, self.epoch[user], rtt)
        self.rec.connect(now)
        delay = (self.costs.connect_rtts - 0.5) * rtt
        if delay <= 0.0:
            self.server.open_session(ctx)
        else:
            self.after(delay, self.server.open_session, ctx)
        if now + self.connect_timeout_s < self.horizon_s:
            self._connect_timeouts.start((user, self.epoch[user]))

    def schedule_refresh(self, user: int, delay_s: float) -> None:
        """Renew the access token after ``delay_s``, then every ``token_ttl_s``, while the
        same connection lasts. Delays other than ``token_ttl_s`` (the first renewals of
        users online at the start) must come first, in increasing order."""
        at_s = self.kernel.now + delay_s
        if at_s < self.horizon_s:
            self._refreshes.start_at(at_s, (user, self.epoch[user]))

    def _connected_as(self, ctx: tuple[int, int]) -> bool:
        """Whether connection ``ctx`` is still up (False for ever once False)."""
        return self.epoch[ctx[0]] == ctx[1] and self.state[ctx[0]] == CONNECTED

    def _refresh(self, ctx: tuple[int, int]) -> None:
        if not self._connected_as(ctx):
            return
        user = ctx[0]
        self.rec.wire(self.kernel.now, self._frame_bytes(self.costs.control_bytes)[0], True)
        self.server.refresh_token(user)
        self.schedule_refresh(user, self.token_ttl_s)

    def _connecting(self, ctx: tuple[int, int]) -> bool:
        """Whether the connection attempt ``ctx`` still waits (False for ever once False)."""
        return self.epoch[ctx[0]] == ctx[1] and self.state[ctx[0]] == CONNECTING

    def _connect_timed_out(self, ctx: tuple[int, int]) -> None:
        if self._connecting(ctx):
            self.connect_failed(ctx)

    def connect_failed(self, ctx: tuple[int, int]) -> None:
        """The connection could not be set up (refused, or timed out): try again later."""
        user, epoch = ctx
        if self.epoch[user] != epoch or self.state[user] != CONNECTING:
            return
        self.rec.connect_failures += 1
        self._reconnect_later(user)

    def connection_lost(self, user: int) -> None:
        """The server side of the connection went away (its gateway crashed, or the user
        was blocked): the client notices and reconnects with backoff."""
        if self.state[user] == OFFLINE:
            return
        self.rec.connections_lost += 1
        for slot in self.convs.slots_of(user):
            self.held.pop(slot, None)
            self.syncing.discard(slot)
        self.gateway[user] = -1
        self._reconnect_later(user)

    def _reconnect_later(self, user: int) -> None:
        self.epoch[user] += 1
        self.state[user] = CONNECTING
        failures = self.reconnects.get(user, 0) + 1
        self.reconnects[user] = failures
        spec = self.reconnect
        if spec.backoff is Backoff.NONE:
            delay = spec.base_s
        else:
            previous = (
                spec.base_s if failures == 1 else self._previous_reconnect_s.get(user, spec.base_s)
            )
            delay = backoff_s(
                spec.backoff, failures, spec.base_s, spec.cap_s, self._uniform, previous
            )
            if spec.backoff is Backoff.DECORRELATED_JITTER:
                self._previous_reconnect_s[user] = delay
        if self.kernel.now + delay < self.horizon_s:
            self.after(delay, self._reconnect, (user, self.epoch[user]))

    def _reconnect(self, ctx: tuple[int, int]) -> None:
        user, epoch = ctx
        if self.epoch[user] == epoch and self.state[user] == CONNECTING:
            self.go_online(user)

    def go_offline(self, user: int) -> None:
        self.reconnects.pop(user, None)
        self.epoch[user] += 1
        self.state[user] = OFFLINE
        self.gateway[user] = -1
        self.server.close_session(user)
        for slot in self.convs.slots_of(user):
            self.held.pop(slot, None)
            self.syncing.discard(slot)

    def session_ready(self, ctx: tuple[int, int, int]) -> None:
        user, epoch, gw = ctx
        if self.epoch[user] != epoch:
            return
        self.state[user] = CONNECTED
        self.gateway[user] = gw
        if self.reconnects:
            self.reconnects.pop(user, None)
        if self.token_ttl_s > 0.0:
            self.schedule_refresh(user, self.token_ttl_s)
        slots = self.convs.slots_of(user)
        if len(slots):
            self._request_sync(user, list(slots), PATH_SYNC, self.online_since[user])
        pending = self.outbox.pop(user, None)
        if pending:
            for msg in pending:
                if not (msg.acked or msg.failed):
                    self._transmit(msg)
        if self.transport is not TransportKind.WEBSOCKET:
            self._poll((user, epoch))

    # ------------------------------------------------------------ sending

    def send(self, user: int, slot: int, payload_bytes: int) -> None:
        """The user writes a message in the conversation of ``slot`` (called by the workload)."""
        sizes = self._sizes.get(payload_bytes)
        if sizes is None:
            # shared int objects per payload size: a million messages, a few thousand sizes
            wire = self.costs.frame_bytes(payload_bytes)
            sizes = (payload_bytes, *self._frame_bytes(wire), wire)
            self._sizes[payload_bytes] = sizes
        payload, up, down, wire = sizes
        if self.costs.pairwise:
            # pairwise E2E: one ciphertext per recipient, all uploaded in the send
            up += wire * (self.convs.size(self.convs.slot_conv[slot]) - 2)
        msg = Message(
            self.next_msg_id,
            self.convs.slot_conv[slot],
            slot,
            user,
            self.kernel.now,
            payload,
            up,
            down,
        )
        self.next_msg_id += 1
        self.rec.messages.append(msg)
        if self.costs.e2e:
            # the client seals the message before it can leave: once with a sender key,
            # once per recipient with pairwise sessions
            copies = self.convs.size(self.convs.slot_conv[slot]) - 1 if self.costs.pairwise else 1
            self.after(self.costs.e2e_seal_s * copies, self._sealed, msg)
            return
        self._sealed(msg)

    def _sealed(self, msg: Message) -> None:
        user = msg.sender
        if self.state[user] == CONNECTED:
            self._transmit(msg)
        else:
            self.outbox.setdefault(user, []).append(msg)

    def _transmit(self, msg: Message) -> None:
        user = msg.sender
        msg.attempts += 1
        now = self.kernel.now
        self.rec.wire(now, msg.up_bytes, True)
        ctx: SendCtx = (msg, self.epoch[user], self.gateway[user], msg.attempts)
        if self.costs.client_zero:
            self.server.receive_send(ctx)
        else:
            self.after(self.costs.client_rtt() * 0.5, self.server.receive_send, ctx)
        if now + self.timeout_s < self.horizon_s:
            self._send_timeouts.start((msg, msg.attempts))

    @staticmethod
    def _awaiting_ack(ctx: tuple[Message, int]) -> bool:
        """Whether attempt ``ctx`` still waits for its ack (False for ever once False)."""
        msg = ctx[0]
        return not (msg.acked or msg.failed) and msg.attempts == ctx[1]

    def _timed_out(self, ctx: tuple[Message, int]) -> None:
        if self._awaiting_ack(ctx):
            self._attempt_failed(ctx[0])

    def _attempt_failed(self, msg: Message) -> None:
        now = self.kernel.now
        if msg.attempts >= self.max_attempts:
            msg.failed = True
            msg.failed_s = now
            self.rec.error(now)
            return
        self.after(self._backoff_s(msg), self._retry, msg)

    def _backoff_s(self, msg: Message) -> float:
        """Delay before the next attempt of ``msg``: :func:`sim.components.resilience.backoff_s`
        (AWS Architecture Blog, "Exponential Backoff and Jitter", 2015)."""
        if self.backoff is not Backoff.DECORRELATED_JITTER:
            return backoff_s(
                self.backoff, msg.attempts, self.base_s, self.cap_s, self._uniform, self.base_s
            )
        previous = self.base_s
        if msg.attempts > 1:
            previous = self._previous_s.get(msg.msg_id, self.base_s)
        delay = backoff_s(
            self.backoff, msg.attempts, self.base_s, self.cap_s, self._uniform, previous
        )
        if msg.attempts + 1 < self.max_attempts:
            self._previous_s[msg.msg_id] = delay  # another retry may follow this one
        else:
            self._previous_s.pop(msg.msg_id, None)
        return delay

    def _retry(self, msg: Message) -> None:
        if msg.acked or msg.failed:
            return
        self.rec.retry(self.kernel.now)
        if self.state[msg.sender] == CONNECTED:
            self._transmit(msg)
        else:
            self.outbox.setdefault(msg.sender, []).append(msg)

    def send_acked(self, ctx: SendCtx) -> None:
        msg, epoch = ctx[0], ctx[1]
        if self.epoch[msg.sender] != epoch:
            return  # the connection the ack was meant for has closed
        if self.ack_lost is not None and self.ack_lost(ctx):
            return
        now = self.kernel.now
        self.rec.wire(now, self.control_down)
        if msg.acked or msg.failed:
            return
        msg.acked = True
        msg.ack_s = now
        # the ack tells the sender its message's seq: it takes that place in the timeline
        slot = msg.slot
        if msg.seq == self.cursor[slot] + 1 and slot not in self.held:
            self.cursor[slot] = msg.seq  # the usual case: next in line, nothing held
        else:
            self._receive(msg.sender, [(msg, slot)], PATH_ONLINE, -1.0)

    def send_rejected(self, ctx: SendCtx) -> None:
        msg, epoch, _, attempt = ctx
        if self.epoch[msg.sender] != epoch:
            return
        self.rec.wire(self.kernel.now, self.control_down)
        if msg.acked or msg.failed or msg.attempts != attempt:
            return
        self._attempt_failed(msg)

    # ------------------------------------------------------------ receiving

    def deliver(self, ctx: tuple[int, int, list[tuple[Message, int]], int, float]) -> None:
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
            self._uplink(self._ack_arrives, (user, epoch, gw))

    def _ack_arrives(self, ctx: tuple[int, int, int]) -> None:
        user, epoch, gw = ctx
        net = self.server.net
        if net.cuts and net.cut("client", "gateway"):
            return
        if self.server.presence_epoch[user] == epoch and self.server.presence_gw[user] == gw:
            self.server.gateways[gw].submit(self.costs.control(), _ignore, None)

    def poll_reply(self, ctx: tuple[int, int, list[tuple[Message, int]]]) -> None:
        user, epoch, batch = ctx
        if self.epoch[user] != epoch:
            self.rec.lost_in_flight += len(batch)
            return
        now = self.kernel.now
        self.rec.wire(now, self.control_down + sum(m.down_bytes for m, _ in batch))
        if not batch and self.rec.measure_from_s <= now < self.rec.measure_to_s:
            self.rec.empty_polls += 1  # in the measurement window, as requests and bytes
        self._receive(user, batch, PATH_ONLINE, -1.0)
        if self.transport is TransportKind.LONG_POLLING:
            self._poll((user, epoch))

    def sync_reply(
        self, ctx: tuple[int, int, list[tuple[Message, int]], int, float, bool, list[int]]
    ) -> None:
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
            self._request_sync(user, list(self.convs.slots_of(user)), path, ref_s)

    def sync_failed(self, ctx: tuple[int, int, list[tuple[int, int]], int, float]) -> None:
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
            self._request_sync(user, [s for s in slots if s not in self.syncing], path, ref_s)

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
            self._request_sync(user, gaps, PATH_ONLINE, -1.0)

    def _request_sync(self, user: int, slots: list[int], path: int, ref_s: float) -> None:
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
            self._request_sync(user, again, path, ref_s)

    # ------------------------------------------------------------ polling

    def start_polling(self, user: int) -> None:
        if self.state[user] == CONNECTED:
            self._poll((user, self.epoch[user]))

    def _poll(self, ctx: tuple[int, int]) -> None:
        user, epoch = ctx
        if self.epoch[user] != epoch or self.state[user] != CONNECTED:
            return
        self.rec.wire(self.kernel.now, self.control_up, True)
        self._uplink(self.server.receive_poll, ctx)
        if self.transport is TransportKind.SHORT_POLLING:
            self.after(self.poll_interval_s, self._poll, ctx)


def _ignore(_: Any) -> None:
    return None
