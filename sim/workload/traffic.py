"""Message generation: every online user sends as a Poisson process.

Rather than one process per user, candidates arrive at the total rate
``users * rate`` and pick a user uniformly; a candidate sends only if its user
is online. Thinning a Poisson process this way gives each online user exactly
a Poisson process of rate ``rate`` (and each offline user none), at one event
per candidate, whatever the number of users; candidates are scheduled
callbacks, not a SimPy process. The sender picks one of its conversations
uniformly. All draws come from workload streams, so two architectures under
the same seed see the same messages (common random numbers).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sim.distributions import BlockDraws
from sim.kernel import Kernel, Streams
from sim.scenario import Workload
from sim.workload.population import Conversations

SendFn = Callable[[int, int, int], None]
"""``send(user, slot, payload_bytes)``: the user writes in the conversation of ``slot``."""


class Traffic:
    """The message source of a workload."""

    def __init__(
        self, workload: Workload, streams: Streams, convs: Conversations, until_s: float
    ) -> None:
        self.users = workload.users
        self.rate_per_user_per_s = workload.messages_per_user_per_hour / 3600.0
        self.until_s = until_s
        self.convs = convs
        arrivals = streams.generator("workload.arrivals")
        choice = streams.generator("workload.choice")
        payload = streams.generator("workload.payload")
        total_rate = self.users * self.rate_per_user_per_s
        self._gap = (
            BlockDraws(lambda k: arrivals.exponential(1.0 / total_rate, k)) if total_rate else None
        )
        self._user = BlockDraws(lambda k: arrivals.integers(0, self.users, k))
        self._uniform = BlockDraws(lambda k: choice.random(k))
        self._payload = BlockDraws(
            lambda k: np.maximum(1, np.rint(workload.payload_bytes.draw(payload, k))).astype(
                np.int64
            )
        )

    def start(self, kernel: Kernel, online: bytearray, send: SendFn) -> None:
        """Begin sending: one scheduled callback per candidate, no SimPy process."""
        if self._gap is None:
            return
        self._kernel = kernel
        self._online = online
        self._send = send
        self._t = kernel.now
        self._schedule_next()

    def _schedule_next(self) -> None:
        assert self._gap is not None
        self._t += self._gap()
        if self._t < self.until_s:
            self._kernel.after(self._t - self._kernel.now, self._candidate, None)

    def _candidate(self, _: None) -> None:
        user = self._user()
        if self._online[user]:
            first = self.convs.user_first_slot
            lo = first[user]
            count = first[user + 1] - lo
            if count:
                self._send(user, lo + int(self._uniform() * count), self._payload())
        self._schedule_next()
