"""The scenario format: architecture + workload + faults + run, as a pydantic schema.

A scenario is validated once, when it is loaded; the engine then trusts its
types. Everything is immutable: change a scenario with :func:`with_overrides`
(dotted paths, ``{"architecture.gateway.instances": 8}``) or ``model_copy``.

Times are seconds, sizes bytes, rates per second; field names say so. Each
default's source is given in ``docs/parameters.md``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sim.distributions import Constant, Distribution, Zipf, lognormal


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False)


# --------------------------------------------------------------------------- enums


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


class AuthKind(StrEnum):
    NONE = "none"
    JWT = "jwt"


class JwtAlgorithm(StrEnum):
    HS256 = "HS256"
    ES256 = "ES256"
    RS256 = "RS256"


class RateLimitKind(StrEnum):
    NONE = "none"
    TOKEN_BUCKET = "token_bucket"


class EncryptionKind(StrEnum):
    NONE = "none"
    TLS = "tls"
    E2E = "e2e"


class GroupScheme(StrEnum):
    PAIRWISE = "pairwise"
    SENDER_KEYS = "sender_keys"


class AckAfter(StrEnum):
    STORE = "store"
    GATEWAY = "gateway"


class BrokerKind(StrEnum):
    NONE = "none"


class StoreKind(StrEnum):
    SINGLE = "single"


class InboxKind(StrEnum):
    STORE = "store"


class Backoff(StrEnum):
    NONE = "none"
    EXPONENTIAL = "exponential"
    FULL_JITTER = "full_jitter"


class SessionShape(StrEnum):
    EXPONENTIAL = "exponential"
    LOGNORMAL = "lognormal"


# ------------------------------------------------------------------ architecture


class Transport(_Section):
    """How clients talk to the gateways."""

    kind: TransportKind = TransportKind.WEBSOCKET
    poll_interval_s: float = Field(default=1.0, gt=0, description="short polling period")
    long_poll_timeout_s: float = Field(
        default=30.0, gt=0, description="how long a long poll is held before an empty reply"
    )
    http_header_bytes: int = Field(
        default=871, ge=0, description="HTTP request + response headers per request"
    )


class LoadBalancer(_Section):
    policy: BalancerPolicy = BalancerPolicy.ROUND_ROBIN


class Tier(_Section):
    """A pool of identical instances, each running ``workers`` requests at once.

    ``service_time_s`` replaces the per-request CPU time that is otherwise derived
    from the codec, authentication and base handling costs; ``push_time_s`` does
    the same for outbound frames (acks, deliveries, poll replies). A constant 0
    makes that step instantaneous: it then takes no worker at all, which is how a
    tier is switched off when one queue is validated against theory.
    """

    instances: int = Field(default=2, ge=1)
    workers: int = Field(default=2, ge=1)
    request_s: Distribution | None = Field(
        default=None,
        description="base CPU time of handling one inbound request or frame; default: "
        "lognormal with the measured reference server cost as mean, cv 1",
    )
    service_time_s: Distribution | None = None
    push_time_s: Distribution | None = None


class Auth(_Section):
    kind: AuthKind = AuthKind.JWT
    algorithm: JwtAlgorithm = JwtAlgorithm.ES256


class RateLimit(_Section):
    kind: RateLimitKind = RateLimitKind.NONE
    rate_per_s: float = Field(default=10.0, gt=0)
    burst: int = Field(default=20, ge=1)


class Encryption(_Section):
    kind: EncryptionKind = EncryptionKind.TLS
    group_scheme: GroupScheme = GroupScheme.SENDER_KEYS


class Broker(_Section):
    kind: BrokerKind = BrokerKind.NONE


class Store(_Section):
    """The message store: the durability point and the inbox of offline users."""

    kind: StoreKind = StoreKind.SINGLE
    nodes: int = Field(default=1, ge=1, le=1)
    workers: int = Field(default=8, ge=1, description="writes and reads served at once")
    write_s: Distribution = Field(default=lognormal(0.002, 1.0))
    read_s: Distribution = Field(default=lognormal(0.001, 1.0))


class Offline(_Section):
    inbox: InboxKind = InboxKind.STORE
    push: bool = True
    sync_batch: int = Field(default=100, ge=1, description="messages per sync reply")


class Retry(_Section):
    max_attempts: int = Field(default=3, ge=1)
    backoff: Backoff = Backoff.FULL_JITTER
    base_s: float = Field(default=0.1, ge=0)
    cap_s: float = Field(default=20.0, ge=0)


class Resilience(_Section):
    timeout_s: float = Field(default=1.0, gt=0, description="client wait for a send ack")
    retry: Retry = Retry()
    circuit_breaker: str = Field(default="none", pattern="^none$")


class Network(_Section):
    client_rtt_s: Distribution = Field(default=lognormal(0.08, 0.5))
    internal_rtt_s: Distribution = Field(default=Constant(value=0.0005))


class Architecture(_Section):
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
    broker: Broker = Broker()
    store: Store = Store()
    offline: Offline = Offline()
    resilience: Resilience = Resilience()
    network: Network = Network()


# ---------------------------------------------------------------------- workload


class Sessions(_Section):
    """Users alternate online and offline periods.

    ``mean_offline_s: 0`` keeps every user online for the whole run (no churn),
    as queueing-theory validation needs.
    """

    mean_online_s: float = Field(default=1200.0, gt=0)
    mean_offline_s: float = Field(default=3600.0, ge=0)
    shape: SessionShape = SessionShape.EXPONENTIAL
    cv: float = Field(default=1.0, gt=0, description="for lognormal sessions")


class Conversations(_Section):
    """Who talks to whom: 1:1 conversations over a heavy-tailed contact graph, plus groups."""

    contacts: Distribution = Field(
        default=Zipf(a=2.0, max=200), description="1:1 conversations a user starts"
    )
    group_fraction: float = Field(default=0.01, ge=0, lt=1)
    group_size: Distribution = Field(default=Zipf(a=2.0, min=3, max=500))


class Workload(_Section):
    users: int = Field(default=20_000, ge=2)
    sessions: Sessions = Sessions()
    messages_per_user_per_hour: float = Field(
        default=6.0, ge=0, description="sends per user per hour while online"
    )
    conversations: Conversations = Conversations()
    payload_bytes: Distribution = Field(default=lognormal(200, 1.0))


# ------------------------------------------------------------------------ faults


class FaultKind(StrEnum):
    CRASH = "crash"


class Fault(_Section):
    """A fault window: ``target`` (``gateway.0``, ``service.1``, ``store.0``) is down
    from ``at_s`` for ``duration_s``."""

    at_s: float = Field(ge=0)
    kind: FaultKind
    target: str = Field(pattern=r"^(gateway|service|store)\.\d+$")
    duration_s: float = Field(gt=0)


# --------------------------------------------------------------------------- run


class Run(_Section):
    duration_s: float = Field(default=600.0, gt=0, description="workload sends until then")
    warmup_s: float = Field(default=60.0, ge=0, description="excluded from statistics")
    drain_s: float = Field(
        default=120.0, ge=0, description="after duration_s: everyone online, system settles"
    )
    seed: int = Field(default=1, ge=0)
    interval_s: float = Field(default=10.0, gt=0, description="timeseries bin width")

    @model_validator(mode="after")
    def _warmup_inside(self) -> Run:
        if self.warmup_s >= self.duration_s:
            raise ValueError(
                f"run.warmup_s must be < run.duration_s, got warmup_s={self.warmup_s}, "
                f"duration_s={self.duration_s}"
            )
        return self


class Scenario(_Section):
    """One experiment: an architecture under a workload, with faults, for a run."""

    name: str = "scenario"
    description: str = ""
    architecture: Architecture = Architecture()
    workload: Workload = Workload()
    faults: tuple[Fault, ...] = ()
    run: Run = Run()

    @model_validator(mode="after")
    def _faults_supported(self) -> Scenario:
        if self.faults:
            raise ValueError(
                "faults: this version of the simulator does not inject faults yet; "
                "remove the faults section (the format is reserved so presets stay valid)"
            )
        return self

    @model_validator(mode="after")
    def _targets_exist(self) -> Scenario:
        arch = self.architecture
        sizes = {
            "gateway": arch.gateway.instances,
            "service": arch.gateway.instances
            if arch.style is Style.MONOLITH
            else arch.service.instances,
            "store": arch.store.nodes,
        }
        for i, fault in enumerate(self.faults):
            tier, index = fault.target.split(".")
            if int(index) >= sizes[tier]:
                raise ValueError(
                    f"faults.{i}.target: {fault.target!r} does not exist; {tier} has "
                    f"instances 0..{sizes[tier] - 1}"
                )
        return self


def json_schema() -> dict[str, Any]:
    """The JSON schema of the scenario format, for editors and validators."""
    schema = Scenario.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "msgsim scenario"
    return schema
