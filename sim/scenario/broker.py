"""The broker section: the message broker between the message service and its consumers.

The message service publishes each accepted message, keyed by conversation;
consumers (on the message service tier) write it to the store and fan it out.

``architecture.broker`` is one class per kind, told apart by ``kind`` (the
discriminated union :data:`Broker`): :class:`NoBroker`, :class:`KafkaConfig`,
:class:`RabbitMqConfig`, :class:`SqsConfig` and :class:`SqsFifoConfig`. Each has
only the fields its system has, so a field of another kind (``acks`` on a
RabbitMQ broker) is refused when the scenario is loaded. A section without
``kind`` has the default kind, ``none``.

A new broker kind is a value of :class:`BrokerKind`, a class here (deriving
from :class:`BrokerConfig`, its ``kind`` a ``Literal`` of the new value) added
to :data:`Broker`, and its builder in ``sim/components/systems.py``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from sim.core.distributions import Distribution, lognormal
from sim.scenario.section import Section


class BrokerKind(StrEnum):
    NONE = "none"
    KAFKA = "kafka"
    RABBITMQ = "rabbitmq"
    SQS = "sqs"
    SQS_FIFO = "sqs_fifo"


class KafkaAcks(StrEnum):
    NONE = "0"
    LEADER = "1"
    ALL = "all"


class QueueType(StrEnum):
    CLASSIC = "classic"
    QUORUM = "quorum"


#: a broker node's append of a record (a Kafka log append, a RabbitMQ fsync'd write);
#: also one fetch of a Kafka inbox when no broker of the scenario says otherwise
APPEND_S = lognormal(0.0005, 1.0)
#: one Amazon SQS API call, request and response; also the calls of an SQS inbox
#: when no SQS broker of the scenario says otherwise
SQS_API_S = lognormal(0.02, 0.5)


class BrokerConfig(Section):
    """What every broker section has: its kind and the message service's patience."""

    kind: BrokerKind
    request_timeout_s: float = Field(
        default=30.0, gt=0, description="the message service gives up on a publish after this"
    )


class NoBroker(BrokerConfig):
    """No broker: the message service writes each accepted message to the store itself."""

    kind: Literal[BrokerKind.NONE] = BrokerKind.NONE

    @property
    def nodes(self) -> int:
        """Broker nodes a fault can name (``broker.N``): none."""
        return 0


class BrokerClusterConfig(BrokerConfig):
    """A broker of ``nodes`` nodes that the operator runs: Kafka or RabbitMQ."""

    nodes: int = Field(default=3, ge=1, description="broker nodes")
    workers: int = Field(default=8, ge=1, description="appends served at once per node")
    append_s: Distribution = Field(
        default=APPEND_S, description="time a node takes to append a record"
    )
    partitions: int = Field(
        default=12, ge=1, description="kafka: partitions; rabbitmq: queues (keyed by conversation)"
    )
    failover_s: float = Field(
        default=9.0,
        ge=0,
        description="kafka, rabbitmq quorum queues: time to elect a new leader after a crash",
    )


class KafkaConfig(BrokerClusterConfig):
    """Apache Kafka: one topic of ``partitions`` partitions, replicated, one consumer group."""

    kind: Literal[BrokerKind.KAFKA] = BrokerKind.KAFKA
    replication_factor: int = Field(default=3, ge=1, description="copies of a partition")
    acks: KafkaAcks = Field(default=KafkaAcks.ALL, description="producer acks")
    min_insync_replicas: int = Field(
        default=2, ge=1, description="acks=all: in-sync replicas a write needs"
    )

    @field_validator("acks", mode="before")
    @classmethod
    def _acks_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value

    @model_validator(mode="after")
    def _replicas_fit(self) -> KafkaConfig:
        if self.replication_factor > self.nodes:
            raise ValueError(
                f"broker.replication_factor ({self.replication_factor}) must be <= "
                f"broker.nodes ({self.nodes})"
            )
        if self.min_insync_replicas > self.replication_factor:
            raise ValueError(
                f"broker.min_insync_replicas ({self.min_insync_replicas}) must be <= "
                f"broker.replication_factor ({self.replication_factor})"
            )
        return self


class RabbitMqConfig(BrokerClusterConfig):
    """RabbitMQ: ``partitions`` queues behind a consistent-hash exchange, competing consumers."""

    kind: Literal[BrokerKind.RABBITMQ] = BrokerKind.RABBITMQ
    queue_type: QueueType = Field(
        default=QueueType.QUORUM,
        description="classic: on one node; quorum: Raft-replicated on up to three nodes",
    )
    prefetch: int = Field(default=100, ge=1, description="unacked deliveries per consumer")


class SqsQueueConfig(BrokerConfig):
    """An Amazon SQS queue, standard or FIFO: one managed endpoint, read by long polling."""

    workers: int = Field(
        default=8,
        ge=1,
        description="the endpoint's station; API calls take api_s without queueing there",
    )
    visibility_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="a received message is invisible this long; not deleted, it comes back",
    )
    retention_s: float = Field(default=345_600.0, gt=0, description="messages expire after this")
    api_s: Distribution = Field(default=SQS_API_S, description="latency of one API call")

    @property
    def nodes(self) -> int:
        """Broker nodes a fault can name (``broker.N``): the one managed endpoint."""
        return 1


class SqsConfig(SqsQueueConfig):
    """A standard SQS queue: at-least-once, best-effort order."""

    kind: Literal[BrokerKind.SQS] = BrokerKind.SQS
    duplicate_probability: float = Field(
        default=0.001, ge=0, lt=1, description="a receive returns a second copy"
    )


class SqsFifoConfig(SqsQueueConfig):
    """A FIFO SQS queue: ordered per message group, deduplicated, SendMessage calls limited."""

    kind: Literal[BrokerKind.SQS_FIFO] = BrokerKind.SQS_FIFO
    fifo_ops_per_s: float = Field(
        default=300.0, gt=0, description="API calls per second per action"
    )
    fifo_batch: int = Field(
        default=1, ge=1, le=10, description="messages per SendMessageBatch call"
    )


#: the broker section: one of the classes above, by ``kind``
Broker = Annotated[
    NoBroker | KafkaConfig | RabbitMqConfig | SqsConfig | SqsFifoConfig,
    Field(discriminator="kind"),
]


__all__ = [
    "APPEND_S",
    "SQS_API_S",
    "Broker",
    "BrokerClusterConfig",
    "BrokerConfig",
    "BrokerKind",
    "KafkaAcks",
    "KafkaConfig",
    "NoBroker",
    "QueueType",
    "RabbitMqConfig",
    "SqsConfig",
    "SqsFifoConfig",
    "SqsQueueConfig",
]
