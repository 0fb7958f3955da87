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

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sim.core.distributions import Constant, Distribution, Zipf, lognormal


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
    CONSISTENT_HASH = "consistent_hash"
    POWER_OF_TWO = "power_of_two"


class AuthKind(StrEnum):
    NONE = "none"
    JWT = "jwt"
    OAUTH_INTROSPECTION = "oauth_introspection"


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
    BROKER = "broker"
    GATEWAY = "gateway"


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


class InboxKind(StrEnum):
    STORE = "store"
    SQS = "sqs"
    KAFKA = "kafka"


class Backoff(StrEnum):
    """Delays between retries (M. Brooker, "Exponential Backoff and Jitter", AWS
    Architecture Blog, 2015): ``temp = min(cap, base * 2**(n-1))`` before retry ``n``;
    ``exponential`` waits ``temp``, ``full_jitter`` U(0, temp), ``equal_jitter``
    temp/2 + U(0, temp/2), ``decorrelated_jitter`` min(cap, U(base, 3 * previous))."""

    NONE = "none"
    EXPONENTIAL = "exponential"
    FULL_JITTER = "full_jitter"
    EQUAL_JITTER = "equal_jitter"
    DECORRELATED_JITTER = "decorrelated_jitter"


class BreakerWindow(StrEnum):
    """What a circuit breaker's failure rate is computed over."""

    COUNT = "count"
    TIME = "time"


class DegradationPolicy(StrEnum):
    """What the message service does while the store (or broker) does not answer."""

    REJECT = "reject"
    QUEUE_WRITES = "queue_writes"
    SERVE_READS_FROM_CACHE = "serve_reads_from_cache"


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


class HealthCheck(_Section):
    """Active health checks: an instance failing ``unhealthy_threshold`` checks in a row
    is ejected from the balancer; ``healthy_threshold`` passing checks bring it back."""

    enabled: bool = False
    interval_s: float = Field(default=2.0, gt=0)
    unhealthy_threshold: int = Field(default=3, ge=1)
    healthy_threshold: int = Field(default=2, ge=1)


class LoadBalancer(_Section):
    policy: BalancerPolicy = BalancerPolicy.ROUND_ROBIN
    health_check: HealthCheck = HealthCheck()
    hash_points: int = Field(
        default=160, ge=1, description="consistent hashing: points per instance on the ring"
    )


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
    """How requests prove who sends them.

    ``jwt``: the gateway verifies a signed token locally (WebSocket: once, at the
    upgrade; HTTP: every request). ``oauth_introspection``: the gateway asks an
    authorization server (RFC 7662) whether an opaque token is active, over the
    internal network, and caches the answer for ``cache_ttl_s``.
    """

    kind: AuthKind = AuthKind.JWT
    algorithm: JwtAlgorithm = JwtAlgorithm.ES256
    token_ttl_s: float = Field(
        default=3600.0, gt=0, description="access token lifetime; clients refresh at expiry"
    )
    cache_ttl_s: float = Field(
        default=30.0, ge=0, description="introspection answers cached this long (0: no cache)"
    )
    server: Tier = Tier(instances=2, workers=8)


class RateLimit(_Section):
    """Token bucket per user at the gateway: ``rate_per_s`` tokens a second, ``burst`` at most."""

    kind: RateLimitKind = RateLimitKind.NONE
    rate_per_s: float = Field(default=10.0, gt=0)
    burst: int = Field(default=20, ge=1)


class Monitoring(_Section):
    """An abuse detector: a user sending more than ``threshold_per_s`` messages a second,
    averaged over ``window_s``, is blocked for ``block_s`` (connections closed, sends refused)."""

    detector: bool = False
    threshold_per_s: float = Field(default=2.0, gt=0)
    window_s: float = Field(default=10.0, gt=0)
    block_s: float = Field(default=600.0, gt=0)


class Encryption(_Section):
    kind: EncryptionKind = EncryptionKind.TLS
    group_scheme: GroupScheme = GroupScheme.SENDER_KEYS


