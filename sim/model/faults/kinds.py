"""What each kind of fault does to a running model: one class per kind, in a registry.

A fault is a window: :meth:`FaultKindEffect.begin` at ``at_s``, :meth:`end` at
``at_s + duration_s`` (``random_crash`` draws its own windows instead). The
effects act through :class:`Targets`, which knows the instances and nodes a
target names and how each tier crashes and recovers.

To add a fault kind: a ``FaultKind`` value and its fields in the scenario
schema (with their checks), a subclass of :class:`FaultKindEffect` here
registered in :data:`FAULT_EFFECTS`, a row in ``docs/failures.md``, and a test
in ``tests/test_sim_faults.py`` that the fault does what it says and that the
run recovers after it.
"""

from __future__ import annotations

from typing import ClassVar

from sim.components.station import Station
from sim.core.kernel import Kernel
from sim.model.faults.guards import NetState, partition_pairs
from sim.model.server.assembly import Server
from sim.scenario.faults import Fault, FaultKind


class Targets:
    """The instances and nodes of a server that faults name: ``tier.N``, ``tier``
    (every unit of the tier) or ``zone.Z``, and how each crashes and recovers.

    What a crash destroys is decided by the target itself:

    * ``gateway.N``: the instance's queued and in-service work is lost and every
      connection it held drops; clients notice and reconnect with backoff;
    * ``service.N``: the instance's work in progress is lost (senders time out
      and retry); with a broker, the records it was consuming wait for the
      broker to notice (see each broker);
    * ``store.N`` and ``broker.N``: a node of that system; each system decides
      what it loses and how it carries on (an election, hinted handoff, a rollback).

    In a monolith, ``service.N`` is the same process as ``gateway.N``.
    """

    def __init__(self, server: Server, kernel: Kernel, zones: int) -> None:
        self.server = server
        self.kernel = kernel
        self.zones = zones
        #: ``(at_s, target, what)`` of what each crash did when it began (e.g. jobs lost)
        self.log: list[tuple[float, str, str]] = []

    def units(self, target: str) -> list[tuple[str, int]]:
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

    def station(self, tier: str, index: int) -> Station:
        server = self.server
        if tier == "gateway":
            return server.gateways[index]
        if tier == "service":
            return server.services[index]
        if tier == "store":
            return server.store.stations[index]
        assert server.broker is not None
        return server.broker.stations[index]

    def crash(self, tier: str, index: int, target: str) -> None:
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

    def recover(self, tier: str, index: int) -> None:
        server = self.server
        if tier in ("gateway", "service"):
            self.station(tier, index).recover()
        elif tier == "store":
            server.store.recover(index)
        else:
            assert server.broker is not None
            server.broker.recover(index)


class FaultKindEffect:
    """The effect of one kind of fault. Extension points: :meth:`begin` and
    :meth:`end` (or :meth:`schedule` for a kind that draws its own windows), and
    :meth:`label` and :meth:`detail` for its row in ``Result.faults``."""

    kind: ClassVar[FaultKind]
    #: the fault's window is a row of ``Result.faults`` (a kind that draws its own
    #: windows lists those instead)
    window_row: ClassVar[bool] = True

    def __init__(self, targets: Targets, net: NetState, kernel: Kernel) -> None:
        self.targets = targets
        self.net = net
        self.kernel = kernel

    def schedule(self, fault: Fault) -> None:
        """Put the fault's window on the kernel."""
        self.kernel.after(fault.at_s, self.begin, fault)
        self.kernel.after(fault.at_s + fault.duration_s, self.end, fault)

    def begin(self, fault: Fault) -> None:
        raise NotImplementedError

    def end(self, fault: Fault) -> None:
        raise NotImplementedError

    @staticmethod
    def label(fault: Fault) -> str:
        """What the fault's row calls its target."""
        return fault.target

    @staticmethod
    def detail(fault: Fault) -> str:
        """What the fault's row says of it (else what the crash did, if anything)."""
        return ""


class Crash(FaultKindEffect):
    """The target's instances or nodes crash, and restart when the window ends."""

    kind = FaultKind.CRASH

    def begin(self, fault: Fault) -> None:
        for tier, index in self.targets.units(fault.target):
            self.targets.crash(tier, index, fault.target)

    def end(self, fault: Fault) -> None:
        for tier, index in self.targets.units(fault.target):
            self.targets.recover(tier, index)


