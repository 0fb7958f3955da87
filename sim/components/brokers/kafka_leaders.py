"""Kafka's leadership: fencing crashed brokers, leader elections, truncation, rejoining.

A crashed node is fenced by the controller after ``broker.session.timeout.ms``
(``failover_s``): it leaves every ISR it was in (unless it was the only member)
and the partitions it led elect the first unfenced ISR member in replica order
(clean election only: with no candidate the partition stays offline until one
returns). The new leader's log is the truth: records the old leader had beyond
it are truncated, as are the followers' logs. A crash is a broker process
crash: the node's log survives it (the page cache is not lost), its queued and
running work does not. A recovered node truncates to its leader's log,
fetches what it missed and rejoins the ISR once it reaches the HW. Every five
minutes the controller moves leadership back to preferred leaders that are in
sync (``auto.leader.rebalance.enable``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sim.components.brokers.kafka_replication import KafkaReplication
from sim.components.station import Station
from sim.core.kernel import Kernel
from sim.scenario.broker import KafkaConfig

#: ``leader.imbalance.check.interval.seconds``
LEADER_IMBALANCE_CHECK_S = 300.0
#: ``leader.imbalance.per.broker.percentage``
LEADER_IMBALANCE_RATIO = 0.10


class KafkaLeadership(KafkaReplication):
    """The controller's side: node sessions, fencing, elections and preferred leaders.

    The producer above provides :meth:`_fail_requests`.
    """

    def __init__(
        self,
        spec: KafkaConfig,
        kernel: Kernel,
        hop: Callable[[], float],
        measure_from_s: float,
        consumers: Sequence[Station],
    ) -> None:
        super().__init__(spec, kernel, hop, measure_from_s, consumers)
        self.failover_s = spec.failover_s
        nodes = self.nodes
        # node state as the controller sees it
        self._down = [False] * nodes
        self._fenced = [False] * nodes
        self._incarnation = [0] * nodes
        self.truncated = 0
        self.truncated_unacked = 0
        self.elections = 0
        self.after(LEADER_IMBALANCE_CHECK_S, self._preferred_check, None)

    def _fail_requests(self, p: int) -> None:
        """The producer's open requests to the leader of ``p`` fail (it crashed or moved)."""
        raise NotImplementedError

    # ------------------------------------------------------------ leadership

    def _set_leader(self, p: int, new: int, why: str) -> None:
        """Make ``new`` (-1: none) the leader of ``p``; its log is the truth from now on."""
        old = self.leader[p]
        self.leader[p] = new
        self.leader_epoch[p] += 1
        self._fail_requests(p)
        nodes = self.nodes
        row = p * nodes
        reps = self.replicas[p]
        if new >= 0:
            self.elections += 1
            new_end = self._leo[row + new]
            end = self._base[p] + len(self._log[p])
            note = ""
            if new_end < end:
                log = self._log[p]
                acked = 0
                for _ in range(end - new_end):
                    req = log.pop()
                    req.off = -1
                    if req.acked:
                        acked += 1
                self.truncated += acked
                self.truncated_unacked += end - new_end - acked
                note = f"; truncated {end - new_end} records ({acked} acknowledged: lost)"
            for r in reps:
                if self._leo[row + r] > new_end:
                    self._leo[row + r] = new_end
            for r in reps:
                if r != new:
                    self._start_fetch(p, r)
            self.event(
                f"kafka: p{p} leader {old} -> {new} (epoch {self.leader_epoch[p]}, {why}){note}"
            )
        else:
            for r in reps:
                self._fgen[row + r] += 1
                self._fparked[row + r] = False
            self.event(f"kafka: p{p} offline: no in-sync replica to elect ({why})")
        self._advance_hw(p)
        self._maybe_flush(p)
        if self._inflight[p] is None:
            self._deliver(p)

    def on_crash(self, node: int) -> None:
        if self._down[node]:
            return
        self._down[node] = True
        self._incarnation[node] += 1
        nodes = self.nodes
        now = self.kernel.now
        for p in self.parts_of[node]:
            i = p * nodes + node
            self._fgen[i] += 1
            if self._fparked[i]:
                self._caught_s[i] = now
            self._fparked[i] = False
            if self.leader[p] == node:
                self._fail_requests(p)
        self.after(self.failover_s, self._session_expired, (node, self._incarnation[node]))

    def _session_expired(self, job: tuple[int, int]) -> None:
        node, incarnation = job
        if self._incarnation[node] == incarnation and self._down[node] and not self._fenced[node]:
            self._fence(node, "session timeout")

    def _fence(self, node: int, why: str) -> None:
        """The controller fences ``node``: it leaves every non-singleton ISR, leaders move."""
        self._fenced[node] = True
        shrunk: list[int] = []
        for p in self.parts_of[node]:
            isr = self.isr[p]
            if node in isr and len(isr) > 1:
                isr.remove(node)
                self.isr_shrinks += 1
                shrunk.append(p)
            if self.leader[p] == node:
                cand = -1
                for r in self.replicas[p]:
                    if r in isr and not self._fenced[r]:
                        cand = r
                        break
                self._set_leader(p, cand, f"node {node} fenced")
            elif p in shrunk:
                self._advance_hw(p)
        self.event(f"kafka: node {node} fenced ({why}); ISR shrink in {len(shrunk)} partitions")

    def on_recover(self, node: int) -> None:
        if not self._down[node]:
            return
        if not self._fenced[node]:
            # the restarted broker registers anew: its old incarnation is fenced first
            self._fence(node, "restarted")
        self._down[node] = False
        self._fenced[node] = False
        self._incarnation[node] += 1
        self._rejoining[node] = True
        nodes = self.nodes
        for p in self.parts_of[node]:
            if self.leader[p] < 0:
                if node in self.isr[p]:
                    self._set_leader(p, node, f"node {node} back")
                continue
            i = p * nodes + node
            end = self._base[p] + len(self._log[p])
            if self._leo[i] > end:
                self._leo[i] = end
            self._start_fetch(p, node)
        self.event(f"kafka: node {node} unfenced, catching up")
        self._check_rejoined(node)

    def _preferred_check(self, _: object) -> None:
        """auto.leader.rebalance: move leadership back to in-sync preferred leaders."""
        for b in range(self.nodes):
            if self._down[b] or self._fenced[b]:
                continue
            preferred = [p for p in range(self.partitions) if self.replicas[p][0] == b]
            moved = [p for p in preferred if self.leader[p] != b]
            if not preferred or len(moved) <= LEADER_IMBALANCE_RATIO * len(preferred):
                continue
            for p in moved:
                if b in self.isr[p]:
                    self._set_leader(p, b, "preferred leader election")
        self.after(LEADER_IMBALANCE_CHECK_S, self._preferred_check, None)


__all__ = ["LEADER_IMBALANCE_CHECK_S", "KafkaLeadership"]
