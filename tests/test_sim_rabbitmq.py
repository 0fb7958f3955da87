"""RabbitMQ broker model: confirms, prefetch, requeue on consumer death, queue failures, order.

Each test drives :class:`~sim.components.brokers.rabbitmq.RabbitMqBroker` directly: a
kernel, consumer stations, a fake ``consume`` that takes a job on the consumer's
station and then calls ``done``, and messages published on a schedule.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from sim.components.brokers.rabbitmq import RabbitMqBroker
from sim.components.brokers.rabbitmq_consumers import HEARTBEAT_TIMEOUT_S
from sim.components.durable import Done
from sim.components.station import Station
from sim.core.distributions import BlockDraws
from sim.core.kernel import Kernel
from sim.core.metrics import Message
from sim.scenario.broker import RabbitMqConfig

HOP_S = 0.0005


class Bench:
    """A broker, its consumers and a publisher, with everything recorded."""

    def __init__(
        self,
        seed: int = 1,
        consumers: int = 3,
        workers: int = 4,
        consume_s: float = 0.005,
        **broker: Any,
    ) -> None:
        self.kernel = Kernel(seed)
        self.stations = [Station(self.kernel, "service", i, workers, 0.0) for i in range(consumers)]
        self.spec = RabbitMqConfig.model_validate({"kind": "rabbitmq", **broker})
        self.broker = RabbitMqBroker(self.spec, self.kernel, lambda: HOP_S, 0.0, self.stations)
        self.broker.consume = self.consume
        rng = self.kernel.streams.generator("test.consume")
        self.cost = BlockDraws(lambda k: rng.exponential(consume_s, k))
        self.arrivals = self.kernel.streams.generator("test.arrivals")
        self.msgs: list[Message] = []
        self.ok_s: dict[int, float] = {}
        self.error_s: dict[int, float] = {}
        #: (time, consumer, message) of each delivery and each completed processing
        self.delivered: list[tuple[float, int, Message]] = []
        self.completed: list[tuple[float, int, Message]] = []
        self.outstanding = [0] * consumers
        self.max_outstanding = [0] * consumers

    @property
    def now(self) -> float:
        return self.kernel.now

    def consume(self, c: int, msg: Message, done: Done) -> None:
        self.delivered.append((self.now, c, msg))
        self.outstanding[c] += 1
        self.max_outstanding[c] = max(self.max_outstanding[c], self.outstanding[c])
        self.stations[c].submit(self.cost(), self._finish, (c, msg, done))

    def _finish(self, job: tuple[int, Message, Done]) -> None:
        c, msg, done = job
        self.outstanding[c] -= 1
        self.completed.append((self.now, c, msg))
        done(msg)

    def ok(self, msg: Message) -> None:
        self.ok_s.setdefault(msg.msg_id, self.now)

    def error(self, msg: Message) -> None:
        self.error_s.setdefault(msg.msg_id, self.now)

    def publish(self, msg: Message) -> None:
        self.broker.publish(msg, self.ok, self.error)

    def traffic(self, rate: float, start: float, end: float, convs: int) -> None:
        """Poisson publishes at ``rate`` per second over ``convs`` conversations."""
        t = start
        while True:
            t += float(self.arrivals.exponential(1.0 / rate))
            if t >= end:
                return
            msg = Message(
                len(self.msgs), int(self.arrivals.integers(convs)), 0, 0, t, 100, 150, 150
            )
            self.msgs.append(msg)
            self.kernel.after(t, self.publish, msg)

    def at(self, t: float, fn: Any) -> None:
        self.kernel.after(t, lambda _: fn(), None)

    def run(self, until: float) -> None:
        self.kernel.run(until=until)

    def queue(self, msg: Message) -> int:
        return msg.conv % self.spec.partitions

    def completed_ids(self) -> set[int]:
        return {m.msg_id for _, _, m in self.completed}


def inversions(bench: Bench) -> int:
    """Adjacent pairs of one conversation completed in the opposite order of publishing."""
    seen: set[int] = set()
    last: dict[int, int] = {}
    count = 0
    for _, _, msg in bench.completed:
        if msg.msg_id in seen:
            continue
        seen.add(msg.msg_id)
        if msg.msg_id < last.get(msg.conv, -1):
            count += 1
        last[msg.conv] = max(msg.msg_id, last.get(msg.conv, -1))
    return count


def test_prefetch_bounds_the_unacked_deliveries_of_each_consumer() -> None:
    # 3 consumers x 2 workers x 20 ms = 300/s of capacity, offered 400/s: they saturate
    bench = Bench(consumers=3, workers=2, consume_s=0.02, prefetch=5, partitions=12)
    bench.traffic(400.0, 0.0, 10.0, convs=50)
    peaks = [0] * 3

    def probe(_: object) -> None:
        for c in range(3):
            peaks[c] = max(peaks[c], bench.broker.unacked_count(c))
        if bench.now < 10.0:
            bench.kernel.after(0.01, probe, None)

    bench.kernel.after(0.0, probe, None)
    bench.run(60.0)
    assert peaks == [5, 5, 5]  # the broker's view, sampled
    assert bench.max_outstanding == [5, 5, 5]  # the consumers' view, at every delivery
    assert bench.broker.max_depth > 50  # a backlog formed, held back by prefetch
    assert len(bench.ok_s) == len(bench.msgs) and not bench.error_s
    assert len(bench.completed) == len(bench.msgs) == len(bench.completed_ids())


@pytest.mark.parametrize("saturated", [False, True])
def test_a_dead_consumers_unacked_deliveries_are_requeued_after_the_heartbeat_timeout(
    saturated: bool,
) -> None:
    if saturated:  # 2 x 50/s of capacity under 120/s: every consumer holds `prefetch` unacked
        bench = Bench(consumers=2, workers=1, consume_s=0.02, prefetch=20)
        bench.traffic(120.0, 0.0, 30.0, convs=40)
    else:  # half loaded: the broker keeps sending the silent consumer until prefetch is full
        bench = Bench(consumers=3, workers=2, consume_s=0.02, prefetch=20)
        bench.traffic(150.0, 0.0, 100.0, convs=40)
    crash_s = 20.0
    at_crash: list[int] = []

    def crash() -> None:
        bench.stations[0].crash()
        at_crash.append(bench.broker.unacked_count(0))

    bench.at(crash_s, crash)
    bench.run(200.0)
    broker = bench.broker
    # what consumer 0 was handed and never finished: the deliveries the broker must requeue
    finished_by_0 = {m.msg_id for _, c, m in bench.completed if c == 0}
    stranded = {m.msg_id for _, c, m in bench.delivered if c == 0} - finished_by_0
    assert broker.requeued == len(stranded) > 0
    # unacked at the crash, plus what the broker kept sending the silent consumer up to prefetch
    assert at_crash[0] <= broker.requeued <= bench.spec.prefetch
    if saturated:
        assert broker.requeued == at_crash[0] == bench.spec.prefetch
    assert broker.redelivered == broker.requeued
    (closed_s, what) = next(e for e in broker.events if e[1].startswith("consumer 0"))
    assert "heartbeat timeout" in what
    # the consumer was busy (acks are frames), so it is found dead ~60 s after the crash
    assert HEARTBEAT_TIMEOUT_S - 1.0 <= closed_s - crash_s <= HEARTBEAT_TIMEOUT_S + 1.0
    # each stranded message was consumed by another consumer, after the requeue
    again = [(t, c) for t, c, m in bench.completed if m.msg_id in stranded]
    assert len(again) == len(stranded)
    assert all(c != 0 and t >= closed_s for t, c in again)
    assert bench.completed_ids() == set(bench.ok_s) and len(bench.ok_s) == len(bench.msgs)


def test_a_restarted_consumer_resets_its_old_connection_at_once() -> None:
    bench = Bench(consumers=2, workers=2, consume_s=0.02, prefetch=10)
    bench.traffic(60.0, 0.0, 40.0, convs=20)
    bench.at(10.0, bench.stations[0].crash)
    bench.at(15.0, bench.stations[0].recover)
    bench.run(100.0)
    closed_s, what = next(e for e in bench.broker.events if e[1].startswith("consumer 0"))
    assert "reset" in what and 15.0 <= closed_s <= 16.0
    assert bench.broker.requeued > 0
    # consumer 0 consumes again on its new connection
    assert any(c == 0 and t > 16.0 for t, c, _ in bench.completed)
    assert bench.completed_ids() == set(bench.ok_s) and len(bench.ok_s) == len(bench.msgs)


def test_classic_queue_node_down_refuses_publishes_and_keeps_what_it_confirmed() -> None:
    # one slow consumer (33/s) under 50/s: a backlog sits in the queues when node 1 fails
    bench = Bench(
        consumers=1,
        workers=1,
        consume_s=0.03,
        prefetch=10,
        queue_type="classic",
        nodes=3,
        partitions=6,
    )
    bench.traffic(50.0, 0.0, 40.0, convs=60)
    down_s, up_s = 5.0, 25.0
    bench.at(down_s, lambda: bench.broker.crash(1))
    bench.at(up_s, lambda: bench.broker.recover(1))
    bench.run(400.0)
    on_node_1 = {q for q in range(6) if q % 3 == 1}
    during = [m for m in bench.msgs if down_s < m.send_s < up_s]
    refused = [m for m in during if bench.queue(m) in on_node_1]
    others = [m for m in during if bench.queue(m) not in on_node_1]
    assert refused and others
    # publishes to the down node's queues fail at once; the other queues work
    assert all(bench.error_s.get(m.msg_id) == m.send_s for m in refused)
    assert not any(m.msg_id in bench.ok_s for m in refused)
    assert all(m.msg_id in bench.ok_s for m in others)
    # nothing confirmed is lost, and the down queues deliver nothing while down
    assert set(bench.ok_s) <= bench.completed_ids()
    assert not [
        t for t, _, m in bench.delivered if bench.queue(m) in on_node_1 and down_s < t < up_s
    ]
    confirmed_before = {
        m.msg_id for m in bench.msgs if bench.queue(m) in on_node_1 and m.msg_id in bench.ok_s
    }
    after = {m.msg_id for t, _, m in bench.delivered if t >= up_s and m.msg_id in confirmed_before}
    assert len(after) > 10  # the backlog on the failed node, delivered after its recovery
    # deliveries out at the crash are delivered again after the recovery
    assert bench.broker.requeued > 0
    assert bench.broker.redelivered == bench.broker.requeued


def test_quorum_leader_crash_loses_nothing_and_publishes_resume_after_failover() -> None:
    bench = Bench(consumers=3, workers=4, consume_s=0.005, nodes=3, partitions=3, failover_s=9.0)
    bench.traffic(100.0, 0.0, 40.0, convs=30)
    crash_s = 10.0
    bench.at(crash_s, lambda: bench.broker.crash(0))  # leader of queue 0, follower of 1 and 2
    bench.run(120.0)
    assert not bench.error_s
    assert len(bench.ok_s) == len(bench.msgs)
    assert bench.completed_ids() == set(bench.ok_s)  # no confirmed message lost
    elected_s = crash_s + 9.0
    latency = {m.msg_id: bench.ok_s[m.msg_id] - m.send_s for m in bench.msgs}
    held = [m for m in bench.msgs if bench.queue(m) == 0 and crash_s < m.send_s < elected_s]
    assert held and all(bench.ok_s[m.msg_id] >= elected_s for m in held)
    assert max(bench.ok_s[m.msg_id] for m in held) < elected_s + 0.1
    later = [m for m in bench.msgs if bench.queue(m) == 0 and m.send_s > elected_s + 0.5]
    assert later and max(latency[m.msg_id] for m in later) < 0.05
    # queues whose follower crashed keep their majority: no pause
    others = [m for m in bench.msgs if bench.queue(m) != 0 and crash_s < m.send_s < elected_s]
    assert max(latency[m.msg_id] for m in others) < 0.05
    assert bench.broker.elections == 1
    assert bench.broker.leader[0] in (1, 2)


def test_quorum_queue_without_a_majority_refuses_publishes() -> None:
    bench = Bench(consumers=2, nodes=3, partitions=3, failover_s=9.0)
    bench.traffic(50.0, 0.0, 60.0, convs=30)
    bench.at(10.0, lambda: bench.broker.crash(0))
    bench.at(10.0, lambda: bench.broker.crash(1))
    bench.at(20.0, lambda: bench.broker.recover(1))
    bench.run(150.0)
    during = [m for m in bench.msgs if 10.0 < m.send_s < 20.0]
    assert during and all(bench.error_s.get(m.msg_id) == m.send_s for m in during)
    # outside the outage everything is confirmed (some after the election at 29 s)
    outside = [m for m in bench.msgs if not 10.0 <= m.send_s <= 20.0]
    assert all(m.msg_id in bench.ok_s for m in outside)
    assert all(bench.ok_s[m.msg_id] - m.send_s < 0.05 for m in outside if m.send_s > 29.5)
    assert bench.completed_ids() == set(bench.ok_s)
    assert bench.broker.publish_errors == len(bench.error_s)


def test_prefetch_1_and_one_consumer_keep_queue_order() -> None:
    bench = Bench(consumers=1, workers=4, consume_s=0.01, prefetch=1)
    bench.traffic(40.0, 0.0, 30.0, convs=5)
    bench.run(100.0)
    assert len(bench.completed) == len(bench.msgs)
    assert inversions(bench) == 0
    for q in range(bench.spec.partitions):
        ids = [m.msg_id for _, _, m in bench.completed if bench.queue(m) == q]
        assert ids == sorted(ids)


def test_prefetch_100_and_four_consumers_complete_a_busy_conversation_out_of_order() -> None:
    bench = Bench(consumers=4, workers=4, consume_s=0.02, prefetch=100)
    bench.traffic(150.0, 0.0, 20.0, convs=3)
    bench.run(100.0)
    assert len(bench.completed_ids()) == len(bench.msgs)
    assert inversions(bench) > 0


def test_runs_are_reproducible() -> None:
    def once() -> list[tuple[float, int, int]]:
        bench = Bench(seed=7, consumers=3, prefetch=10)
        bench.traffic(100.0, 0.0, 10.0, convs=20)
        bench.at(5.0, lambda: bench.broker.crash(1))
        bench.run(60.0)
        return [(t, c, m.msg_id) for t, c, m in bench.completed]

    first = once()
    assert first == once() and len(first) > 500
    assert np.all(np.diff([t for t, _, _ in first]) >= 0)
