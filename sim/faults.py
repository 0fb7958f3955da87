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

from sim.scenario import Fault, FaultKind

if TYPE_CHECKING:
    from sim.architecture import Server
    from sim.kernel import Kernel

FAULT_COLUMNS = ("at_s", "until_s", "kind", "target", "detail")


class FaultInjector:
    """Schedules every fault of a scenario on the model's kernel."""

    def __init__(self, faults: tuple[Fault, ...], kernel: Kernel, server: Server) -> None:
        self.faults = faults
        self.kernel = kernel
        self.server = server
        #: ``(at_s, what)`` of what each fault did when it began (e.g. jobs lost)
        self.log: list[tuple[float, str, str]] = []

    def start(self) -> None:
        for fault in self.faults:
            self.kernel.after(fault.at_s, self._begin, fault)
            self.kernel.after(fault.at_s + fault.duration_s, self._end, fault)

    def _resolve(self, fault: Fault) -> tuple[str, int]:
        tier, index = fault.target.split(".")
        if tier == "service" and self.server.costs.monolith:
            tier = "gateway"  # one process does both jobs
        return tier, int(index)

    def _begin(self, fault: Fault) -> None:
        if fault.kind is not FaultKind.CRASH:  # pragma: no cover - the schema allows crash only
            raise ValueError(f"unknown fault kind {fault.kind}")
        tier, index = self._resolve(fault)
        server = self.server
        if tier == "gateway":
            lost = server.gateways[index].crash()
            server.gateway_crashed(index)
            self.log.append((self.kernel.now, fault.target, f"{lost} jobs lost"))
        elif tier == "service":
            lost = server.services[index].crash()
            self.log.append((self.kernel.now, fault.target, f"{lost} jobs lost"))
        elif tier == "store":
            server.store.crash(index)
        else:
            assert server.broker is not None
            server.broker.crash(index)

    def _end(self, fault: Fault) -> None:
        tier, index = self._resolve(fault)
        server = self.server
        if tier == "gateway":
            server.gateways[index].recover()
        elif tier == "service":
            server.services[index].recover()
        elif tier == "store":
            server.store.recover(index)
        else:
            assert server.broker is not None
            server.broker.recover(index)


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
        rows.append(
            {
                "at_s": fault.at_s,
                "until_s": fault.at_s + fault.duration_s,
                "kind": fault.kind.value,
                "target": fault.target,
                "detail": details.get(fault.target, ""),
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
    rows.sort(key=lambda row: (row["at_s"], row["kind"] == "event"))
    return rows


__all__ = ["FAULT_COLUMNS", "FaultInjector", "fault_rows"]
