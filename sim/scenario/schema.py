"""The scenario format: architecture + workload + faults + run, as a pydantic schema.

A scenario is validated once, when it is loaded; the engine then trusts its
types. Everything is immutable: change a scenario with
:func:`~sim.scenario.loader.with_overrides` (dotted paths,
``{"architecture.gateway.instances": 8}``) or ``model_copy``.

Each section has its own module: :mod:`sim.scenario.architecture` (with
:mod:`~sim.scenario.tier`, :mod:`~sim.scenario.security`,
:mod:`~sim.scenario.broker`, :mod:`~sim.scenario.store` and
:mod:`~sim.scenario.resilience`), :mod:`sim.scenario.workload`,
:mod:`sim.scenario.faults` and :mod:`sim.scenario.run`; this one holds the
checks that need more than one section, and finds the section a dotted path
leads to (for overrides and error messages).

Times are seconds, sizes bytes, rates per second; field names say so. Each
default's source is given in ``docs/parameters.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, get_args

from pydantic import BaseModel, model_validator
from pydantic.fields import FieldInfo

from sim.core.distributions import Distribution
from sim.scenario.architecture import Architecture, Style
from sim.scenario.faults import Fault, FaultKind
from sim.scenario.run import Run
from sim.scenario.section import Section
from sim.scenario.workload import Workload


class Scenario(Section):
    """One experiment: an architecture under a workload, with faults, for a run."""

    name: str = "scenario"
    description: str = ""
    architecture: Architecture = Architecture()
    workload: Workload = Workload()
    faults: tuple[Fault, ...] = ()
    run: Run = Run()

    @model_validator(mode="after")
    def _targets_exist(self) -> Scenario:
        arch = self.architecture
        sizes = {
            "gateway": arch.gateway.instances,
            "service": arch.gateway.instances
            if arch.style is Style.MONOLITH
            else arch.service.instances,
            "store": arch.store.nodes,
            "broker": arch.broker.nodes,
        }
        for i, fault in enumerate(self.faults):
            target = fault.target
            groups = fault.between or ((), ())
            if "broker" in groups[0] + groups[1] and sizes["broker"] == 0:
                raise ValueError(f"faults.{i}.between: there is no broker")
            if fault.kind is FaultKind.ZONE_OUTAGE:
                zone = int(target.split(".")[1])
                if zone >= arch.zones:
                    raise ValueError(
                        f"faults.{i}.target: {target!r} does not exist; architecture.zones "
                        f"is {arch.zones} (zones 0..{arch.zones - 1})"
                    )
                continue
            tier, _, index = target.partition(".")
            if tier not in sizes:
                continue
            if sizes[tier] == 0:
                raise ValueError(f"faults.{i}.target: {target!r}: there is no broker")
            if index and int(index) >= sizes[tier]:
                raise ValueError(
                    f"faults.{i}.target: {target!r} does not exist; {tier} has "
                    f"instances 0..{sizes[tier] - 1}"
                )
            skipped = self._instantaneous(tier, fault.kind)
            if skipped:
                raise ValueError(
                    f"faults.{i}.target: {target!r} is instantaneous ({skipped} is a "
                    f"constant 0, so its station is skipped) and a {fault.kind.value} there "
                    "would have no effect; give it a nonzero time"
                )
        return self

    def _instantaneous(self, tier: str, kind: FaultKind) -> str:
        """The setting that makes ``tier`` skip its stations, if a ``kind`` fault on it
        would therefore change nothing ("" otherwise). A crashed instantaneous gateway
        still closes its connections: only slowing or pausing it changes nothing."""
        arch = self.architecture
        if kind not in (FaultKind.CRASH, FaultKind.SLOW, FaultKind.PAUSE, FaultKind.RANDOM_CRASH):
            return ""
        if tier == "service" and arch.style is Style.MICROSERVICES:
            if _zero(arch.service.service_time_s):
                return "architecture.service.service_time_s"
        elif tier == "store":
            if arch.store.write_s.is_zero and arch.store.read_s.is_zero:
                return "architecture.store.write_s and read_s"
        elif tier == "gateway" and kind in (FaultKind.SLOW, FaultKind.PAUSE):
            gateway = arch.gateway
            # a monolith's gateway instances also do the service's work (sim.model.costs)
            service_too = arch.style is Style.MICROSERVICES or _zero(arch.service.service_time_s)
            if _zero(gateway.service_time_s) and _zero(gateway.push_time_s) and service_too:
                return "architecture.gateway.service_time_s and push_time_s"
        return ""


def _zero(dist: Distribution | None) -> bool:
    return dist is not None and dist.is_zero


def section_kinds(field: FieldInfo) -> dict[str, type[BaseModel]] | None:
    """The classes of a section that is one class per ``kind`` (broker, store), by kind."""
    if field.discriminator != "kind":
        return None
    return {
        str(member.model_fields["kind"].default): member for member in get_args(field.annotation)
    }


def field_model(field: FieldInfo) -> type[BaseModel] | None:
    """The section a field holds (None: a value, a list, a distribution, or a section of
    one class per kind, see :func:`section_kinds`)."""
    annotation = field.annotation
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def kinds_at(path: Sequence[str]) -> tuple[dict[str, type[BaseModel]], str] | None:
    """The classes by kind, and the default kind, of the section at ``path``, if it is
    one class per kind."""
    model: type[BaseModel] | None = Scenario
    for i, part in enumerate(path):
        if model is None or part not in model.model_fields:
            return None
        field = model.model_fields[part]
        if i == len(path) - 1:
            kinds = section_kinds(field)
            return None if kinds is None else (kinds, str(field.default.kind))
        model = field_model(field)
    return None


def json_schema() -> dict[str, Any]:
    """The JSON schema of the scenario format, for editors and validators."""
    schema = Scenario.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "msgsim scenario"
    return schema


__all__ = ["Scenario", "field_model", "json_schema", "kinds_at", "section_kinds"]
