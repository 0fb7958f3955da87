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

    def pick_connection(self) -> Station:
        """Instance for a new long-lived connection."""
        if self.policy is BalancerPolicy.LEAST_CONNECTIONS and len(self.stations) > 1:
            counts = self.connections
            best = min(range(len(counts)), key=counts.__getitem__)
            return self.stations[best]
        return self._round_robin()

    def pick_request(self) -> Station:
        """Instance for one request (least connections means least outstanding requests)."""
        if self.policy is BalancerPolicy.LEAST_CONNECTIONS and len(self.stations) > 1:
            return min(self.stations, key=lambda s: s.outstanding)
        return self._round_robin()
