"""Build the store and the broker a scenario names, from one table per role.

The message path never looks at a kind: it talks to a
:class:`~sim.components.durable.StoreModel` and, when there is one, a
:class:`~sim.components.durable.BrokerModel`. Which class implements a kind is
written once, in :data:`STORES` and :data:`BROKERS`; each builder is called with
the scenario's section, whose class is the one of that kind (a
:class:`~sim.scenario.broker.KafkaConfig` for ``kafka``...).

A new system is one module under ``stores/`` or ``brokers/`` (a class
implementing :class:`~sim.components.durable.StoreModel` or
:class:`~sim.components.durable.BrokerModel`, see there), one entry here, and
one schema class in :mod:`sim.scenario.store` or :mod:`sim.scenario.broker`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sim.components.brokers.kafka import KafkaBroker
from sim.components.brokers.rabbitmq import RabbitMqBroker
from sim.components.brokers.sqs import SqsQueue
from sim.components.durable import BrokerModel, StoreModel
from sim.components.station import Station
from sim.components.stores.cassandra import CassandraStore
from sim.components.stores.dynamodb import DynamoDbStore
from sim.components.stores.mongodb import MongoDbStore
from sim.components.stores.single import SingleStore
from sim.core.kernel import Kernel
from sim.scenario.broker import BrokerKind
from sim.scenario.schema import Scenario
from sim.scenario.store import StoreKind

#: ``builder(spec, kernel, hop, measure_from_s)``: the store of a store section
StoreBuilder = Callable[[Any, Kernel, Callable[[], float], float], StoreModel]
#: ``builder(spec, kernel, hop, measure_from_s, consumers)``: the broker of a broker
#: section, or None for a section without one
BrokerBuilder = Callable[
    [Any, Kernel, Callable[[], float], float, Sequence[Station]], BrokerModel | None
]


def _no_broker(
    spec: Any,
    kernel: Kernel,
    hop: Callable[[], float],
    measure_from_s: float,
    consumers: Sequence[Station],
) -> None:
    """``kind: none``: the message service writes to the store itself."""
    return None


#: the class that implements each store kind
STORES: Mapping[StoreKind, StoreBuilder] = {
    StoreKind.SINGLE: SingleStore,
    StoreKind.CASSANDRA: CassandraStore,
    StoreKind.DYNAMODB: DynamoDbStore,
    StoreKind.MONGODB: MongoDbStore,
}

#: the class that implements each broker kind (one SQS class for both queue types)
BROKERS: Mapping[BrokerKind, BrokerBuilder] = {
    BrokerKind.NONE: _no_broker,
    BrokerKind.KAFKA: KafkaBroker,
    BrokerKind.RABBITMQ: RabbitMqBroker,
    BrokerKind.SQS: SqsQueue,
    BrokerKind.SQS_FIFO: SqsQueue,
}


def build_store(
    scenario: Scenario, kernel: Kernel, hop: Callable[[], float], measure_from_s: float
) -> StoreModel:
    spec = scenario.architecture.store
    return STORES[spec.kind](spec, kernel, hop, measure_from_s)


def build_broker(
    scenario: Scenario,
    kernel: Kernel,
    hop: Callable[[], float],
    measure_from_s: float,
    consumers: Sequence[Station],
) -> BrokerModel | None:
    spec = scenario.architecture.broker
    return BROKERS[spec.kind](spec, kernel, hop, measure_from_s, consumers)


__all__ = ["BROKERS", "STORES", "BrokerBuilder", "StoreBuilder", "build_broker", "build_store"]
