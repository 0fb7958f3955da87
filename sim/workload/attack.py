"""A flood from compromised accounts: ``attackers`` users sending far above normal.

The attackers are ordinary users of the workload (compromised accounts), picked
at random without replacement from the named stream ``workload.attack``; their
floods draw from ``workload.attack.arrivals`` and ``workload.attack.choice``.
No workload stream (``workload.arrivals``, ``workload.choice``,
``workload.payload``, ``workload.sessions``, ...) is touched, so the legitimate
traffic of a seed is the same with or without an attack, and whatever its
settings (common random numbers). The attack settings other than ``attackers``
do not change which users are picked either.

Each attacker sends as a Poisson process of rate ``rate_per_s`` from
``start_s`` to ``start_s + duration_s`` (or ``until_s`` when ``duration_s`` is
None, and never past ``until_s``), each message into one of its own
conversations chosen uniformly. The superposition of ``K`` independent Poisson
processes of rate ``R`` is a Poisson process of rate ``K * R`` in which each
event belongs to each process with probability ``1 / K``, independently: so
the floods are generated as one merged stream, one scheduled callback per
message, whose sender is drawn uniformly among the attackers. A hundred
attackers at 500/s cost one event per message, not a hundred timers.

Attackers are sending whether online or not (an attack script stays
connected); whether a send gets through is for the architecture to decide.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sim.core.distributions import BlockDraws, Distribution
from sim.core.kernel import Kernel, Streams
from sim.scenario.workload import Attack
from sim.workload.population import Conversations

SendFn = Callable[[int, int, int], None]
"""``send(user, slot, payload_bytes)``, as for :class:`sim.workload.traffic.Traffic`."""


class AttackTraffic:
    """The flood of a workload's ``attack`` section.

    Attributes:
        attackers: the compromised users, sorted (``spec.attackers`` of them).
        is_attacker: ``is_attacker[u]`` is 1 for an attacker, 0 otherwise.
        active: the attackers that send: those with at least one conversation
            slot. An attacker without one has nowhere to write and is skipped
            (with the default workload every user has a conversation, so none is).
        start_s, end_s: the flood lasts ``[start_s, end_s)``.
        sent: messages sent so far.
    """

    def __init__(
        self, spec: Attack, streams: Streams, convs: Conversations, users: int, until_s: float
    ) -> None:
        if spec.attackers > users:
            raise ValueError(
                f"workload.attack.attackers ({spec.attackers}) must be <= workload.users ({users})"
            )
        self.spec = spec
        self.users = users
        self.convs = convs
        self.rate_per_s = spec.rate_per_s
        self.start_s = spec.start_s
        end = until_s if spec.duration_s is None else spec.start_s + spec.duration_s
        self.end_s = min(end, until_s)
        pick = streams.generator("workload.attack")
        chosen = pick.choice(users, size=spec.attackers, replace=False)
        self.attackers: np.ndarray = np.sort(chosen.astype(np.int64))
        self.is_attacker = bytearray(users)
        for user in self.attackers.tolist():
            self.is_attacker[user] = 1
        first = convs.user_first_slot
        self.active = np.asarray(
            [u for u in self.attackers.tolist() if first[u + 1] > first[u]], dtype=np.int64
        )
        self.skipped = len(self.attackers) - len(self.active)
        self._active = self.active.tolist()
        arrivals = streams.generator("workload.attack.arrivals")
        choice = streams.generator("workload.attack.choice")
        count = len(self._active)
        total_rate = count * spec.rate_per_s
        self.total_rate_per_s = total_rate
        self._gap = BlockDraws(lambda k: arrivals.exponential(1.0 / total_rate, k))
        self._who = BlockDraws(lambda k: choice.integers(0, max(count, 1), k))
        self._uniform = BlockDraws(lambda k: choice.random(k))
        self.sent = 0

    @staticmethod
    def payload_sampler(dist: Distribution, streams: Streams) -> Callable[[], int]:
        """Payload sizes drawn from ``dist`` on the stream ``workload.attack.payload``.

        Pass this (or a constant) to :meth:`start`, not the legitimate traffic's
        sampler: sharing ``workload.payload`` would shift the legitimate messages.
        """
        rng = streams.generator("workload.attack.payload")
        draws = BlockDraws(lambda k: np.maximum(1, np.rint(dist.draw(rng, k))).astype(np.int64))
        return draws

    def start(self, kernel: Kernel, send: SendFn, payload_bytes: Callable[[], int] | int) -> None:
        """Schedule the flood: one callback per message, the first after ``start_s``."""
        if not self._active or self.end_s <= self.start_s:
            return
        self._kernel = kernel
        self._send = send
        if isinstance(payload_bytes, int):
            size = payload_bytes
            self._payload: Callable[[], int] = lambda: size
        else:
            self._payload = payload_bytes
        self._t = max(self.start_s, kernel.now)
        self._schedule_next()

    def _schedule_next(self) -> None:
        self._t += self._gap()
        if self._t < self.end_s:
            self._kernel.after(self._t - self._kernel.now, self._message, None)

    def _message(self, _: None) -> None:
        user = self._active[self._who()]
        first = self.convs.user_first_slot
        lo = first[user]
        slot = lo + int(self._uniform() * (first[user + 1] - lo))
        self.sent += 1
        self._send(user, slot, self._payload())
        self._schedule_next()
