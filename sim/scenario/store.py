"""The store section: the message store, the durability point and the inbox of offline users.

``architecture.store`` is one class per kind, told apart by ``kind`` (the
discriminated union :data:`Store`): :class:`SingleStoreConfig`,
:class:`CassandraConfig`, :class:`DynamoDbConfig` and :class:`MongoDbConfig`.
Each has only the fields its system has, so a field of another kind
(``write_concern`` on a Cassandra store) is refused when the scenario is
loaded. A section without ``kind`` has the default kind, ``single``.

A new store kind is a value of :class:`StoreKind`, a class here (deriving from
:class:`StoreConfig`, its ``kind`` a ``Literal`` of the new value) added to
:data:`Store`, and its builder in ``sim/components/systems.py``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

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


class StoreConfig(Section):
    """What every store section has: its kind, its service times, the service's patience."""

    kind: StoreKind
    write_s: Distribution = Field(
        default=lognormal(0.002, 1.0), description="time a node takes to write a message"
    )
    read_s: Distribution = Field(
        default=lognormal(0.001, 1.0), description="time a node takes to answer one query"
    )
    request_timeout_s: float = Field(
        default=2.0, gt=0, description="the message service gives up on a store request after this"
    )


class SingleStoreConfig(StoreConfig):
    """One database node."""

    kind: Literal[StoreKind.SINGLE] = StoreKind.SINGLE
    workers: int = Field(default=8, ge=1, description="writes and reads served at once")

    @property
    def nodes(self) -> int:
        """Store nodes a fault can name (``store.N``): the one node."""
        return 1


class StoreClusterConfig(StoreConfig):
    """A store of ``nodes`` nodes that the operator runs: Cassandra or MongoDB."""

    nodes: int = Field(default=1, ge=1, description="nodes of the ring or replica set")
    workers: int = Field(default=8, ge=1, description="writes and reads served at once per node")


class CassandraConfig(StoreClusterConfig):
    """Apache Cassandra: a token ring, ``replication_factor`` replicas, tunable consistency."""

    kind: Literal[StoreKind.CASSANDRA] = StoreKind.CASSANDRA
    replication_factor: int = Field(
        default=3, ge=1, description="copies of a conversation, on consecutive ring nodes"
    )
    write_consistency: Consistency = Field(
        default=Consistency.QUORUM, description="replicas that must acknowledge a write"
    )
    read_consistency: Consistency = Field(
        default=Consistency.QUORUM, description="replicas that must answer a read"
    )
    hinted_handoff: bool = Field(
        default=True, description="a write for a down replica is kept as a hint and replayed"
    )
    max_hint_window_s: float = Field(
        default=10_800.0, ge=0, description="no more hints for a replica down this long"
    )

    @model_validator(mode="after")
    def _replicas_fit(self) -> CassandraConfig:
        if self.replication_factor > self.nodes:
            raise ValueError(
                f"store.replication_factor ({self.replication_factor}) must be <= "
                f"store.nodes ({self.nodes})"
            )
        return self


class MongoDbConfig(StoreClusterConfig):
    """A MongoDB replica set: one primary, elections, a write concern."""

    kind: Literal[StoreKind.MONGODB] = StoreKind.MONGODB
    write_concern: WriteConcern = Field(
        default=WriteConcern.MAJORITY,
        description="w1: acknowledged by the primary; majority: by a majority of members",
    )
    election_timeout_s: float = Field(
        default=10.0, gt=0, description="secondaries elect a new primary after this without one"
    )


class DynamoDbConfig(StoreConfig):
    """Amazon DynamoDB, provisioned capacity: one managed endpoint, ``partitions`` partitions."""

    kind: Literal[StoreKind.DYNAMODB] = StoreKind.DYNAMODB
    partitions: int = Field(default=4, ge=1, description="physical partitions")
    write_units_per_partition: float = Field(
        default=1000.0, gt=0, description="write capacity units a second per partition"
    )
    read_units_per_partition: float = Field(
        default=3000.0, gt=0, description="read capacity units a second per partition"
    )
    consistent_reads: bool = Field(default=True, description="strongly consistent reads")
    sdk_max_retries: int = Field(default=10, ge=0, description="retries of a throttled request")

    @property
    def nodes(self) -> int:
        """Store nodes a fault can name (``store.N``): the one regional endpoint."""
        return 1


#: the store section: one of the classes above, by ``kind``
Store = Annotated[
    SingleStoreConfig | CassandraConfig | DynamoDbConfig | MongoDbConfig,
    Field(discriminator="kind"),
]


__all__ = [
    "CassandraConfig",
    "Consistency",
    "DynamoDbConfig",
    "MongoDbConfig",
    "SingleStoreConfig",
    "Store",
    "StoreClusterConfig",
    "StoreConfig",
    "StoreKind",
    "WriteConcern",
]
