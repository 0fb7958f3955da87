"""Fault injection: the ``faults:`` section of a scenario, applied to a running model.

Each fault is a window: its target goes down at ``at_s`` and comes back at
``at_s + duration_s``. What a crash destroys is decided by the target itself:

* ``gateway.N``: the instance's queued and in-service work is lost and every
  connection it held drops; clients notice and reconnect with backoff (to
  another instance, if the load balancer routes them elsewhere: with health
  checks it stops choosing the dead one after a few failed checks; without, it
  keeps sending connections that are refused);
* ``service.N``: the instance's work in progress is lost (senders time out and
  retry) and, with a broker, the records it was consuming wait for the broker to
  notice (see each broker);
* ``store.N`` and ``broker.N``: a node of that system; each system decides what
  it loses and how it carries on (an election, hinted handoff, a rollback).

In a monolith, ``service.N`` is the same process as ``gateway.N``.

Everything that happened is reported by :func:`fault_rows`: the injected
windows, and the events the systems recorded in reaction (ejections from the
load balancer, elections, rollbacks), as rows of ``Result.faults``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sim.model.fault_guards import partition_pairs
from sim.scenario.faults import Fault, FaultKind

if TYPE_CHECKING:
    from sim.components.station import Station
    from sim.core.kernel import Kernel
    from sim.model.server import Server

FAULT_COLUMNS = ("at_s", "until_s", "kind", "target", "detail")


class FaultInjector:
    """Schedules every fault of a scenario on the model's kernel."""

    def __init__(
        self, faults: tuple[Fault, ...], kernel: Kernel, server: Server, zones: int = 1
    ) -> None:
        self.faults = faults
        self.kernel = kernel
        self.server = server
        self.zones = zones
        #: ``(at_s, target, what)`` of what each fault did when it began (e.g. jobs lost)
        self.log: list[tuple[float, str, str]] = []
        #: crash windows drawn by ``random_crash`` faults: ``(at_s, until_s, target)``
        self.drawn: list[tuple[float, float, str]] = []
        self._partitions: list[set[tuple[str, str]]] = []

    def start(self) -> None:
        for fault in self.faults:
            if fault.kind is FaultKind.RANDOM_CRASH:
                self._draw_random(fault)
                continue
            self.kernel.after(fault.at_s, self._begin, fault)
            self.kernel.after(fault.at_s + fault.duration_s, self._end, fault)

    # ------------------------------------------------------------ targets

    def _units(self, target: str) -> list[tuple[str, int]]:
        """The instances and nodes a target names: ``(tier, index)`` pairs."""
        server = self.server
        counts = {
            "gateway": len(server.gateways),
            "service": len(server.services) if server.services else len(server.gateways),
            "store": len(server.store.stations),
            "broker": len(server.broker.stations) if server.broker is not None else 0,
        }
        if target.startswith("zone."):
            zone = int(target.split(".")[1])
            units = []
            for tier, count in counts.items():
                if tier == "service" and not server.services:
                    continue  # a monolith's service is its gateway process
                if tier in ("store", "broker") and self._managed(tier):
                    continue  # a managed service (SQS, DynamoDB) spans every zone
                units += [(tier, i) for i in range(count) if i % self.zones == zone]
            return units
        tier, _, index = target.partition(".")
        if tier == "service" and not server.services:
            tier = "gateway"  # one process does both jobs
        if index:
            return [(tier, int(index))]
        return [(tier, i) for i in range(counts[tier])]

    def _managed(self, tier: str) -> bool:
        system = self.server.store if tier == "store" else self.server.broker
        return bool(getattr(system, "managed", False))

    def _station(self, tier: str, index: int) -> Station:
        server = self.server
        if tier == "gateway":
            return server.gateways[index]
        if tier == "service":
            return server.services[index]
        if tier == "store":
            return server.store.stations[index]
        assert server.broker is not None
        return server.broker.stations[index]

    def _crash(self, tier: str, index: int, target: str) -> None:
        server = self.server
        if tier == "gateway":
            lost = server.gateways[index].crash()
            server.gateway_crashed(index)
            self.log.append((self.kernel.now, target, f"{lost} jobs lost"))
        elif tier == "service":
            lost = server.services[index].crash()
            self.log.append((self.kernel.now, target, f"{lost} jobs lost"))
        elif tier == "store":
            server.store.crash(index)
        else:
            assert server.broker is not None
            server.broker.crash(index)

    def _recover(self, tier: str, index: int) -> None:
        server = self.server
        if tier in ("gateway", "service"):
            self._station(tier, index).recover()
        elif tier == "store":
            server.store.recover(index)
        else:
            assert server.broker is not None
            server.broker.recover(index)

    # ------------------------------------------------------------ windows

    def _begin(self, fault: Fault) -> None:
        kind = fault.kind
        net = self.server.net
        if kind is FaultKind.PARTITION:
            assert fault.between is not None
            pairs = partition_pairs(fault.between, fault.one_way)
            self._partitions.append(pairs)
            net.cuts = set().union(*self._partitions)
        elif kind is FaultKind.LINK:
            if fault.target == "client":
                net.client_delay_s, net.client_loss = fault.delay_s, fault.loss
            else:
                net.internal_delay_s, net.internal_loss = fault.delay_s, fault.loss
        else:
            for tier, index in self._units(fault.target):
                if kind is FaultKind.SLOW:
                    self._station(tier, index).factor = fault.factor
                elif kind is FaultKind.PAUSE:
                    self._station(tier, index).pause(fault.duration_s)
                else:  # crash, zone outage
                    self._crash(tier, index, fault.target)

    def _end(self, fault: Fault) -> None:
        kind = fault.kind
        net = self.server.net
        if kind is FaultKind.PARTITION:
            assert fault.between is not None
            self._partitions.remove(partition_pairs(fault.between, fault.one_way))
            net.cuts = set().union(*self._partitions) if self._partitions else set()
        elif kind is FaultKind.LINK:
            if fault.target == "client":
                net.client_delay_s, net.client_loss = 0.0, 0.0
            else:
                net.internal_delay_s, net.internal_loss = 0.0, 0.0
        elif kind is FaultKind.SLOW:
            for tier, index in self._units(fault.target):
                self._station(tier, index).factor = 1.0
        elif kind is FaultKind.PAUSE:
            return  # the stations resume by themselves
        else:
            for tier, index in self._units(fault.target):
                self._recover(tier, index)

    def _draw_random(self, fault: Fault) -> None:
        """Alternating up and down times per instance, exponential with means MTBF, MTTR."""
        end = fault.at_s + fault.duration_s
        for tier, index in self._units(fault.target):
            name = f"{tier}.{index}"
            rng = self.kernel.streams.generator(f"faults.random.{name}")
            t = fault.at_s
            while True:
                t += float(rng.exponential(fault.mtbf_s))
                if t >= end:
                    break
                repair = float(rng.exponential(fault.mttr_s))
                until = min(t + repair, end)
                self.drawn.append((t, until, name))
                self.kernel.after(t, self._random_down, (tier, index, name))
                self.kernel.after(until, self._random_up, (tier, index))
                t = until

    def _random_down(self, job: tuple[str, int, str]) -> None:
        self._crash(*job)

    def _random_up(self, job: tuple[str, int]) -> None:
        self._recover(*job)


