"""One database node as the message store: durable once the node has written it.

The default store (``kind: single``): one :class:`~sim.components.station.Station`
of ``workers`` servers. While the node is down every write and read fails at
once (connection refused); what the node had acknowledged survives (it was on
its disk). The hops between the message service and the store are the service's
business.

Random numbers come from the named streams ``store.write`` and ``store.read``
(service times).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sim.components.durable import Done, StoreModel
from sim.core.kernel import Kernel
from sim.core.metrics import Message
from sim.scenario.store import SingleStoreConfig


class SingleStore(StoreModel):
    """One database node: a write is durable when the node has written it."""

    def __init__(
        self,
        spec: SingleStoreConfig,
        kernel: Kernel,
        hop: Callable[[], float],
        measure_from_s: float,
    ) -> None:
        super().__init__(kernel, "store", 1, spec.workers, measure_from_s, hop)
        streams = kernel.streams
        self.write_s = spec.write_s.sampler(streams.generator("store.write"))
        self.read_s = spec.read_s.sampler(streams.generator("store.read"))
        self.node = self.stations[0]
        self.refused = 0

    def write(self, msg: Message, ok: Done, error: Done) -> None:
        if not self.node.up:
            self.refused += 1
            error(msg)
            return
        self.node.submit(self.write_s(), ok, msg)

    def read(
        self, key: int, ok: Callable[[Any], None], error: Callable[[Any], None], arg: Any
    ) -> None:
        if not self.node.up:
            self.refused += 1
            error(arg)
            return
        self.node.submit(self.read_s(), ok, arg)

    def counters(self) -> dict[str, float]:
        return {"store_refused": float(self.refused)}


__all__ = ["SingleStore"]
