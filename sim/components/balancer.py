"""Load balancers: which gateway instance gets a new connection, which service instance a request.

Connections are balanced when a session starts (a WebSocket, or the kept-alive
HTTP connection that polls ride on) and stay on their instance; requests between
tiers are balanced one by one.
"""

from __future__ import annotations

from sim.components.station import Station
from sim.scenario import BalancerPolicy


class Balancer:
    """Round robin, or least connections / least outstanding requests."""

    def __init__(self, policy: BalancerPolicy, stations: list[Station]) -> None:
        self.policy = policy
        self.stations = stations
        self.connections = [0] * len(stations)
        self._next = 0

    def _round_robin(self) -> Station:
        station = self.stations[self._next]
        self._next = (self._next + 1) % len(self.stations)
        return station

    def skip(self, count: int) -> None:
        """Advance round robin past ``count`` assignments made outside the balancer."""
        if self.stations:
            self._next = (self._next + count) % len(self.stations)

    def pick_connection(self) -> Station:
        """Instance for a new long-lived connection."""
        if self.policy is BalancerPolicy.LEAST_CONNECTIONS and len(self.stations) > 1:
            counts = self.connections
            return self.stations[counts.index(min(counts))]
        return self._round_robin()

    def pick_request(self) -> Station:
        """Instance for one request (least connections means least outstanding requests)."""
        if self.policy is BalancerPolicy.LEAST_CONNECTIONS and len(self.stations) > 1:
            loads = [s.busy + len(s.queue) for s in self.stations]
            return self.stations[loads.index(min(loads))]
        return self._round_robin()
