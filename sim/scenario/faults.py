"""The faults section: crashes, slowdowns, pauses, partitions, degraded links, zone outages."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, model_validator

from sim.scenario.section import Section


class FaultKind(StrEnum):
    CRASH = "crash"
    SLOW = "slow"
    PAUSE = "pause"
    PARTITION = "partition"
    LINK = "link"
    ZONE_OUTAGE = "zone_outage"
    RANDOM_CRASH = "random_crash"


#: what a fault can name: an instance or node (``store.2``), a whole tier (``gateway``),
#: a zone (``zone.1``), or a link (``client``, ``internal``)
TIERS = ("gateway", "service", "store", "broker")


class Fault(Section):
    """A fault window from ``at_s`` for ``duration_s``.

    ``crash``: ``target`` (``gateway.0``, ``service.1``, ``store.2``, ``broker.0``, or a
    whole tier: ``gateway``) is down and loses what it had not made durable.
    ``slow``: the target's service times are multiplied by ``factor``.
    ``pause``: the target stops working (a stop-the-world garbage collection): nothing
    is lost, work resumes when the pause ends.
    ``partition``: frames between the tiers of ``between[0]`` and those of
    ``between[1]`` (tiers: client, gateway, service, store, broker) are dropped, both
    ways, or only from the first group to the second with ``one_way``.
    ``link``: frames on the ``client`` link (every client's) or the ``internal`` network
    take ``delay_s`` longer and are dropped with probability ``loss``.
    ``zone_outage``: every instance and node of zone ``target`` (``zone.1``) crashes.
    ``random_crash``: each instance of the tier ``target`` fails and is repaired again
    and again, with exponential times between failures (mean ``mtbf_s``) and to repair
    (mean ``mttr_s``), within the window.
    """

    at_s: float = Field(ge=0)
    kind: FaultKind
    target: str = Field(
        default="",
        pattern=r"^((gateway|service|store|broker)(\.\d+)?|zone\.\d+|client|internal|)$",
    )
    duration_s: float = Field(gt=0)
    factor: float = Field(default=10.0, gt=0, description="slow: service time multiplier")
    between: tuple[tuple[str, ...], tuple[str, ...]] | None = Field(
        default=None, description="partition: two groups of tiers"
    )
    one_way: bool = Field(default=False, description="partition: only first group -> second")
    delay_s: float = Field(default=0.0, ge=0, description="link: extra one-way delay")
    loss: float = Field(default=0.0, ge=0, le=1, description="link: probability a frame is lost")
    mtbf_s: float = Field(
        default=600.0, gt=0, description="random_crash: mean time between failures"
    )
    mttr_s: float = Field(default=60.0, gt=0, description="random_crash: mean time to repair")

    @model_validator(mode="after")
    def _fields_for_kind(self) -> Fault:
        kind = self.kind
        if kind is FaultKind.PARTITION:
            if self.between is None:
                raise ValueError("a partition needs between: [[tiers...], [tiers...]]")
            allowed = {"client", "gateway", "service", "store", "broker"}
            for group in self.between:
                unknown = [t for t in group if t not in allowed]
                if unknown or not group:
                    raise ValueError(
                        f"between: groups of tiers among {sorted(allowed)}, got {list(group)}"
                    )
        elif kind is FaultKind.LINK:
            if self.target not in ("client", "internal"):
                raise ValueError(
                    f"a link fault targets 'client' or 'internal', got {self.target!r}"
                )
        elif kind is FaultKind.ZONE_OUTAGE:
            if not self.target.startswith("zone."):
                raise ValueError(f"a zone outage targets 'zone.N', got {self.target!r}")
        elif kind is FaultKind.RANDOM_CRASH:
            if self.target not in TIERS:
                raise ValueError(
                    f"random_crash targets a whole tier ({', '.join(TIERS)}), got {self.target!r}"
                )
        elif (
            not self.target
            or self.target in ("client", "internal")
            or self.target.startswith("zone.")
        ):
            raise ValueError(
                f"a {kind.value} fault targets an instance (gateway.0), a node (store.1) or "
                f"a tier (service), got {self.target!r}"
            )
        return self


__all__ = ["TIERS", "Fault", "FaultKind"]
