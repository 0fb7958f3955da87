"""Message generation: every online user sends as a Poisson process.

Rather than one process per user, candidates arrive as one Poisson process
of rate ``rate * bound``, where ``bound`` is an upper bound on how many users
are online; a candidate draws an index uniformly in ``[0, bound)`` and sends
if the index falls on one of the online users (:class:`OnlineSet` keeps them
in a dense array). Thinning a Poisson process this way gives each online user
exactly a Poisson process of rate ``rate`` (and each offline user none), at one
event per candidate, whatever the number of users. The bound follows the online
population, about 6% above it and never above the population: lowered at a
candidate when it is well above, raised (with the next candidate drawn again,
which memorylessness allows) when a user comes online beyond it; so more than
nine candidates in ten send. Candidates are scheduled callbacks,
not a SimPy process. The sender picks one of its conversations uniformly. All
draws come from workload streams, so two architectures under the same seed see
the same messages (common random numbers).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sim.core.distributions import BlockDraws
from sim.core.kernel import Kernel, Streams
from sim.scenario.workload import Workload
from sim.workload.population import Conversations, OnlineSet

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
        self._gap = BlockDraws(arrivals.standard_exponential)
        self._index = BlockDraws(arrivals.random)
        self._uniform = BlockDraws(lambda k: choice.random(k))
        self._payload = BlockDraws(
            lambda k: np.maximum(1, np.rint(workload.payload_bytes.draw(payload, k))).astype(
                np.int64
            )
        )
        #: candidates generated and candidates that sent (the thinning's acceptance)
        self.candidates = 0
        self.sent = 0

    def start(self, kernel: Kernel, online: OnlineSet, send: SendFn) -> None:
        """Begin sending: one scheduled callback per candidate, no SimPy process."""
        if self.rate_per_user_per_s <= 0.0:
            return
        self._kernel = kernel
        self._online = online
        self._members = online.members
        self._send = send
        self._generation = 0
        online.on_exceed = self._exceeded
        self._set_bound(len(self._members))
        self._t = kernel.now
        self._schedule_next()

    def _set_bound(self, online: int) -> None:
        # headroom for the churn until the next candidate; never above the population
        bound = min(online + (online >> 4) + 16, self.users)
        self._bound = bound
        self._online.bound = bound
        self._mean_gap_s = 1.0 / (bound * self.rate_per_user_per_s)

    def _schedule_next(self) -> None:
        self._t += self._gap() * self._mean_gap_s
        if self._t < self.until_s:
            self._kernel.at(self._t, self._candidate, self._generation)

    def _candidate(self, generation: int) -> None:
        if generation != self._generation:
            return  # drawn under a bound that has been raised since
        self.candidates += 1
        members = self._members
        online = len(members)
        i = int(self._index() * self._bound)
        if i < online:
            user = members[i]
            first = self.convs.user_first_slot
            lo = first[user]
            count = first[user + 1] - lo
            if count:
                self.sent += 1
                self._send(user, lo + int(self._uniform() * count), self._payload())
        if self._bound > online + (online >> 3) + 32:
            self._set_bound(len(members))
        self._schedule_next()

    def _exceeded(self) -> None:
        """More users are online than the bound: the pending candidate was drawn for a
        smaller population; draw the next one again from now under a larger bound."""
        self._set_bound(len(self._members))
        self._generation += 1
        self._t = self._kernel.now
        self._schedule_next()
