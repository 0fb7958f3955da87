"""The server side of an architecture, built from a scenario: the message path.

A send travels client -> gateway (the instance holding the client's connection,
chosen by the load balancer when the session started) -> message service
(microservices: its own pool, one internal hop away; monolith: the same
process) -> store or broker (the durability point) -> ack back to the sender,
and fans out to every other member: pushed to connected WebSocket clients,
handed to a held long poll, left for the next short poll, or kept in the store
for offline members, who sync from their cursors on reconnect.

:class:`Server` builds the stations, systems and defences and the three parts
of the path, one module each, as ``reference_impl`` splits them:
:class:`~sim.model.server.gateway.Gateway` (connections, presence, the checks every
request passes), :class:`~sim.model.server.service.MessageService` (accept, write,
seq, acks) and :class:`~sim.model.server.delivery.Delivery` (fan-out, polls, syncs),
joined by :class:`~sim.model.server.links.Links`. Each step is a job on a
:class:`~sim.components.station.Station`; network hops are delays. The client
side lives in :mod:`sim.model.client.clients` and meets this one through the typed
interface of :mod:`sim.model.protocol`.
"""

from __future__ import annotations

from sim.components.balancer import Balancer
from sim.components.inbox import Inbox
from sim.components.resilience.defences import Defences
from sim.components.security.auth import AuthServer
from sim.components.security.introspection import Introspection
from sim.components.security.tokens import TokenClock
from sim.components.station import Station
from sim.components.systems import build_broker, build_store
from sim.core.kernel import Kernel
from sim.core.metrics import Message, Recorder
from sim.model.costs import Costs
from sim.model.faults.guards import GuardedBroker, NetState, guard_broker, guard_store
from sim.model.protocol import ClientSide
from sim.model.server.delivery import Delivery
from sim.model.server.gateway import Gateway
from sim.model.server.links import Links
from sim.model.server.presence import Presence
from sim.model.server.service import MessageService
from sim.model.transport import ClientTransport
from sim.scenario.faults import FaultKind
from sim.scenario.schema import Scenario
from sim.scenario.security import AuthKind
from sim.workload.population import Conversations