def fault_rows(
    faults: tuple[Fault, ...], injector: FaultInjector | None, server: Server
) -> list[dict[str, Any]]:
    """Rows of ``Result.faults``: injected windows, then the systems' reactions.

    A reaction is an instant (``until_s == at_s``): an ejection from the load
    balancer, a leader election, a rollback.
    """
    rows: list[dict[str, Any]] = []
    details = {target: what for _, target, what in injector.log} if injector else {}
    for fault in faults:
        if fault.kind is FaultKind.RANDOM_CRASH:
            continue  # its drawn windows are listed below
        rows.append(
            {
                "at_s": fault.at_s,
                "until_s": fault.at_s + fault.duration_s,
                "kind": fault.kind.value,
                "target": _target_label(fault),
                "detail": _detail(fault) or details.get(fault.target, ""),
            }
        )
    for at_s, until_s, name in injector.drawn if injector else []:
        rows.append(
            {
                "at_s": at_s,
                "until_s": until_s,
                "kind": "crash",
                "target": name,
                "detail": "random_crash (MTBF/MTTR)",
            }
        )
    for balancer in (server.gateway_balancer, server.service_balancer):
        for ejected_s, readmitted_s, name in balancer.ejections:
            rows.append(
                {
                    "at_s": ejected_s,
                    "until_s": ejected_s,
                    "kind": "ejected",
                    "target": name,
                    "detail": "health checks took it out of rotation",
                }
            )
            if readmitted_s is not None:
                rows.append(
                    {
                        "at_s": readmitted_s,
                        "until_s": readmitted_s,
                        "kind": "readmitted",
                        "target": name,
                        "detail": "health checks passed again",
                    }
                )
    systems = [server.store] + ([server.broker] if server.broker is not None else [])
    for system in systems:
        for at_s, what in system.events:
            rows.append(
                {
                    "at_s": at_s,
                    "until_s": at_s,
                    "kind": "event",
                    "target": system.tier,
                    "detail": what,
                }
            )
    rows.extend(server.defences.fault_rows())  # circuit breaker state changes
    rows.sort(key=lambda row: (row["at_s"], row["kind"] == "event"))
    return rows


def _target_label(fault: Fault) -> str:
    if fault.kind is FaultKind.PARTITION and fault.between is not None:
        arrow = " -> " if fault.one_way else " | "
        return "+".join(fault.between[0]) + arrow + "+".join(fault.between[1])
    return fault.target


def _detail(fault: Fault) -> str:
    if fault.kind is FaultKind.SLOW:
        return f"service times x{fault.factor:g}"
    if fault.kind is FaultKind.LINK:
        return f"+{fault.delay_s * 1000:g} ms, loss {fault.loss:.0%}"
    if fault.kind is FaultKind.PARTITION:
        return "one way" if fault.one_way else "both ways"
    return ""


__all__ = ["FAULT_COLUMNS", "FaultInjector", "fault_rows"]
