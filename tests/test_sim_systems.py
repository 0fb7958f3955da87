"""Which class implements each broker and store kind: one table per role, and no other
place in the simulator that picks an implementation by kind."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any, get_args

import pytest

from sim.components.durable import BrokerModel, StoreModel
from sim.components.station import Station
from sim.components.systems import BROKERS, STORES, build_broker, build_store
from sim.core.kernel import Kernel
from sim.scenario.architecture import Architecture
from sim.scenario.broker import BrokerKind
from sim.scenario.schema import Scenario
from sim.scenario.store import StoreKind

SIM = Path(__file__).resolve().parent.parent / "sim"

#: the smallest valid section of each kind (Cassandra's defaults need more than one node)
STORE_SECTIONS: dict[StoreKind, dict[str, Any]] = {
    StoreKind.SINGLE: {},
    StoreKind.CASSANDRA: {"nodes": 3},
    StoreKind.DYNAMODB: {},
    StoreKind.MONGODB: {"nodes": 3},
}


def _schema_classes(section: str) -> dict[str, type]:
    """The schema's class for each kind of a section, from the discriminated union."""
    field = Architecture.model_fields[section]
    assert field.discriminator == "kind"
    return {str(cls.model_fields["kind"].default): cls for cls in get_args(field.annotation)}


def test_every_broker_kind_has_exactly_one_builder_and_one_schema_class() -> None:
    assert sorted(BROKERS) == sorted(BrokerKind)
    assert sorted(_schema_classes("broker")) == sorted(kind.value for kind in BrokerKind)


def test_every_store_kind_has_exactly_one_builder_and_one_schema_class() -> None:
    assert sorted(STORES) == sorted(StoreKind)
    assert sorted(_schema_classes("store")) == sorted(kind.value for kind in StoreKind)


@pytest.mark.parametrize("kind", list(StoreKind))
def test_each_store_kind_builds_from_its_own_section(kind: StoreKind) -> None:
    sc = Scenario.model_validate(
        {"architecture": {"store": {"kind": kind.value, **STORE_SECTIONS[kind]}}}
    )
    store = build_store(sc, Kernel(1), lambda: 0.0005, 0.0)
    assert isinstance(store, StoreModel)
    assert len(store.stations) == sc.architecture.store.nodes


@pytest.mark.parametrize("kind", list(BrokerKind))
def test_each_broker_kind_builds_from_its_own_section(kind: BrokerKind) -> None:
    sc = Scenario.model_validate({"architecture": {"broker": {"kind": kind.value}}})
    kernel = Kernel(1)
    consumers = [Station(kernel, "service", i, 2, 0.0) for i in range(2)]
    broker = build_broker(sc, kernel, lambda: 0.0005, 0.0, consumers)
    if kind is BrokerKind.NONE:
        assert broker is None
    else:
        assert isinstance(broker, BrokerModel)
        assert len(broker.stations) == sc.architecture.broker.nodes


def test_only_the_registry_picks_an_implementation_by_kind() -> None:
    """Outside the schema (sim/scenario) and the registry (sim/components/systems.py),
    no module of the simulator names a broker or store kind."""
    offenders = []
    for path in sorted(SIM.rglob("*.py")):
        relative = path.relative_to(SIM).as_posix()
        if relative.startswith("scenario/") or relative == "components/systems.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Name) and node.id in ("BrokerKind", "StoreKind"):
                offenders.append(f"{relative}:{node.lineno}")
            elif isinstance(node, ast.alias) and node.name in ("BrokerKind", "StoreKind"):
                offenders.append(f"{relative}:{node.name}")
    assert not offenders, f"kinds named outside the registry: {offenders}"
