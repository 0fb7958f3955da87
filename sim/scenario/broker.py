"""The broker section: which message broker sits between the message service and its consumers."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

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


class Broker(Section):
    """A message broker between the message service and its consumers.

    The message service publishes each accepted message, keyed by conversation;
    consumers (on the message service tier) write it to the store and fan it out.
    Fields apply to the kinds named in their description; the others ignore them.
    """

    kind: BrokerKind = BrokerKind.NONE
    nodes: int = Field(default=3, ge=1, description="kafka, rabbitmq: broker nodes")
    workers: int = Field(default=8, ge=1, description="appends served at once per node")
    append_s: Distribution = Field(
        default=lognormal(0.0005, 1.0), description="time a node takes to append a record"
    )
    partitions: int = Field(
        default=12, ge=1, description="kafka: partitions; rabbitmq: queues (keyed by conversation)"
    )
    replication_factor: int = Field(default=3, ge=1, description="kafka: copies of a partition")
    acks: KafkaAcks = Field(default=KafkaAcks.ALL, description="kafka producer acks")
    min_insync_replicas: int = Field(default=2, ge=1, description="kafka")
    failover_s: float = Field(
        default=9.0,
        ge=0,
        description="kafka, rabbitmq quorum: time to elect a new leader after a crash",
    )
    queue_type: QueueType = Field(default=QueueType.QUORUM, description="rabbitmq")
    prefetch: int = Field(
        default=100, ge=1, description="rabbitmq: unacked deliveries per consumer"
    )
    visibility_timeout_s: float = Field(default=30.0, gt=0, description="sqs, sqs_fifo")
    retention_s: float = Field(
        default=345_600.0, gt=0, description="sqs, sqs_fifo: messages expire after this"
    )
    duplicate_probability: float = Field(
        default=0.001, ge=0, lt=1, description="sqs standard: a receive returns a second copy"
    )
    api_s: Distribution = Field(
        default=lognormal(0.02, 0.5), description="sqs, sqs_fifo: latency of one API call"
    )
    fifo_ops_per_s: float = Field(
        default=300.0, gt=0, description="sqs_fifo: API calls per second per action"
    )
    fifo_batch: int = Field(
        default=1, ge=1, le=10, description="sqs_fifo: messages per SendMessageBatch call"
    )
    request_timeout_s: float = Field(
        default=30.0, gt=0, description="the message service gives up on a publish after this"
    )

    @field_validator("acks", mode="before")
    @classmethod
    def _acks_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value

    @model_validator(mode="after")
    def _replicas_fit(self) -> Broker:
        if self.kind is BrokerKind.KAFKA:
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


__all__ = ["Broker", "BrokerKind", "KafkaAcks", "QueueType"]
