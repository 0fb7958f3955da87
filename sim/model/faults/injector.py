"""Fault injection: the ``faults:`` section of a scenario, applied to a running model.

Each fault is a window: its target goes down at ``at_s`` and comes back at
``at_s + duration_s``; what each kind does is its class in
:mod:`sim.model.faults.kinds`, and what a crash destroys is decided by the
target itself (:class:`~sim.model.faults.kinds.Targets`).

Everything that happened is reported by :func:`fault_rows`: the injected
windows, and the events the systems recorded in reaction (ejections from the
load balancer, elections, rollbacks), as rows of ``Result.faults``.
"""

from __future__ import annotations

from typing import Any

from sim.core.kernel import Kernel
from sim.model.faults.kinds import FAULT_EFFECTS, FaultKindEffect, RandomCrash, Targets
from sim.model.server.assembly import Server
from sim.scenario.faults import Fault, FaultKind

FAULT_COLUMNS = ("at_s", "until_s", "kind", "target", "detail")


class FaultInjector:
    """Schedules every fault of a scenario on the model's kernel."""

    def __init__(
        self, faults: tuple[Fault, ...], kernel: Kernel, server: Server, zones: int = 1
    ) -> None:
        self.faults = faults
        self.kernel = kernel
        self.targets = Targets(server, kernel, zones)
        self.effects: dict[FaultKind, FaultKindEffect] = {
            kind: cls(self.targets, server.net, kernel) for kind, cls in FAULT_EFFECTS.items()
        }

    @property
    def log(self) -> list[tuple[float, str, str]]:
        """``(at_s, target, what)`` of what each crash did when it began (e.g. jobs lost)."""
        return self.targets.log

    @property
    def drawn(self) -> list[tuple[float, float, str]]:
        """Crash windows drawn by ``random_crash`` faults: ``(at_s, until_s, target)``."""
        effect = self.effects[FaultKind.RANDOM_CRASH]
        assert isinstance(effect, RandomCrash)
        return effect.drawn

    def start(self) -> None:
        for fault in self.faults:
            self.effects[fault.kind].schedule(fault)


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
        effect = FAULT_EFFECTS[fault.kind]
        if not effect.window_row:
            continue  # random crashes: their drawn windows are listed below
        rows.append(
            {
                "at_s": fault.at_s,
                "until_s": fault.at_s + fault.duration_s,
                "kind": fault.kind.value,
                "target": effect.label(fault),
                "detail": effect.detail(fault) or details.get(fault.target, ""),
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


__all__ = ["FAULT_COLUMNS", "FaultInjector", "fault_rows"]
