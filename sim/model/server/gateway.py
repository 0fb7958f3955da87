"""The gateway: connections, presence, and the checks every request passes first.

A connection reaches the instance the load balancer picks, which sets up the
session (TCP, TLS, the WebSocket upgrade, the token's verification) and records
the user's presence. Each send, poll or sync then arrives at that instance:
refused at once when the instance sheds load, refused by the abuse detector or
the rate limiter, authorized by token introspection when each HTTP request
carries its token, then handed to the message service (sends) or to the
delivery (polls and syncs). Mirrors ``reference_impl``'s gateway.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from sim.components.balancer import Balancer
from sim.components.resilience.defences import Defences
from sim.components.security.auth import AuthServer
from sim.components.security.detector import Detector
from sim.components.security.introspection import Introspection
from sim.components.security.ratelimit import TokenBuckets
from sim.components.security.tokens import TokenClock
from sim.components.station import Station
from sim.core.kernel import Kernel
from sim.core.metrics import Recorder
from sim.model.costs import Costs
from sim.model.protocol import ClientSide, ConnectCtx, DeliveryAck, SendCtx, SyncCtx, UserEpoch
from sim.model.server.delivery import Delivery
from sim.model.server.links import Links
from sim.model.server.presence import Presence
from sim.model.transport import ClientTransport
from sim.scenario.architecture import AckAfter, Architecture
from sim.scenario.security import RateLimitKind


class Gateway:
    """The gateway instances of one architecture (the app instances in a monolith)."""

    clients: ClientSide  # the clients register with the server (Server.attach)

    def __init__(
        self,
        kernel: Kernel,
        recorder: Recorder,
        costs: Costs,
        links: Links,
        presence: Presence,
        transport: ClientTransport,
        stations: list[Station],
        balancer: Balancer,
        defences: Defences,
        arch: Architecture,
        introspection: Introspection | None,
        auth_server: AuthServer | None,
        token_clock: TokenClock,
        accept: Callable[[SendCtx], None],
        delivery: Delivery,
    ) -> None:
        self.kernel = kernel
        self.after = kernel.after
        self.rec = recorder
        self.costs = costs
        self.net = links.net
        self._outbound = links.outbound
        self._downlink = links.downlink
        self._service_step = links.service_step
        self.presence_gw = presence.gw
        self.presence_epoch = presence.epoch
        self._connected = presence.connected
        self.stations = stations
        self.balancer = balancer
        self.defences = defences
        self.shed_queue_length = defences.shed_queue_length
        rl = arch.rate_limit
        self.buckets = (
            TokenBuckets(rl.rate_per_s, rl.burst) if rl.kind is RateLimitKind.TOKEN_BUCKET else None
        )
        mon = arch.monitoring
        self.detector = (
            Detector(mon.threshold_per_s, mon.window_s, mon.block_s, on_block=self._blocked)
            if mon.detector
            else None
        )
        self.introspection = introspection
        self.auth_server = auth_server
        self.token_clock = token_clock
        #: HTTP requests each carry the token: introspected one by one (WebSocket: at connect)
        self.http_auth = introspection is not None and transport.http
        self.ack_at_gateway = arch.ack_after is AckAfter.GATEWAY
        self._accept = accept
        self._drop_user = delivery.drop_user
        self._poll_arrives = delivery.poll_arrives
        self._sync_arrives = delivery.sync_arrives

    # ------------------------------------------------------------ sessions

    def open_session(self, ctx: ConnectCtx) -> None:
        """A client's connection set-up reaches the load balancer."""
        user = ctx[0]
        if self.net.cuts and self.net.cut("client", "gateway"):
            return  # the client's connect attempt times out
        if self.detector is not None and self.detector.is_blocked(user, self.kernel.now):
            self.after(ctx[2], self.clients.connect_failed, (user, ctx[1]))
            return
        self._authorized(user, self._open_session, ctx)

    def _open_session(self, ctx: ConnectCtx) -> None:
        user, epoch, rtt = ctx
        station = self.balancer.pick_connection(user)
        assert station is not None
        if not station.up:
            # the instance is down: the connection is refused, the client learns it an RTT later
            self.after(rtt, self.clients.connect_failed, (user, epoch))
            return
        if self.shed_queue_length and len(station.queue) >= self.shed_queue_length:
            # overloaded: new connections are refused too (a 503 before the handshake)
            self.defences.shed += 1
            self.rec.connects_shed += 1
            self.after(rtt, self.clients.connect_failed, (user, epoch))
            return
        station.submit(
            self.costs.connect(), self._session_opened, (user, epoch, station.index, rtt)
        )

    def _session_opened(self, ctx: tuple[int, int, int, float]) -> None:
        user, epoch, gw, rtt = ctx
        if self.clients.epoch[user] != epoch:
            return  # the client gave up on this connection before it was set up
        if self.net.cuts and self.net.cut("gateway", "client"):
            return  # the reply is lost: the client's connect attempt times out
        self.presence_gw[user] = gw
        self.presence_epoch[user] = epoch
        self.balancer.connections[gw] += 1
        if self.costs.client_zero:
            self.clients.session_ready((user, epoch, gw))
        else:
            self.after(rtt * 0.5, self.clients.session_ready, (user, epoch, gw))

    def close_session(self, user: int) -> None:
        """The client disconnected: presence and anything held for the connection go."""
        gw = self.presence_gw[user]
        if gw >= 0:
            self.balancer.connections[gw] -= 1
            self.presence_gw[user] = -1
        self._drop_user(user)

    def crashed(self, gw: int) -> None:
        """Every connection instance ``gw`` held is gone; its clients will reconnect."""
        held = np.frombuffer(self.presence_gw, dtype=np.int32) == gw
        for user in np.flatnonzero(held).tolist():
            self.close_session(user)
            self.clients.connection_lost(user)

    def _blocked(self, user: int, now: float) -> None:
        """The detector blocked ``user``: its connection is closed; reconnects are refused."""
        if self.presence_gw[user] >= 0:
            self.close_session(user)
            self.clients.connection_lost(user)

    # ------------------------------------------------------------ sends

    def receive_send(self, ctx: SendCtx) -> None:
        """A send frame (or HTTP POST) arrives at the sender's gateway."""
        if self.net.cuts and self.net.cut("client", "gateway"):
            return
        msg, epoch = ctx[0], ctx[1]
        user = msg.sender
        if self.presence_gw[user] < 0 or self.presence_epoch[user] != epoch:
            return  # the connection closed while the frame was in flight
        if self.http_auth:
            self._authorized(user, self._send_at_gateway, ctx)
        else:
            self._send_at_gateway(ctx)

    def _send_at_gateway(self, ctx: SendCtx) -> None:
        if self.costs.gateway_instant:
            self._gateway_send(ctx)
            return
        station = self.stations[ctx[2]]
        if self.shed_queue_length and len(station.queue) >= self.shed_queue_length:
            self._shed(ctx)
            return
        station.submit(self.costs.inbound(), self._gateway_send, ctx)

    def _shed(self, ctx: SendCtx) -> None:
        """Load shedding: the gateway's queue is too long; the send is refused before it
        queues (an early check, no worker time) and the error goes straight back."""
        self.defences.shed += 1
        self.rec.error(self.kernel.now)
        self._downlink(self.clients.send_rejected, ctx)

    def _gateway_send(self, ctx: SendCtx) -> None:
        msg = ctx[0]
        if self.detector is not None and self.detector.observe(msg.sender, self.kernel.now):
            self.rec.blocked_sends += 1
            self._refuse(ctx)
            return
        if self.buckets is not None and not self.buckets.take(msg.sender, self.kernel.now):
            self.rec.rate_limited += 1
            self._refuse(ctx)
            return
        if self.ack_at_gateway:
            self._outbound(ctx[2], self.clients.send_acked, ctx)
        self._service_step(self._accept, ctx, msg.conv)

    def _refuse(self, ctx: SendCtx) -> None:
        self.rec.error(self.kernel.now)
        self._outbound(ctx[2], self.clients.send_rejected, ctx)

    def receive_delivery_ack(self, ctx: DeliveryAck) -> None:
        """A client's delivery ack (a small control frame) costs its gateway some work."""
        user, epoch, gw = ctx
        if self.net.cuts and self.net.cut("client", "gateway"):
            return
        if self.presence_epoch[user] == epoch and self.presence_gw[user] == gw:
            self.stations[gw].submit(self.costs.control(), _ignore, None)

    # ------------------------------------------------------------ polls and syncs

    def receive_poll(self, ctx: UserEpoch) -> None:
        """A short or long poll arrives at the user's gateway; it queries the inbox."""
        if self.net.cuts and self.net.cut("client", "gateway"):
            return
        user, epoch = ctx
        if not self._connected(user, epoch):
            return
        if self.http_auth:
            self._authorized(user, self._poll_arrives, ctx)
        else:
            self._poll_arrives(ctx)

    def receive_sync(self, ctx: SyncCtx) -> None:
        """A sync request: ``(user, epoch, [(slot, cursor)], path, reconnect_s)``."""
        if self.net.cuts and self.net.cut("client", "gateway"):
            return
        user, epoch = ctx[0], ctx[1]
        if not self._connected(user, epoch):
            return
        if self.http_auth:
            self._authorized(user, self._sync_arrives, ctx)
        else:
            self._sync_arrives(ctx)

    # ------------------------------------------------------------ authentication

    def _authorized(self, user: int, fn: Callable[[Any], None], arg: Any) -> None:
        """OAuth introspection of the user's current token, then ``fn(arg)``; at once
        for other kinds of authentication (a JWT is verified in the request's cost)."""
        if self.introspection is None:
            fn(arg)
            return
        since = self.clients.online_since[user]
        self.introspection.check(self.token_clock.token_at(user, since, self.kernel.now), fn, arg)

    def refresh_token(self, user: int) -> None:
        """A client renews its access token: one request to the authorization server."""
        if self.auth_server is not None:
            self.rec.token_refreshes += 1
            self.auth_server.request(_ignore, None)


def _ignore(_: Any) -> None:
    return None


__all__ = ["Gateway"]
