"""The store section: the message store that makes messages durable."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, model_validator

from sim.core.distributions import Distribution, lognormal
from sim.scenario.section import Section


class StoreKind(StrEnum):
    SINGLE = "single"
    CASSANDRA = "cassandra"
    DYNAMODB = "dynamodb"
    MONGODB = "mongodb"


class Consistency(StrEnum):
    ONE = "one"
    QUORUM = "quorum"
    ALL = "all"


class WriteConcern(StrEnum):
    W1 = "w1"
    MAJORITY = "majority"


class Store(Section):
    """The message store: the durability point and the inbox of offline users.

    Fields apply to the kinds named in their description; the others ignore them.
    """

    kind: StoreKind = StoreKind.SINGLE
    nodes: int = Field(default=1, ge=1, description="single: 1; cassandra, mongodb: nodes")
    workers: int = Field(default=8, ge=1, description="writes and reads served at once per node")
    write_s: Distribution = Field(default=lognormal(0.002, 1.0))
    read_s: Distribution = Field(default=lognormal(0.001, 1.0))
    replication_factor: int = Field(default=3, ge=1, description="cassandra")
    write_consistency: Consistency = Field(default=Consistency.QUORUM, description="cassandra")
    read_consistency: Consistency = Field(default=Consistency.QUORUM, description="cassandra")
    hinted_handoff: bool = Field(default=True, description="cassandra")
    max_hint_window_s: float = Field(default=10_800.0, ge=0, description="cassandra")
    request_timeout_s: float = Field(
        default=2.0, gt=0, description="the message service gives up on a store request after this"
    )
    write_concern: WriteConcern = Field(default=WriteConcern.MAJORITY, description="mongodb")
    election_timeout_s: float = Field(default=10.0, gt=0, description="mongodb")
    partitions: int = Field(default=4, ge=1, description="dynamodb: physical partitions")
    write_units_per_partition: float = Field(default=1000.0, gt=0, description="dynamodb")
    read_units_per_partition: float = Field(default=3000.0, gt=0, description="dynamodb")
    consistent_reads: bool = Field(default=True, description="dynamodb: strongly consistent")
    sdk_max_retries: int = Field(
        default=10, ge=0, description="dynamodb: retries of a throttled request"
    )

    @model_validator(mode="after")
    def _nodes_fit(self) -> Store:
        if self.kind in (StoreKind.SINGLE, StoreKind.DYNAMODB) and self.nodes != 1:
            raise ValueError(
                f"store.nodes must be 1 for kind {self.kind.value} (DynamoDB is one managed "
                f"endpoint; set store.partitions instead), got {self.nodes}"
            )
        if self.kind is StoreKind.CASSANDRA and self.replication_factor > self.nodes:
            raise ValueError(
                f"store.replication_factor ({self.replication_factor}) must be <= "
                f"store.nodes ({self.nodes})"
            )
        return self


__all__ = ["Consistency", "Store", "StoreKind", "WriteConcern"]