class Broker(_Section):
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


class Store(_Section):
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


class Offline(_Section):
    """Where messages for offline users wait, and how they come back."""

    inbox: InboxKind = InboxKind.STORE
    retention_s: float = Field(
        default=345_600.0,
        gt=0,
        description="sqs, kafka inboxes: a message waiting longer expires (a loss)",
    )
    push: bool = True
    sync_batch: int = Field(default=100, ge=1, description="messages per sync reply")


class Retry(_Section):
    max_attempts: int = Field(default=3, ge=1)
    backoff: Backoff = Backoff.FULL_JITTER
    base_s: float = Field(default=0.1, ge=0)
    cap_s: float = Field(default=20.0, ge=0)


class Reconnect(_Section):
    """How a client reconnects after its connection drops or a connect attempt fails."""

    backoff: Backoff = Backoff.FULL_JITTER
    base_s: float = Field(default=1.0, ge=0)
    cap_s: float = Field(default=5.0, ge=0)


class CircuitBreaker(_Section):
    """A circuit breaker on the message service's calls to the store (writes, reads)
    and to the broker (publishes): one per system, shared by the tier.

    Closed: calls go through and their outcomes fill a window (the last
    ``window_calls`` calls, or the calls of the last ``window_s`` seconds). Once the
    window holds ``minimum_calls`` calls, a failure rate (errors and timeouts) of at
    least ``failure_rate_threshold``, or a rate of calls slower than ``slow_call_s`` of
    at least ``slow_call_rate_threshold``, opens it. Open: every call fails at once,
    without reaching the system, for ``open_wait_s``. Half-open: ``half_open_calls``
    trial calls go through; if all succeed (and none is slow) it closes, the first
    that fails opens it again. Defaults: resilience4j's ``CircuitBreakerConfig``.
    """

    enabled: bool = False
    window: BreakerWindow = BreakerWindow.COUNT
    window_calls: int = Field(default=100, ge=1, description="count window: the last N calls")
    window_s: float = Field(
        default=100.0, gt=0, description="time window: the calls of the last W seconds"
    )
    minimum_calls: int = Field(
        default=100, ge=1, description="calls in the window before the rates are judged"
    )
    failure_rate_threshold: float = Field(default=0.5, gt=0, le=1)
    slow_call_s: float = Field(default=60.0, gt=0, description="a call slower than this is slow")
    slow_call_rate_threshold: float = Field(default=1.0, gt=0, le=1)
    open_wait_s: float = Field(default=60.0, gt=0, description="time open before half-open")
    half_open_calls: int = Field(default=10, ge=1, description="trial calls when half-open")


class Bulkhead(_Section):
    """At most ``max_concurrent`` calls in flight from the message service tier to the
    store, and as many to the broker; a call beyond that fails at once (0: no limit)."""

    max_concurrent: int = Field(default=0, ge=0)


class LoadShedding(_Section):
    """A send arriving at a gateway whose queue holds ``shed_queue_length`` jobs or more
    is rejected at once with an error reply (the client retries with backoff); 0: off."""

    shed_queue_length: int = Field(default=0, ge=0)


class Degradation(_Section):
    """What the message service does while the store (or broker) fails or its breaker
    is open.

    ``reject``: the waiting senders get an error and retry. ``queue_writes``: the
    message stays in a local buffer of ``buffer_size`` messages (the senders get no
    reply: they are acked only once it is durable; their retries join it) and the
    service tries the oldest again every ``retry_s``, releasing the rest once one
    succeeds. ``serve_reads_from_cache``: a sync or poll whose store read fails is
    answered from the messages the service wrote, at most the last ``cache_messages``
    of each conversation.
    """

    policy: DegradationPolicy = DegradationPolicy.REJECT
    buffer_size: int = Field(default=1000, ge=1, description="queue_writes: messages held")
    retry_s: float = Field(default=1.0, gt=0, description="queue_writes: probe period")
    cache_messages: int = Field(
        default=100, ge=1, description="serve_reads_from_cache: per conversation"
    )


