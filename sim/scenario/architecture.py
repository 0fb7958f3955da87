"""The architecture section: how clients reach the servers, and what is behind them.

Style, transport, codec, load balancing, network and the offline inbox are
here; the tiers (:mod:`sim.scenario.tier`), security (:mod:`sim.scenario.security`), the
broker (:mod:`sim.scenario.broker`), the store (:mod:`sim.scenario.store`) and resilience
(:mod:`sim.scenario.resilience`) have their own modules.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field, model_validator

from sim.core.distributions import Constant, Distribution, lognormal
from sim.scenario.broker import Broker, BrokerKind, NoBroker
from sim.scenario.resilience import Resilience
from sim.scenario.section import Section
from sim.scenario.security import Auth, Encryption, Monitoring, RateLimit
from sim.scenario.store import SingleStoreConfig, Store, StoreKind
from sim.scenario.tier import Tier


class Style(StrEnum):
    """How the server side is cut into processes."""

    MONOLITH = "monolith"
    MICROSERVICES = "microservices"


class TransportKind(StrEnum):
    WEBSOCKET = "websocket"
    LONG_POLLING = "long_polling"
    SHORT_POLLING = "short_polling"


class CodecKind(StrEnum):
    JSON = "json"
    PROTOBUF = "protobuf"


class BalancerPolicy(StrEnum):
    ROUND_ROBIN = "round_robin"
    LEAST_CONNECTIONS = "least_connections"
    CONSISTENT_HASH = "consistent_hash"
    POWER_OF_TWO = "power_of_two"


class AckAfter(StrEnum):
    STORE = "store"
    BROKER = "broker"
    GATEWAY = "gateway"


class InboxKind(StrEnum):
    STORE = "store"
    SQS = "sqs"
    KAFKA = "kafka"


class Transport(Section):
    """How clients talk to the gateways."""

    kind: TransportKind = TransportKind.WEBSOCKET
    poll_interval_s: float = Field(default=1.0, gt=0, description="short polling period")
    long_poll_timeout_s: float = Field(
        default=30.0, gt=0, description="how long a long poll is held before an empty reply"
    )
    http_header_bytes: int = Field(
        default=871, ge=0, description="HTTP request + response headers per request"
    )


class HealthCheck(Section):
    """Active health checks: an instance failing ``unhealthy_threshold`` checks in a row
    is ejected from the balancer; ``healthy_threshold`` passing checks bring it back."""

    enabled: bool = False
    interval_s: float = Field(default=2.0, gt=0)
    unhealthy_threshold: int = Field(default=3, ge=1)
    healthy_threshold: int = Field(default=2, ge=1)


class LoadBalancer(Section):
    policy: BalancerPolicy = BalancerPolicy.ROUND_ROBIN
    health_check: HealthCheck = HealthCheck()
    hash_points: int = Field(
        default=160, ge=1, description="consistent hashing: points per instance on the ring"
    )


class Offline(Section):
    """Where messages for offline users wait, and how they come back."""

    inbox: InboxKind = InboxKind.STORE
    retention_s: float = Field(
        default=345_600.0,
        gt=0,
        description="sqs, kafka inboxes: a message waiting longer expires (a loss)",
    )
    push: bool = True
    sync_batch: int = Field(default=100, ge=1, description="messages per sync reply")


class Network(Section):
    client_rtt_s: Distribution = Field(default=lognormal(0.08, 0.5))
    internal_rtt_s: Distribution = Field(default=Constant(value=0.0005))


class Architecture(Section):
    style: Style = Style.MICROSERVICES
    transport: Transport = Transport()
    codec: CodecKind = CodecKind.PROTOBUF
    load_balancer: LoadBalancer = LoadBalancer()
    gateway: Tier = Tier()
    auth: Auth = Auth()
    rate_limit: RateLimit = RateLimit()
    encryption: Encryption = Encryption()
    service: Tier = Tier()
    ack_after: AckAfter = AckAfter.STORE
    broker: Broker = NoBroker()
    store: Store = SingleStoreConfig()
    offline: Offline = Offline()
    resilience: Resilience = Resilience()
    monitoring: Monitoring = Monitoring()
    network: Network = Network()
    zones: int = Field(
        default=1,
        ge=1,
        description="availability zones; instance or node i of every tier is in zone i mod zones",
    )

    @model_validator(mode="before")
    @classmethod
    def _default_kinds(cls, data: Any) -> Any:
        """A broker or store section that names no ``kind`` has the default one (none,
        single), as it had when one class held the fields of every kind."""
        if isinstance(data, dict):
            for section, kind in (("broker", BrokerKind.NONE), ("store", StoreKind.SINGLE)):
                value = data.get(section)
                if isinstance(value, dict) and "kind" not in value:
                    data = {**data, section: {"kind": kind.value, **value}}
        return data

    @model_validator(mode="after")
    def _ack_point_exists(self) -> Architecture:
        if self.ack_after is AckAfter.BROKER and self.broker.kind is BrokerKind.NONE:
            raise ValueError(
                "ack_after: 'broker' needs a broker; set broker.kind to kafka, rabbitmq, "
                "sqs or sqs_fifo, or ack_after to store or gateway"
            )
        return self


__all__ = [
    "AckAfter",
    "Architecture",
    "BalancerPolicy",
    "CodecKind",
    "HealthCheck",
    "InboxKind",
    "LoadBalancer",
    "Network",
    "Offline",
    "Style",
    "Transport",
    "TransportKind",
]
