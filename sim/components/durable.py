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

The systems themselves live one module each in ``stores/`` and ``brokers/``;
``sim.components.systems`` maps each ``kind`` of the scenario to its class.
What a new one must implement, and what it may rely on, is written in
:class:`Cluster`, :class:`StoreModel` and :class:`BrokerModel` below.
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

    A system may rely on:

    * :attr:`stations`, one :class:`~sim.components.station.Station` per node:
      ``submit(cost_s, fn, arg)`` calls ``fn(arg)`` once a worker has spent
      ``cost_s`` on it (after queueing); a crashed station drops what it holds
      and refuses new jobs (``up`` is False), a slowed or paused one (faults)
      takes longer; its ``epoch`` grows with every crash;
    * :attr:`hop`, one internal one-way delay per call (the caller pays the
      hops to and from the system; a system pays those between its own nodes);
    * :attr:`after` (``after(delay_s, fn, arg)``), :meth:`later` and :attr:`now`
      for time, and ``kernel.streams.generator(name)`` for random numbers, one
      named stream per use (``store.write``, ``broker.append``...) so that a
      change in one system leaves the draws of the others alone;
    * :meth:`crash` and :meth:`recover`, called by the fault injector, which
      crash or recover the station first and then call :meth:`on_crash` /
      :meth:`on_recover`.

    A system may override :meth:`on_crash` / :meth:`on_recover` to react (a
    leader election, hinted handoff, a rollback), report what it did with
    :meth:`event` (the run's fault table), report acknowledged messages it lost
    through :attr:`lost`, add its own run-wide :meth:`counters` to the summary
    (prefixed with its tier or name: ``store_hints_stored``), and set
    :attr:`managed` when it is a managed service that a zone outage spares.

    Everything on the path of a message is a scheduled call: bind samplers and
    lookups in ``__init__``, and keep per-message work free of indirection
    (about 40 million scheduled calls in a large run).
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
    """A message store: the durability point, and what syncs and polls read from.

    A store must implement:

    * ``__init__(spec, kernel, hop, measure_from_s)``, ``spec`` being its own
      section class of :mod:`sim.scenario.store`, calling
      ``super().__init__(kernel, "store", nodes, workers, measure_from_s, hop)``;
    * :meth:`write` and :meth:`read`, each answering a call once, ``ok`` or
      ``error``. A broker's consumer waits for the answer of its write without a
      timeout of its own: a request the system could leave unanswered (a replica
      that crashed meanwhile) must fail by the system's own timeout, as
      Cassandra's does after ``request_timeout_s``.
    """

    def write(self, msg: Message, ok: Done, error: Done) -> None:
        """Make ``msg`` durable: ``ok(msg)`` when the system acknowledges it by its own
        rules, ``error(msg)`` when it is refused or times out."""
        raise NotImplementedError

    def read(
        self, key: int, ok: Callable[[Any], None], error: Callable[[Any], None], arg: Any
    ) -> None:
        """Read the messages of conversation ``key`` for a sync or poll (one query):
        ``ok(arg)`` with the answer, or ``error(arg)``."""
        raise NotImplementedError


class BrokerModel(Cluster):
    """A message broker: publish with acknowledgement, deliver to consumers.

    A broker must implement:

    * ``__init__(spec, kernel, hop, measure_from_s, consumers)``, ``spec`` being its
      own section class of :mod:`sim.scenario.broker`, calling
      ``super().__init__(kernel, "broker", nodes, workers, measure_from_s, hop,
      consumers)``;
    * :meth:`publish`: ``ok(msg)`` when the broker acknowledges the message by its
      own rules, ``error(msg)`` when it refuses it; a broker may also never answer
      (the message service then times out after ``request_timeout_s``);
    * delivery: hand every published record to :attr:`consume`
      (``consume(consumer, msg, done)``), to a consumer whose station is up, and
      deliver it again, by the system's own rules, when ``done`` is not called
      (the consumer crashed, a partition dropped the delivery): the message
      service deduplicates;
    * :meth:`backlog`, the records published and not yet handed to a consumer,
      for the timeseries.

    It may rely on :attr:`consumers`, the stations of the message service
    instances (``up`` and ``epoch`` tell a crash or a restart; the broker is not
    told otherwise), and on :attr:`consume` being set before the run starts.
    """

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
        """A publish of ``msg`` reaches the broker (the service paid the hop there)."""
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