class Resilience(_Section):
    timeout_s: float = Field(default=1.0, gt=0, description="client wait for a send ack")
    connect_timeout_s: float = Field(
        default=10.0, gt=0, description="client wait for a connection to be set up"
    )
    sync_timeout_s: float = Field(
        default=10.0, gt=0, description="client wait for a sync reply before asking again"
    )
    retry: Retry = Retry()
    reconnect: Reconnect = Reconnect()
    circuit_breaker: CircuitBreaker = CircuitBreaker()
    bulkhead: Bulkhead = Bulkhead()
    load_shedding: LoadShedding = LoadShedding()
    degradation: Degradation = Degradation()


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
    monitoring: Monitoring = Monitoring()
    network: Network = Network()
    zones: int = Field(
        default=1,
        ge=1,
        description="availability zones; instance or node i of every tier is in zone i mod zones",
    )

    @model_validator(mode="after")
    def _ack_point_exists(self) -> Architecture:
        if self.ack_after is AckAfter.BROKER and self.broker.kind is BrokerKind.NONE:
            raise ValueError(
                "ack_after: 'broker' needs a broker; set broker.kind to kafka, rabbitmq, "
                "sqs or sqs_fifo, or ack_after to store or gateway"
            )
        return self


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


class Attack(_Section):
    """A flood: ``attackers`` existing accounts (compromised), connected throughout the
    attack, each sending ``rate_per_s`` messages a second into its own conversations
    from ``start_s`` for ``duration_s``. The summary describes legitimate users and
    counts the attackers' messages apart."""

    attackers: int = Field(default=0, ge=0)
    rate_per_s: float = Field(default=50.0, gt=0)
    start_s: float = Field(default=0.0, ge=0)
    duration_s: float | None = Field(default=None, gt=0, description="default: to the end")


class Workload(_Section):
    users: int = Field(default=20_000, ge=2)
    sessions: Sessions = Sessions()
    messages_per_user_per_hour: float = Field(
        default=6.0, ge=0, description="sends per user per hour while online"
    )
    conversations: Conversations = Conversations()
    payload_bytes: Distribution = Field(default=lognormal(200, 1.0))
    attack: Attack = Attack()


# ------------------------------------------------------------------------ faults


class FaultKind(StrEnum):
    CRASH = "crash"
    SLOW = "slow"
    PAUSE = "pause"
    PARTITION = "partition"
    LINK = "link"
    ZONE_OUTAGE = "zone_outage"
    RANDOM_CRASH = "random_crash"


#: what a fault can name: an instance or node (``store.2``), a whole tier (``gateway``),
#: a zone (``zone.1``), or a link (``client``, ``internal``)
TIERS = ("gateway", "service", "store", "broker")


