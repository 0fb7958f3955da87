"""Build the store and the broker a scenario names.

One function per role, so that the message path never looks at a kind: it
talks to a :class:`~sim.components.durable.StoreModel` and, when there is one,
a :class:`~sim.components.durable.BrokerModel`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

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


def build_store(
    scenario: Scenario, kernel: Kernel, hop: Callable[[], float], measure_from_s: float
) -> StoreModel:
    spec = scenario.architecture.store
    if spec.kind is StoreKind.SINGLE:
        return SingleStore(spec, kernel, hop, measure_from_s)
    if spec.kind is StoreKind.CASSANDRA:
        return CassandraStore(spec, kernel, hop, measure_from_s)
    if spec.kind is StoreKind.DYNAMODB:
        return DynamoDbStore(spec, kernel, hop, measure_from_s)
    return MongoDbStore(spec, kernel, hop, measure_from_s)


def build_broker(
    scenario: Scenario,
    kernel: Kernel,
    hop: Callable[[], float],
    measure_from_s: float,
    consumers: Sequence[Station],
) -> BrokerModel | None:
    spec = scenario.architecture.broker
    if spec.kind is BrokerKind.NONE:
        return None
    if spec.kind is BrokerKind.KAFKA:
        return KafkaBroker(spec, kernel, hop, measure_from_s, consumers)
    if spec.kind is BrokerKind.RABBITMQ:
        return RabbitMqBroker(spec, kernel, hop, measure_from_s, consumers)
    return SqsQueue(spec, kernel, hop, measure_from_s, consumers)


__all__ = ["build_broker", "build_store"]
