"""The server side of an architecture, built from a scenario: the message path.

A send travels client -> gateway (the instance holding the client's connection,
chosen by the load balancer when the session started) -> message service
(microservices: its own pool, one internal hop away; monolith: the same
process) -> store (the durability point) -> ack back to the sender, and fans
out to every other member: pushed to connected WebSocket clients, handed to a
held long poll, left for the next short poll, or kept in the store for
offline members, who sync from their cursors on reconnect.

Each step is a job on a :class:`~sim.components.station.Station`; network
hops are delays. The client side lives in :mod:`sim.model.clients`.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from sim.components.balancer import Balancer
from sim.components.inbox import Inbox
from sim.components.resilience import Defences, GuardedCall
from sim.components.security import (
    AuthServer,
    Detector,
    Introspection,
    TokenBuckets,
    TokenClock,
)
from sim.components.station import Station
from sim.components.systems import build_broker, build_store
from sim.core.kernel import Kernel, Timeouts
from sim.core.metrics import PATH_ONLINE, PATH_SYNC, Message, Recorder
from sim.model.costs import Costs
from sim.model.fault_guards import GuardedBroker, NetState, guard_broker, guard_store
from sim.scenario.architecture import AckAfter, InboxKind, TransportKind
from sim.scenario.faults import FaultKind
from sim.scenario.schema import Scenario
from sim.scenario.security import AuthKind, RateLimitKind
from sim.workload.population import Conversations

if TYPE_CHECKING:
    from sim.model.clients import Clients

#: a consumer whose store write failed tries again after this long
CONSUMER_RETRY_S = 0.1
#: with ``ack_after: gateway``, a write the store refused is tried again after this long
MEMORY_REWRITE_S = 0.1

#: context of one send attempt: (message, client epoch, gateway index, attempt number)
SendCtx = tuple[Message, int, int, int]


class Server:
    """Gateways, message service, store, presence and inboxes of one architecture."""

    def __init__(
        self,
        scenario: Scenario,
        kernel: Kernel,
        recorder: Recorder,
        convs: Conversations,
        costs: Costs,
    ) -> None:
        arch = scenario.architecture
        self.kernel = kernel
        self.after = kernel.after
        self.rec = recorder
        self.convs = convs
        self.costs = costs
        self.clients: Clients  # wired by sim.model.run
        #: partitions and link faults in force (set by sim.model.faults)
        self.net = NetState(kernel)
        links = {f.target for f in scenario.faults if f.kind is FaultKind.LINK}
        if "client" in links:
            costs.client_rtt = self.net.wrap_rtt(costs.client_rtt)
        if "internal" in links:
            costs.internal_oneway = self.net.wrap_oneway(costs.internal_oneway)
            costs.internal_oneway_s = None
        partitions = any(f.kind is FaultKind.PARTITION for f in scenario.faults)
        #: one-way internal delay when it is a constant, else -1 (sampled per hop)
        self._hop_s = costs.internal_oneway_s if costs.internal_oneway_s is not None else -1.0
        measure_from = scenario.run.warmup_s or 0.0
        gw_name = "app" if costs.monolith else "gateway"
        self.gateways = [
            Station(kernel, gw_name, i, arch.gateway.workers, measure_from)
            for i in range(arch.gateway.instances)
        ]
        self.services = (
            []
            if costs.monolith
            else [
                Station(kernel, "service", i, arch.service.workers, measure_from)
                for i in range(arch.service.instances)
            ]
        )
        hop = costs.internal_oneway
        self.store = build_store(scenario, kernel, hop, measure_from)
        self.store.lost = self.forget
        #: the message service instances, which also consume from the broker
        self.consumers = self.services or self.gateways
        self.broker = build_broker(scenario, kernel, hop, measure_from, self.consumers)
        if self.broker is not None:
            self.broker.consume = self.consume
            self.broker.lost = self.forget
        if partitions:
            self.store = guard_store(self.store, self.net)
            if self.broker is not None:
                self.broker = guard_broker(self.broker, self.net)
                assert isinstance(self.broker, GuardedBroker)
                self.broker.attach(self.consume)
        self._consumer_done: dict[int, list[Callable[[Message], None]]] = {}
        self.stations = [
            *self.gateways,
            *self.services,
            *self.store.stations,
            *(self.broker.stations if self.broker is not None else []),
        ]
        self.gateway_balancer = Balancer(arch.load_balancer, self.gateways, kernel, gw_name)
        self.service_balancer = Balancer(arch.load_balancer, self.services, kernel, "service")
        self.transport = arch.transport.kind
        self.long_poll_timeout_s = arch.transport.long_poll_timeout_s
        self.ack_at_gateway = arch.ack_after is AckAfter.GATEWAY
        self.ack_at_broker = arch.ack_after is AckAfter.BROKER
        self.store_timeout_s = arch.store.request_timeout_s
        self.broker_timeout_s = arch.broker.request_timeout_s
        self._store_timeouts = Timeouts(
            kernel, self.store_timeout_s, self._write_timeout, self._write_pending
        )
        self._broker_timeouts = Timeouts(
            kernel, self.broker_timeout_s, self._write_timeout, self._write_pending
        )
        #: messages older than this in an inbox queue or topic have expired
        self.retention_s = (
            math.inf if arch.offline.inbox is InboxKind.STORE else arch.offline.retention_s
        )
        self.sync_batch = arch.offline.sync_batch
        self.push_notifications = arch.offline.push
        users = scenario.workload.users
        # presence: which gateway holds a user's session, and for which client epoch
        self.presence_gw = array("i", [-1]) * users
        self.presence_epoch = array("i", [0]) * users
        # per conversation: next seq and the log of accepted messages (index seq - 1)
        self.next_seq = array("i", [1]) * convs.count
        self.log: dict[int, list[Message]] = {}
        # polling transports: messages waiting for a user's next poll, and held long polls
        self.pending: dict[int, list[tuple[Message, int]]] = {}
        self.held_polls: dict[int, int] = {}
        self._poll_ids = 0
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
        auth = arch.auth
        self.auth_stations = (
            []
            if auth.kind is AuthKind.NONE
            else [
                Station(kernel, "auth", i, auth.server.workers, measure_from)
                for i in range(auth.server.instances)
            ]
        )
        self.introspection = (
            Introspection(auth, kernel, self.auth_stations, hop, measure_from)
            if auth.kind is AuthKind.OAUTH_INTROSPECTION
            else None
        )
        self.auth_server: AuthServer | None = None
        if self.introspection is not None:
            self.auth_server = self.introspection.server
        elif self.auth_stations:
            self.auth_server = AuthServer(auth, kernel, self.auth_stations, hop)
        self.token_clock = TokenClock(auth.token_ttl_s)
        self.inbox = Inbox(scenario, kernel, hop)
        #: HTTP requests each carry the token: introspected one by one (WebSocket: at connect)
        self.http_auth = (
            self.introspection is not None and self.transport is not TransportKind.WEBSOCKET
        )
        self.stations.extend(self.auth_stations)
        #: circuit breakers, bulkheads, load shedding, degradation (sim.components.resilience)
        self.defences = Defences(
            arch.resilience,
            kernel,
            self.store_timeout_s,
            self.broker_timeout_s,
            self.broker is not None,
        )
        self.store_guard = self.defences.store
        self.broker_guard = self.defences.broker
        self.write_buffer = self.defences.buffer
        if self.write_buffer is not None:
            self.write_buffer.write = self._start_write
        self.shed_queue_length = self.defences.shed_queue_length

    # ------------------------------------------------------------ plumbing

    def _hop(self, fn: Callable[[Any], None], arg: Any) -> None:
        """An internal network hop between two server processes."""
        delay = self._hop_s if self._hop_s >= 0.0 else self.costs.internal_oneway()
        if delay > 0.0:
            self.after(delay, fn, arg)
        else:
            fn(arg)

    def _hops(self, count: int, fn: Callable[[Any], None], arg: Any) -> None:
        """Several internal hops in a row, with no queue between them."""
        if self._hop_s >= 0.0:
            delay = self._hop_s * count
        else:
            delay = sum(self.costs.internal_oneway() for _ in range(count))
        if delay > 0.0:
            self.after(delay, fn, arg)
        else:
            fn(arg)

    def _on_gateway(
        self, gw: int, cost_s: float, instant: bool, fn: Callable[[Any], None], arg: Any
    ) -> None:
        if instant:
            fn(arg)
        else:
            self.gateways[gw].submit(cost_s, fn, arg)

    def _service_step(self, fn: Callable[[Any], None], arg: Any, key: int) -> None:
        """Run the message service's part of a request (nothing extra in a monolith);
        ``key`` (the conversation, or the user) is what consistent hashing hashes."""
        if self.costs.monolith:
            fn(arg)
        elif self.net.cuts and self.net.cut("gateway", "service"):
            return
        elif self.costs.service_instant:
            self._hop(fn, arg)
        else:
            station = self.service_balancer.pick_request(key)
            assert station is not None
            self._hop(self._at_service, (station, fn, arg))

    def _at_service(self, job: tuple[Station, Callable[[Any], None], Any]) -> None:
        job[0].submit(self.costs.service(), job[1], job[2])

    def _downlink(self, fn: Callable[[Any], None], arg: Any) -> None:
        if self.costs.client_zero:
            fn(arg)
        else:
            self.after(self.costs.client_rtt() * 0.5, fn, arg)

    def _outbound(self, gw: int, fn: Callable[[Any], None], arg: Any) -> None:
        """A frame or reply leaves through gateway ``gw``, then crosses the client link."""
        costs = self.costs
        if self.net.cuts and self.net.cut("gateway", "client"):
            return
        if not costs.push_instant:
            self.gateways[gw].submit(costs.outbound(), self._downlink_after, (fn, arg))
        elif costs.client_zero:
            fn(arg)
        else:
            self.after(costs.client_rtt() * 0.5, fn, arg)

    def _downlink_after(self, pair: tuple[Callable[[Any], None], Any]) -> None:
        # _downlink, inlined: every frame a gateway sends ends here
        if self.costs.client_zero:
            pair[0](pair[1])
        else:
            self.after(self.costs.client_rtt() * 0.5, pair[0], pair[1])

    def _from_service_to_gateway(self, fn: Callable[[Any], None], arg: Any) -> None:
        """From the message service to a gateway: a hop, unless they are one process."""
        if self.costs.monolith:
            fn(arg)
        elif self.net.cuts and self.net.cut("service", "gateway"):
            return
        elif self._hop_s == 0.0:
            fn(arg)
        else:
            self._hop(fn, arg)

    # ------------------------------------------------------------ sessions

    def open_session(self, ctx: tuple[int, int, float]) -> None:
        """A client's connection set-up reaches the load balancer."""
        user = ctx[0]
        if self.net.cuts and self.net.cut("client", "gateway"):
            return  # the client's connect attempt times out
        if self.detector is not None and self.detector.is_blocked(user, self.kernel.now):
            self.after(ctx[2], self.clients.connect_failed, (user, ctx[1]))
            return
        self._authorized(user, self._open_session, ctx)

    def _open_session(self, ctx: tuple[int, int, float]) -> None:
        user, epoch, rtt = ctx
        station = self.gateway_balancer.pick_connection(user)
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
        self.gateway_balancer.connections[gw] += 1
        if self.costs.client_zero:
            self.clients.session_ready((user, epoch, gw))
        else:
            self.after(rtt * 0.5, self.clients.session_ready, (user, epoch, gw))

    def close_session(self, user: int) -> None:
        """The client disconnected: presence and anything held for the connection go."""
        gw = self.presence_gw[user]
        if gw >= 0:
            self.gateway_balancer.connections[gw] -= 1
            self.presence_gw[user] = -1
        self.pending.pop(user, None)
        self.held_polls.pop(user, None)

    def gateway_crashed(self, gw: int) -> None:
        """Every connection the instance held is gone; its clients will reconnect."""
        held = np.frombuffer(self.presence_gw, dtype=np.int32) == gw
        for user in np.flatnonzero(held).tolist():
            self.close_session(user)
            self.clients.connection_lost(user)

    def _connected(self, user: int, epoch: int) -> bool:
        return self.presence_gw[user] >= 0 and self.presence_epoch[user] == epoch

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
        station = self.gateways[ctx[2]]
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

    def _blocked(self, user: int, now: float) -> None:
        """The detector blocked ``user``: its connection is closed; reconnects are refused."""
        if self.presence_gw[user] >= 0:
            self.close_session(user)
            self.clients.connection_lost(user)

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

    def _accept(self, ctx: SendCtx) -> None:
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
            self._fan_out(msg)
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
        self._fan_out(msg)

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

    # ------------------------------------------------------------ fan-out

    def _fan_out(self, msg: Message) -> None:
        members, slots = self.convs.members_and_slots(msg.conv)
        sender = msg.sender
        transport = self.transport
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
            if transport is TransportKind.WEBSOCKET:
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

    # ------------------------------------------------------------ polls and syncs

    def receive_poll(self, ctx: tuple[int, int]) -> None:
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

    def _poll_arrives(self, ctx: tuple[int, int]) -> None:
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

    def _poll_at_gateway(self, ctx: tuple[int, int]) -> None:
        self._service_step(self._poll_read, ctx, ctx[0])

    def _poll_read(self, ctx: tuple[int, int]) -> None:
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

    def _poll_at_store(self, ctx: tuple[int, int]) -> None:
        self.store.read(ctx[0], self._poll_read_done, self._poll_read_failed, ctx)

    def _read_guarded(self, call: GuardedCall) -> None:
        """A store read for a poll or a sync (keyed by the user), through the guard."""
        self.store.read(call.arg[0], call.ok, call.error, call.arg)

    def _poll_read_failed(self, ctx: tuple[int, int]) -> None:
        # the store could not answer: the poll gets an empty reply
        self._hops(1 if self.costs.monolith else 2, self._poll_failed_answer, ctx)

    def _poll_failed_answer(self, ctx: tuple[int, int]) -> None:
        user, epoch = ctx
        if self._connected(user, epoch):
            if self.defences.cache:
                # serve_reads_from_cache: what waits for the user is in the service's memory
                self.defences.cache_reads += 1
                self._poll_answer(ctx)
                return
            self._reply_poll((user, epoch, []))

    def _poll_read_done(self, ctx: tuple[int, int]) -> None:
        # store -> service -> gateway: the reply is composed on arrival at the gateway
        self._hops(1 if self.costs.monolith else 2, self._poll_answer, ctx)

    def _poll_answer(self, ctx: tuple[int, int]) -> None:
        user, epoch = ctx
        if not self._connected(user, epoch):
            return
        batch = self.pending.pop(user, None)
        if batch or self.transport is TransportKind.SHORT_POLLING:
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

    def _reply_poll(self, ctx: tuple[int, int, list[tuple[Message, int]]]) -> None:
        user = ctx[0]
        gw = self.presence_gw[user]
        if gw < 0:
            return
        self._outbound(gw, self.clients.poll_reply, ctx)

    def receive_sync(self, ctx: tuple[int, int, list[tuple[int, int]], int, float]) -> None:
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

    def _sync_arrives(self, ctx: tuple[int, int, list[tuple[int, int]], int, float]) -> None:
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

    def _sync_failed_answer(self, ctx: tuple[int, int, list[tuple[int, int]], int, float]) -> None:
        user, epoch = ctx[0], ctx[1]
        if self._connected(user, epoch):
            if self.defences.cache:
                self._sync_from_cache(ctx)
                return
            self.rec.sync_errors += 1
            self._outbound(self.presence_gw[user], self.clients.sync_failed, ctx)

    def _sync_from_cache(self, ctx: tuple[int, int, list[tuple[int, int]], int, float]) -> None:
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

    def _sync_answer(self, ctx: tuple[int, int, list[tuple[int, int]], int, float]) -> None:
        user, epoch, cursors, path, reconnect_s = ctx
        if not self._connected(user, epoch):
            return
        slot_conv = self.convs.slot_conv
        batch: list[tuple[Message, int]] = []
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


def _ignore(_: Any) -> None:
    return None


__all__ = ["SendCtx", "Server"]
