"""The links inside the server side and down to the clients: who is one hop from whom.

A request reaches the message service one internal hop from its gateway
(microservices; none in a monolith, where they are one process), the store or
broker one hop further; a frame for a client is processed by its gateway, then
crosses the client link. Partitions in force (:class:`~sim.model.faults.guards.NetState`)
cut links: a frame on a cut link is dropped and its sender times out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sim.components.balancer import Balancer
from sim.components.station import Station
from sim.core.kernel import Kernel
from sim.model.costs import Costs
from sim.model.faults.guards import NetState

Callback = Callable[[Any], None]


class Links:
    """Hops between gateways, message service and stores, and the client downlink."""

    def __init__(
        self,
        kernel: Kernel,
        costs: Costs,
        net: NetState,
        gateways: list[Station],
        service_balancer: Balancer,
    ) -> None:
        self.after = kernel.after
        self.costs = costs
        self.net = net
        self.gateways = gateways
        self.service_balancer = service_balancer
        #: one-way internal delay when it is a constant, else -1 (sampled per hop)
        self.hop_s = costs.internal_oneway_s if costs.internal_oneway_s is not None else -1.0

    def hop(self, fn: Callback, arg: Any) -> None:
        """An internal network hop between two server processes."""
        delay = self.hop_s if self.hop_s >= 0.0 else self.costs.internal_oneway()
        if delay > 0.0:
            self.after(delay, fn, arg)
        else:
            fn(arg)

    def hops(self, count: int, fn: Callback, arg: Any) -> None:
        """Several internal hops in a row, with no queue between them."""
        if self.hop_s >= 0.0:
            delay = self.hop_s * count
        else:
            delay = sum(self.costs.internal_oneway() for _ in range(count))
        if delay > 0.0:
            self.after(delay, fn, arg)
        else:
            fn(arg)

    def on_gateway(self, gw: int, cost_s: float, instant: bool, fn: Callback, arg: Any) -> None:
        """Work of ``cost_s`` on gateway ``gw`` (none when the gateway is instantaneous)."""
        if instant:
            fn(arg)
        else:
            self.gateways[gw].submit(cost_s, fn, arg)

    def service_step(self, fn: Callback, arg: Any, key: int) -> None:
        """Run the message service's part of a request (nothing extra in a monolith);
        ``key`` (the conversation, or the user) is what consistent hashing hashes."""
        if self.costs.monolith:
            fn(arg)
        elif self.net.cuts and self.net.cut("gateway", "service"):
            return
        elif self.costs.service_instant:
            self.hop(fn, arg)
        else:
            station = self.service_balancer.pick_request(key)
            assert station is not None
            self.hop(self._at_service, (station, fn, arg))

    def _at_service(self, job: tuple[Station, Callback, Any]) -> None:
        job[0].submit(self.costs.service(), job[1], job[2])

    def downlink(self, fn: Callback, arg: Any) -> None:
        """Straight down the client link (no gateway work: an early refusal)."""
        if self.costs.client_zero:
            fn(arg)
        else:
            self.after(self.costs.client_rtt() * 0.5, fn, arg)

    def outbound(self, gw: int, fn: Callback, arg: Any) -> None:
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

    def _downlink_after(self, pair: tuple[Callback, Any]) -> None:
        # downlink, inlined: every frame a gateway sends ends here
        if self.costs.client_zero:
            pair[0](pair[1])
        else:
            self.after(self.costs.client_rtt() * 0.5, pair[0], pair[1])

    def service_to_gateway(self, fn: Callback, arg: Any) -> None:
        """From the message service to a gateway: a hop, unless they are one process."""
        if self.costs.monolith:
            fn(arg)
        elif self.net.cuts and self.net.cut("service", "gateway"):
            return
        elif self.hop_s == 0.0:
            fn(arg)
        else:
            self.hop(fn, arg)


__all__ = ["Links"]
