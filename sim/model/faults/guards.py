"""Network faults: partitions between tiers, latency and loss on a link.

A *partition* cuts the frames from one group of tiers to another (both ways,
or one way): they are dropped, and whoever waits for an answer times out. The
tiers are ``client``, ``gateway``, ``service``, ``store`` and ``broker``; in a
monolith the gateway and the service are one process, which nothing can cut.

A *link* fault makes frames on the client link (every client's) or on the
internal network slower: ``delay_s`` more each way, and, with probability
``loss``, a lost packet that TCP retransmits after its retransmission timeout
(200 ms, Linux's ``TCP_RTO_MIN``; RFC 6298 allows longer), doubling for each
further loss of the same packet. Frames are never lost on a connection: TCP
turns loss into delay, which is what the application sees.

Stores and brokers are guarded by a proxy (:class:`GuardedStore`,
:class:`GuardedBroker`) installed only when the scenario has a partition, so
that runs without one pay nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sim.components.durable import BrokerModel, Done, StoreModel
from sim.core.distributions import BlockDraws, Sampler
from sim.core.kernel import Kernel
from sim.core.metrics import Message

#: Linux TCP_RTO_MIN: the shortest retransmission timeout (RFC 6298 §2.4 suggests 1 s)
RTO_S = 0.2


class NetState:
    """Which tier-to-tier paths are cut, and how slow each link is, right now."""

    def __init__(self, kernel: Kernel) -> None:
        rng = kernel.streams.generator("faults.link")
        self._uniform = BlockDraws(rng.random)
        #: (from tier, to tier) pairs whose frames are dropped
        self.cuts: set[tuple[str, str]] = set()
        self.dropped = 0
        self.retransmissions = 0
        self.client_delay_s = 0.0
        self.client_loss = 0.0
        self.internal_delay_s = 0.0
        self.internal_loss = 0.0

    def cut(self, src: str, dst: str) -> bool:
        """True (and counted) when a frame from ``src`` to ``dst`` is dropped."""
        if (src, dst) in self.cuts:
            self.dropped += 1
            return True
        return False

    def extra_s(self, delay_s: float, loss: float) -> float:
        """Extra one-way time of one frame: the delay, plus retransmission timeouts."""
        extra = delay_s
        if loss > 0.0:
            rto = RTO_S
            while self._uniform() < loss:
                self.retransmissions += 1
                extra += rto
                rto *= 2.0
        return extra

    def wrap_rtt(self, base: Sampler) -> Sampler:
        """A client round-trip sampler that adds the client link's fault, both ways."""

        def rtt() -> float:
            return (
                base()
                + self.extra_s(self.client_delay_s, self.client_loss)
                + self.extra_s(self.client_delay_s, self.client_loss)
            )

        return rtt

    def wrap_oneway(self, base: Sampler) -> Sampler:
        """An internal one-way delay sampler with the internal network's fault."""

        def oneway() -> float:
            return base() + self.extra_s(self.internal_delay_s, self.internal_loss)

        return oneway


class _Guard:
    """Forwards everything to the wrapped system; drops what a partition cuts."""

    def __init__(self, inner: Any, net: NetState, tier: str) -> None:
        self._inner = inner
        self._net = net
        self._tier = tier

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _back(self, fn: Callable[[Any], None]) -> Callable[[Any], None]:
        net, tier = self._net, self._tier

        def answer(arg: Any) -> None:
            if not net.cut(tier, "service"):
                fn(arg)

        return answer


class GuardedStore(_Guard):
    """A store behind a partition: requests and answers across a cut are dropped."""

    def write(self, msg: Message, ok: Done, error: Done) -> None:
        if self._net.cut("service", "store"):
            return
        self._inner.write(msg, self._back(ok), self._back(error))

    def read(
        self, key: int, ok: Callable[[Any], None], error: Callable[[Any], None], arg: Any
    ) -> None:
        if self._net.cut("service", "store"):
            return
        self._inner.read(key, self._back(ok), self._back(error), arg)


class GuardedBroker(_Guard):
    """A broker behind a partition: publishes, acks and deliveries across a cut are dropped.

    A delivery dropped on its way to a consumer is, to the broker, a consumer
    that never answered: it redelivers by its own rules (Kafka after the session
    timeout, RabbitMQ after the heartbeat timeout, SQS after the visibility timeout).
    """

    def publish(self, msg: Message, ok: Done, error: Done) -> None:
        if self._net.cut("service", "broker"):
            return
        self._inner.publish(msg, self._back(ok), self._back(error))

    def attach(self, consume: Callable[[int, Message, Done], None]) -> None:
        net = self._net

        def guarded(consumer: int, msg: Message, done: Done) -> None:
            if net.cut("broker", "service"):
                return

            def commit(m: Message) -> None:
                if not net.cut("service", "broker"):
                    done(m)

            consume(consumer, msg, commit)

        self._inner.consume = guarded


def guard_store(store: StoreModel, net: NetState) -> StoreModel:
    return GuardedStore(store, net, "store")  # type: ignore[return-value]


def guard_broker(broker: BrokerModel, net: NetState) -> BrokerModel:
    return GuardedBroker(broker, net, "broker")  # type: ignore[return-value]


def partition_pairs(
    between: tuple[Sequence[str], Sequence[str]], one_way: bool
) -> set[tuple[str, str]]:
    """The (from, to) tier pairs a partition cuts."""
    first, second = between
    pairs = {(a, b) for a in first for b in second if a != b}
    if not one_way:
        pairs |= {(b, a) for a, b in pairs}
    return pairs


__all__ = [
    "RTO_S",
    "GuardedBroker",
    "GuardedStore",
    "NetState",
    "guard_broker",
    "guard_store",
    "partition_pairs",
]