class Fault(_Section):
    """A fault window from ``at_s`` for ``duration_s``.

    ``crash``: ``target`` (``gateway.0``, ``service.1``, ``store.2``, ``broker.0``, or a
    whole tier: ``gateway``) is down and loses what it had not made durable.
    ``slow``: the target's service times are multiplied by ``factor``.
    ``pause``: the target stops working (a stop-the-world garbage collection): nothing
    is lost, work resumes when the pause ends.
    ``partition``: frames between the tiers of ``between[0]`` and those of
    ``between[1]`` (tiers: client, gateway, service, store, broker) are dropped, both
    ways, or only from the first group to the second with ``one_way``.
    ``link``: frames on the ``client`` link (every client's) or the ``internal`` network
    take ``delay_s`` longer and are dropped with probability ``loss``.
    ``zone_outage``: every instance and node of zone ``target`` (``zone.1``) crashes.
    ``random_crash``: each instance of the tier ``target`` fails and is repaired again
    and again, with exponential times between failures (mean ``mtbf_s``) and to repair
    (mean ``mttr_s``), within the window.
    """

    at_s: float = Field(ge=0)
    kind: FaultKind
    target: str = Field(
        default="",
        pattern=r"^((gateway|service|store|broker)(\.\d+)?|zone\.\d+|client|internal|)$",
    )
    duration_s: float = Field(gt=0)
    factor: float = Field(default=10.0, gt=0, description="slow: service time multiplier")
    between: tuple[tuple[str, ...], tuple[str, ...]] | None = Field(
        default=None, description="partition: two groups of tiers"
    )
    one_way: bool = Field(default=False, description="partition: only first group -> second")
    delay_s: float = Field(default=0.0, ge=0, description="link: extra one-way delay")
    loss: float = Field(default=0.0, ge=0, le=1, description="link: probability a frame is lost")
    mtbf_s: float = Field(
        default=600.0, gt=0, description="random_crash: mean time between failures"
    )
    mttr_s: float = Field(default=60.0, gt=0, description="random_crash: mean time to repair")

    @model_validator(mode="after")
    def _fields_for_kind(self) -> Fault:
        kind = self.kind
        if kind is FaultKind.PARTITION:
            if self.between is None:
                raise ValueError("a partition needs between: [[tiers...], [tiers...]]")
            allowed = {"client", "gateway", "service", "store", "broker"}
            for group in self.between:
                unknown = [t for t in group if t not in allowed]
                if unknown or not group:
                    raise ValueError(
                        f"between: groups of tiers among {sorted(allowed)}, got {list(group)}"
                    )
        elif kind is FaultKind.LINK:
            if self.target not in ("client", "internal"):
                raise ValueError(
                    f"a link fault targets 'client' or 'internal', got {self.target!r}"
                )
        elif kind is FaultKind.ZONE_OUTAGE:
            if not self.target.startswith("zone."):
                raise ValueError(f"a zone outage targets 'zone.N', got {self.target!r}")
        elif kind is FaultKind.RANDOM_CRASH:
            if self.target not in TIERS:
                raise ValueError(
                    f"random_crash targets a whole tier ({', '.join(TIERS)}), got {self.target!r}"
                )
        elif (
            not self.target
            or self.target in ("client", "internal")
            or self.target.startswith("zone.")
        ):
            raise ValueError(
                f"a {kind.value} fault targets an instance (gateway.0), a node (store.1) or "
                f"a tier (service), got {self.target!r}"
            )
        return self


# --------------------------------------------------------------------------- run


class Run(_Section):
    duration_s: float = Field(default=600.0, gt=0, description="workload sends until then")
    warmup_s: float | None = Field(
        default=None,
        ge=0,
        description="excluded from statistics; default: detected from the run by MSER-5",
    )
    drain_s: float = Field(
        default=120.0, ge=0, description="after duration_s: everyone online, system settles"
    )
    seed: int = Field(default=1, ge=0)
    interval_s: float = Field(default=10.0, gt=0, description="timeseries bin width")

    @model_validator(mode="after")
    def _warmup_inside(self) -> Run:
        if self.warmup_s is not None and self.warmup_s >= self.duration_s:
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
    def _targets_exist(self) -> Scenario:
        arch = self.architecture
        sizes = {
            "gateway": arch.gateway.instances,
            "service": arch.gateway.instances
            if arch.style is Style.MONOLITH
            else arch.service.instances,
            "store": arch.store.nodes,
            "broker": 0 if arch.broker.kind is BrokerKind.NONE else _broker_nodes(arch.broker),
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


def _broker_nodes(broker: Broker) -> int:
    """Nodes a fault can target: SQS is a managed service, seen as one endpoint."""
    return 1 if broker.kind in (BrokerKind.SQS, BrokerKind.SQS_FIFO) else broker.nodes


def json_schema() -> dict[str, Any]:
    """The JSON schema of the scenario format, for editors and validators."""
    schema = Scenario.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "msgsim scenario"
    return schema
