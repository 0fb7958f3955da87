"""The client side of every user: its connection, and the parts that send and receive.

A client connects when its session starts (TCP + TLS, plus the WebSocket
upgrade), renews its access token while connected, and reconnects with backoff
when the connection fails or is lost; once connected it syncs every
conversation from its cursor, resends its outbox and, on the polling
transports, starts polling. Sending is :class:`~sim.model.client.outbox.Outbox`'s,
receiving :class:`~sim.model.client.timeline.Timeline`'s; they share the state of
:class:`~sim.model.client.state.ClientState`. The server side calls the
:class:`~sim.model.protocol.ClientSide` methods of :class:`Clients`, which are
the parts' own.
"""

from __future__ import annotations

from collections.abc import Callable

from sim.components.resilience.backoff import backoff_s
from sim.core.distributions import BlockDraws
from sim.core.kernel import Kernel, Timeouts
from sim.core.metrics import PATH_SYNC, Recorder
from sim.model.client.outbox import Outbox
from sim.model.client.state import (
    CONNECTED,
    CONNECTING,
    OFFLINE,
    ClientLink,
    ClientState,
)
from sim.model.client.timeline import Timeline
from sim.model.costs import Costs
from sim.model.protocol import SendCtx, ServerSide, SessionCtx, UserEpoch
from sim.model.transport import ClientTransport
from sim.scenario.resilience import Backoff
from sim.scenario.schema import Scenario
from sim.workload.population import Conversations


class Clients:
    """All users' client applications."""

    def __init__(
        self,
        scenario: Scenario,
        kernel: Kernel,
        recorder: Recorder,
        convs: Conversations,
        costs: Costs,
        server: ServerSide,
        transport: ClientTransport,
        ack_lost: Callable[[SendCtx], bool] | None = None,
    ) -> None:
        """``ack_lost(ctx)``, when given, is asked of every send ack that reaches its
        connection: True loses the frame on the way down (the sender times out and
        retries). Scripted validations drop chosen acks with it."""
        arch = scenario.architecture
        res = arch.resilience
        self.kernel = kernel
        self.after = kernel.after
        self.rec = recorder
        self.convs = convs
        self.costs = costs
        self.server = server
        self.transport = transport
        shared = ClientState(scenario.workload.users, convs)
        self.state = shared.state
        self.epoch = shared.epoch
        self.gateway = shared.gateway
        self.online_since = shared.online_since
        self.cursor = shared.cursor
        self.held = shared.held
        self.syncing = shared.syncing
        self.outbox = shared.outbox
        link = ClientLink(kernel, recorder, costs, transport)
        self.control_up = link.control_up
        #: retry timers that would fire after this never matter and are not scheduled
        self.horizon_s = scenario.run.duration_s + scenario.run.drain_s
        #: access tokens are renewed this often while connected (0: no authorization server)
        self.token_ttl_s = arch.auth.token_ttl_s if server.issues_tokens else 0.0
        self.connect_timeout_s = res.connect_timeout_s
        self.reconnect = res.reconnect
        #: consecutive failed connection attempts of users reconnecting
        self.reconnects: dict[int, int] = {}
        # one stream of jitter draws for send retries and reconnects
        self._uniform = BlockDraws(kernel.streams.generator("client.backoff").random)
        #: decorrelated jitter: the previous delay, per user reconnecting
        self._previous_reconnect_s: dict[int, float] = {}
        self.timeline = Timeline(
            kernel, recorder, convs, costs, server, transport, res, shared, link, self.horizon_s
        )
        self.sending = Outbox(
            kernel,
            recorder,
            convs,
            costs,
            server,
            transport,
            res,
            shared,
            link,
            self._uniform,
            self.timeline._receive,
            self.horizon_s,
            ack_lost,
        )
        self._request_sync = self.timeline.request_sync
        self._poll = self.timeline.poll
        self._transmit = self.sending.transmit
        # what the workload and the server side call: the parts' own methods
        self.send = self.sending.send
        self.send_acked = self.sending.send_acked
        self.send_rejected = self.sending.send_rejected
        self.deliver = self.timeline.deliver
        self.poll_reply = self.timeline.poll_reply
        self.sync_reply = self.timeline.sync_reply
        self.sync_failed = self.timeline.sync_failed
        self.start_polling = self.timeline.start_polling
        self._connect_timeouts = Timeouts(
            kernel, self.connect_timeout_s, self._connect_timed_out, self._connecting
        )
        # token renewals: one per connected user per token lifetime, out of the heap too
        self._refreshes = Timeouts(
            kernel, self.token_ttl_s or 1.0, self._refresh, self._connected_as
        )
        server.attach(self)  # the server side answers these clients

    def parts(self) -> list[object]:
        """The client side's parts, which refer to each other (what
        :meth:`sim.model.run.Model.release` takes apart)."""
        return [self.timeline, self.sending]

    # ------------------------------------------------------------ sessions

    def go_online(self, user: int) -> None:
        now = self.kernel.now
        self.epoch[user] += 1
        self.state[user] = CONNECTING
        self.online_since[user] = now
        rtt = 0.0 if self.costs.client_zero else self.costs.client_rtt()
        if self.transport.upgrades:
            self.rec.wire(now, self.transport.header_bytes, True)  # the Upgrade exchange
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
        self.rec.wire(self.kernel.now, self.control_up, True)
        self.server.refresh_token(user)
        self.schedule_refresh(user, self.token_ttl_s)

    def _connecting(self, ctx: tuple[int, int]) -> bool:
        """Whether the connection attempt ``ctx`` still waits (False for ever once False)."""
        return self.epoch[ctx[0]] == ctx[1] and self.state[ctx[0]] == CONNECTING

    def _connect_timed_out(self, ctx: tuple[int, int]) -> None:
        if self._connecting(ctx):
            self.connect_failed(ctx)

    def connect_failed(self, ctx: UserEpoch) -> None:
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

    def session_ready(self, ctx: SessionCtx) -> None:
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
        if self.transport.polls:
            self._poll((user, epoch))


__all__ = ["CONNECTED", "Clients"]
