"""What makes a message durable: the interface of stores and brokers.

The message service hands an accepted message to the *durability path*:

* without a broker, it writes the message to the store:
  ``store.write(msg, ok, error)``;
* with a broker, it publishes the message, keyed by conversation:
  ``broker.publish(msg, ok, error)``; the broker later hands each record to a
  consumer on the message service tier, ``consume(consumer, msg, done)``, which
  writes it to the store and calls ``done(msg)`` (Kafka: the offset is committed,
  RabbitMQ: the delivery is acked, SQS: the message is deleted).

``ok(msg)`` means the system acknowledged the write by its own rules (Kafka
``acks``, a Cassandra consistency level, a MongoDB write concern), which is not
always a promise that the message survives: a system that loses an
acknowledged write reports it through ``lost(msgs)`` (for example a MongoDB
``w:1`` write rolled back after a failover), and a broker that loses a record
simply never delivers it (Kafka ``acks=1`` truncation). ``error(msg)`` means
the write was refused or timed out: the sender's attempt fails and it retries.

Every system is a :class:`Cluster` of nodes, each a
:class:`~sim.components.station.Station` (its CPU and disk), that faults can
crash and recover. Callbacks are plain functions of the message, so that the
message path stays a chain of scheduled calls.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sim.components.station import Station
from sim.core.kernel import Kernel
from sim.core.metrics import Message

#: called with the message a write or publish is about
Done = Callable[[Message], None]
#: ``consume(consumer_index, msg, done)``: a broker hands a record to a consumer
Consume = Callable[[int, Message, Done], None]
#: ``lost(msgs)``: acknowledged messages that the system no longer has
Lost = Callable[[Sequence[Message]], None]


def _ignore_lost(msgs: Sequence[Message]) -> None:
    return None


class Cluster:
    """Nodes of one system, each a station that a fault can crash and recover.

    Subclasses react to crashes in :meth:`on_crash` / :meth:`on_recover` (a
    leader election, hinted handoff, a rollback) and report what they did with
    :meth:`event`, which ends up in the run's fault table.
    """

    tier = "cluster"
    #: a managed service spread over every zone (DynamoDB, SQS): a zone outage spares it
    managed = False

    def __init__(
        self,
        kernel: Kernel,
        tier: str,
        nodes: int,
        workers: int,
        measure_from_s: float,
        hop: Callable[[], float],
    ) -> None:
        self.kernel = kernel
        self.after = kernel.after
        self.tier = tier
        self.stations = [Station(kernel, tier, i, workers, measure_from_s) for i in range(nodes)]
        #: one-way internal network delay between two nodes or a node and a client of it
        self.hop = hop
        #: acknowledged messages this system lost; set by the message service
        self.lost: Lost = _ignore_lost
        #: ``(time_s, what)`` of notable internal events (elections, rollbacks, throttling)
        self.events: list[tuple[float, str]] = []

    @property
    def now(self) -> float:
        return self.kernel.now

    def up(self, node: int) -> bool:
        return self.stations[node].up

    def crash(self, node: int) -> None:
        """Node ``node`` stops: what it had not made durable is gone (see subclasses)."""
        self.stations[node].crash()
        self.on_crash(node)

    def recover(self, node: int) -> None:
        self.stations[node].recover()
        self.on_recover(node)

    def on_crash(self, node: int) -> None:
        return None

    def on_recover(self, node: int) -> None:
        return None

    def event(self, what: str) -> None:
        self.events.append((self.now, what))

    def counters(self) -> dict[str, float]:
        """Run-wide counters this system adds to the summary (``store_throttled`` ...)."""
        return {}

    def later(self, delay_s: float, fn: Callable[[Any], None], arg: Any) -> None:
        if delay_s > 0.0:
            self.after(delay_s, fn, arg)
        else:
            fn(arg)


class StoreModel(Cluster):
    """A message store: the durability point, and what syncs and polls read from."""

    def write(self, msg: Message, ok: Done, error: Done) -> None:
        raise NotImplementedError

    def read(
        self, key: int, ok: Callable[[Any], None], error: Callable[[Any], None], arg: Any
    ) -> None:
        """Read the messages of conversation ``key`` for a sync or poll (one query)."""
        raise NotImplementedError


class BrokerModel(Cluster):
    """A message broker: publish with acknowledgement, deliver to consumers."""

    #: set by the message service before the run
    consume: Consume

    def __init__(
        self,
        kernel: Kernel,
        tier: str,
        nodes: int,
        workers: int,
        measure_from_s: float,
        hop: Callable[[], float],
        consumers: Sequence[Station],
    ) -> None:
        super().__init__(kernel, tier, nodes, workers, measure_from_s, hop)
        #: the message service instances that consume (their ``up`` tells if a consumer lives)
        self.consumers = consumers

    def publish(self, msg: Message, ok: Done, error: Done) -> None:
        raise NotImplementedError

    def backlog(self) -> int:
        """Messages published and not yet handed to a consumer (Kafka: consumer lag)."""
        return 0


__all__ = [
    "BrokerModel",
    "Cluster",
    "Consume",
    "Done",
    "Lost",
    "StoreModel",
]