class Server:
    """Gateways, message service, store, broker, presence and inboxes of one architecture.

    The client side calls :attr:`open_session`, :attr:`close_session`,
    :attr:`refresh_token` and the ``receive_*`` methods (the
    :class:`~sim.model.protocol.ServerSide` interface): they are the parts'
    own bound methods, so a frame costs no extra call for the split.
    """

    def __init__(
        self,
        scenario: Scenario,
        kernel: Kernel,
        recorder: Recorder,
        convs: Conversations,
        costs: Costs,
        transport: ClientTransport,
    ) -> None:
        arch = scenario.architecture
        #: partitions and link faults in force (set by sim.model.faults.injector)
        self.net = NetState(kernel)
        links = {f.target for f in scenario.faults if f.kind is FaultKind.LINK}
        if "client" in links:
            costs.client_rtt = self.net.wrap_rtt(costs.client_rtt)
        if "internal" in links:
            costs.internal_oneway = self.net.wrap_oneway(costs.internal_oneway)
            costs.internal_oneway_s = None
        partitions = any(f.kind is FaultKind.PARTITION for f in scenario.faults)
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
        raw_store = build_store(scenario, kernel, hop, measure_from)
        #: the message service instances, which also consume from the broker
        self.consumers = self.services or self.gateways
        raw_broker = build_broker(scenario, kernel, hop, measure_from, self.consumers)
        self.store = guard_store(raw_store, self.net) if partitions else raw_store
        self.broker = (
            guard_broker(raw_broker, self.net)
            if partitions and raw_broker is not None
            else raw_broker
        )
        self.stations = [
            *self.gateways,
            *self.services,
            *self.store.stations,
            *(self.broker.stations if self.broker is not None else []),
        ]
        self.gateway_balancer = Balancer(arch.load_balancer, self.gateways, kernel, gw_name)
        self.service_balancer = Balancer(arch.load_balancer, self.services, kernel, "service")
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
        #: whether clients renew access tokens with an authorization server
        self.issues_tokens = self.auth_server is not None
        self.inbox = Inbox(scenario, kernel, hop)
        self.stations.extend(self.auth_stations)
        #: circuit breakers, bulkheads, load shedding, degradation (sim.components.resilience)
        self.defences = Defences(
            arch.resilience,
            kernel,
            arch.store.request_timeout_s,
            arch.broker.request_timeout_s,
            self.broker is not None,
        )

        # the message path, in three parts
        self.presence = Presence(scenario.workload.users)
        self.presence_gw = self.presence.gw
        self.presence_epoch = self.presence.epoch
        self.links = Links(kernel, costs, self.net, self.gateways, self.service_balancer)
        #: per conversation, the accepted messages in seq order (index seq - 1)
        self.log: dict[int, list[Message]] = {}
        self.delivery = Delivery(
            kernel,
            recorder,
            convs,
            costs,
            self.links,
            self.presence,
            transport,
            arch.offline,
            self.log,
            self.store,
            self.inbox,
            self.defences,
        )
        self.service = MessageService(
            arch,
            kernel,
            recorder,
            costs,
            self.links,
            self.presence,
            self.store,
            self.broker,
            self.consumers,
            self.defences,
            self.log,
            convs.count,
            self.delivery.fan_out,
        )
        self.next_seq = self.service.next_seq
        raw_store.lost = self.service.forget
        if raw_broker is not None:
            raw_broker.consume = self.service.consume
            raw_broker.lost = self.service.forget
            if isinstance(self.broker, GuardedBroker):
                self.broker.attach(self.service.consume)
        self.gateway = Gateway(
            kernel,
            recorder,
            costs,
            self.links,
            self.presence,
            transport,
            self.gateways,
            self.gateway_balancer,
            self.defences,
            arch,
            self.introspection,
            self.auth_server,
            TokenClock(auth.token_ttl_s),
            self.service.accept,
            self.delivery,
        )
        self.detector = self.gateway.detector
        # the ServerSide interface: the parts' own methods
        gateway = self.gateway
        self.open_session = gateway.open_session
        self.close_session = gateway.close_session
        self.refresh_token = gateway.refresh_token
        self.receive_send = gateway.receive_send
        self.receive_delivery_ack = gateway.receive_delivery_ack
        self.receive_poll = gateway.receive_poll
        self.receive_sync = gateway.receive_sync

    def attach(self, clients: ClientSide) -> None:
        """The clients register: the parts that answer them learn where they are."""
        self.gateway.clients = clients
        self.service.clients = clients
        self.delivery.clients = clients

    def counters(self) -> dict[str, float]:
        """What the systems and defences count about themselves (whole run): each
        component's own ``counters()``, and the drops of stations and partitions."""
        counters = {**self.store.counters(), **self.inbox.counters()}
        if self.broker is not None:
            counters.update(self.broker.counters())
        if self.introspection is not None:
            counters["introspection_hit_ratio"] = self.introspection.hit_ratio
        counters["dropped_jobs"] = float(sum(s.dropped for s in self.stations))
        counters["partition_drops"] = float(self.net.dropped)
        counters["tcp_retransmissions"] = float(self.net.retransmissions)
        counters.update(self.defences.counters())
        return counters

    def parts(self) -> list[object]:
        """The objects of the message path, which refer to each other (what
        :meth:`sim.model.run.Model.release` takes apart)."""
        return [self.gateway, self.service, self.delivery, self.links]

    def gateway_crashed(self, gw: int) -> None:
        """Every connection gateway instance ``gw`` held is gone; its clients reconnect."""
        self.gateway.crashed(gw)


__all__ = ["Server"]