class ZoneOutage(Crash):
    """Every unit of one availability zone crashes (managed services span the zones)."""

    kind = FaultKind.ZONE_OUTAGE


class Slow(FaultKindEffect):
    """Service times of the target's stations are multiplied by ``factor``."""

    kind = FaultKind.SLOW

    def begin(self, fault: Fault) -> None:
        for tier, index in self.targets.units(fault.target):
            self.targets.station(tier, index).factor = fault.factor

    def end(self, fault: Fault) -> None:
        for tier, index in self.targets.units(fault.target):
            self.targets.station(tier, index).factor = 1.0

    @staticmethod
    def detail(fault: Fault) -> str:
        return f"service times x{fault.factor:g}"


class Pause(FaultKindEffect):
    """The target's stations stop serving (a GC pause, a frozen VM), then resume."""

    kind = FaultKind.PAUSE

    def begin(self, fault: Fault) -> None:
        for tier, index in self.targets.units(fault.target):
            self.targets.station(tier, index).pause(fault.duration_s)

    def end(self, fault: Fault) -> None:
        return  # the stations resume by themselves


class Partition(FaultKindEffect):
    """Frames between two groups of tiers are dropped (one way, or both)."""

    kind = FaultKind.PARTITION

    def __init__(self, targets: Targets, net: NetState, kernel: Kernel) -> None:
        super().__init__(targets, net, kernel)
        self._partitions: list[set[tuple[str, str]]] = []

    def begin(self, fault: Fault) -> None:
        assert fault.between is not None
        pairs = partition_pairs(fault.between, fault.one_way)
        self._partitions.append(pairs)
        self.net.cuts = set().union(*self._partitions)

    def end(self, fault: Fault) -> None:
        assert fault.between is not None
        self._partitions.remove(partition_pairs(fault.between, fault.one_way))
        self.net.cuts = set().union(*self._partitions) if self._partitions else set()

    @staticmethod
    def label(fault: Fault) -> str:
        if fault.between is None:
            return fault.target
        arrow = " -> " if fault.one_way else " | "
        return "+".join(fault.between[0]) + arrow + "+".join(fault.between[1])

    @staticmethod
    def detail(fault: Fault) -> str:
        return "one way" if fault.one_way else "both ways"


class Link(FaultKindEffect):
    """The client link or the internal network gains delay and loss (TCP retransmits)."""

    kind = FaultKind.LINK

    def begin(self, fault: Fault) -> None:
        if fault.target == "client":
            self.net.client_delay_s, self.net.client_loss = fault.delay_s, fault.loss
        else:
            self.net.internal_delay_s, self.net.internal_loss = fault.delay_s, fault.loss

    def end(self, fault: Fault) -> None:
        if fault.target == "client":
            self.net.client_delay_s, self.net.client_loss = 0.0, 0.0
        else:
            self.net.internal_delay_s, self.net.internal_loss = 0.0, 0.0

    @staticmethod
    def detail(fault: Fault) -> str:
        return f"+{fault.delay_s * 1000:g} ms, loss {fault.loss:.0%}"


class RandomCrash(FaultKindEffect):
    """Each unit alternates up and down times, exponential with means MTBF and MTTR."""

    kind = FaultKind.RANDOM_CRASH
    window_row = False

    def __init__(self, targets: Targets, net: NetState, kernel: Kernel) -> None:
        super().__init__(targets, net, kernel)
        #: the drawn crash windows: ``(at_s, until_s, target)``
        self.drawn: list[tuple[float, float, str]] = []

    def schedule(self, fault: Fault) -> None:
        end = fault.at_s + fault.duration_s
        for tier, index in self.targets.units(fault.target):
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
                self.kernel.after(t, self._down, (tier, index, name))
                self.kernel.after(until, self._up, (tier, index))
                t = until

    def _down(self, job: tuple[str, int, str]) -> None:
        self.targets.crash(*job)

    def _up(self, job: tuple[str, int]) -> None:
        self.targets.recover(*job)


#: the effect of each fault kind
FAULT_EFFECTS: dict[FaultKind, type[FaultKindEffect]] = {
    cls.kind: cls for cls in (Crash, ZoneOutage, Slow, Pause, Partition, Link, RandomCrash)
}


__all__ = ["FAULT_EFFECTS", "FaultKindEffect", "Targets"]
