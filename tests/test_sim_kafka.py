"""The Kafka broker model on its own: order, acks, ISR, elections, truncation, the group.

Each test drives a :class:`~sim.components.brokers.kafka.KafkaBroker` with a Poisson
stream of records over many conversations and a fake message service whose
consumers are stations (``consume`` submits a job, the job calls ``done``).
Faults are injected with ``kernel.after``. Comparisons between settings use
several seeds and confidence intervals, never one seed's numbers.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from sim.components.brokers.kafka import KafkaBroker
from sim.components.station import Station
from sim.core.kernel import Kernel
from sim.core.metrics import Message
from sim.core.statistics import mean_ci, paired_difference
from sim.scenario.broker import KafkaConfig

HOP_S = 0.00025  # one-way internal hop: 0.5 ms RTT inside one zone


def _crash_station(station: Station) -> None:
    if station.up:
        station.crash()


def _recover_station(station: Station) -> None:
    station.recover()


class Rig:
    """A broker, consumer stations, a producer of records and what happened to them."""

    def __init__(
        self,
        seed: int,
        *,
        acks: str = "all",
        consumers: int = 3,
        consume_s: float = 0.0005,
        hop_s: float = HOP_S,
        **spec: Any,
    ) -> None:
        self.kernel = Kernel(seed)
        self.consumer_stations = [
            Station(self.kernel, "service", i, 8, 0.0) for i in range(consumers)
        ]
        self.broker = KafkaBroker(
            KafkaConfig(kind="kafka", acks=acks, **spec),
            self.kernel,
            lambda: hop_s,
            0.0,
            self.consumer_stations,
        )
        self.consume_s = consume_s
        self.broker.consume = self._consume
        self.rng = self.kernel.streams.generator("test.load")
        self.msgs: list[Message] = []
        self.published_s: dict[int, float] = {}
        self.acked_s: dict[int, float] = {}
        self.errors: list[int] = []
        #: (time, consumer, msg_id) of every hand-over to a consumer
        self.deliveries: list[tuple[float, int, int]] = []
        self.done_ids: list[int] = []

    # the fake message service ------------------------------------------------

    def _consume(self, consumer: int, msg: Message, done: Callable[[Message], None]) -> None:
        self.deliveries.append((self.kernel.now, consumer, msg.msg_id))
        self.consumer_stations[consumer].submit(self.consume_s, self._stored, (msg, done))

    def _stored(self, job: tuple[Message, Callable[[Message], None]]) -> None:
        msg, done = job
        self.done_ids.append(msg.msg_id)
        done(msg)

    def _ok(self, msg: Message) -> None:
        self.acked_s.setdefault(msg.msg_id, self.kernel.now)

    def _error(self, msg: Message) -> None:
        self.errors.append(msg.msg_id)

    # load -----------------------------------------------------------------------

    def load(self, rate: float, until_s: float, convs: int = 240, start_s: float = 0.0) -> None:
        """Poisson records at ``rate`` per second over ``convs`` conversations."""
        self.rate = rate
        self.until_s = until_s
        self.convs = convs
        self._draws: list[tuple[int, float]] = []
        self.kernel.after(start_s, self._next, None)

    def _next(self, _: object) -> None:
        now = self.kernel.now
        if now >= self.until_s:
            return
        if not self._draws:
            # numbers in blocks: one numpy call per record would dominate the test
            convs = self.rng.integers(self.convs, size=1024).tolist()
            gaps = self.rng.exponential(1.0 / self.rate, size=1024).tolist()
            self._draws = list(zip(convs, gaps, strict=True))
            self._draws.reverse()
        conv, gap = self._draws.pop()
        msg_id = len(self.msgs)
        msg = Message(msg_id, conv, 0, conv, now, 100, 160, 160)
        self.msgs.append(msg)
        self.published_s[msg_id] = now
        self.broker.publish(msg, self._ok, self._error)
        self.kernel.after(gap, self._next, None)

    def at(self, time_s: float, fn: Callable[[Any], None], arg: Any = None) -> None:
        self.kernel.after(time_s, fn, arg)

    def crash_consumer(self, time_s: float, consumer: int) -> None:
        self.at(time_s, _crash_station, self.consumer_stations[consumer])

    def recover_consumer(self, time_s: float, consumer: int) -> None:
        self.at(time_s, _recover_station, self.consumer_stations[consumer])

    def run(self, until_s: float) -> None:
        self.kernel.run(until=until_s)

    # results --------------------------------------------------------------------

    def part(self, msg_id: int) -> int:
        return self.msgs[msg_id].conv % self.broker.partitions

    def consumed_ids(self) -> set[int]:
        return set(self.done_ids)

    def acked_lost(self) -> set[int]:
        """Records the producer was told were written that no consumer ever got."""
        return set(self.acked_s) - {m for _, _, m in self.deliveries}

    def latencies(self, ids: list[int] | None = None) -> np.ndarray:
        keys = self.acked_s if ids is None else [i for i in ids if i in self.acked_s]
        return np.array([self.acked_s[i] - self.published_s[i] for i in keys])


def assert_order_per_conversation(rig: Rig) -> None:
    """First deliveries of each conversation come in publish order."""
    seen: set[int] = set()
    order: dict[int, list[int]] = defaultdict(list)
    for _, _, msg_id in rig.deliveries:
        if msg_id not in seen:
            seen.add(msg_id)
            order[rig.msgs[msg_id].conv].append(msg_id)
    for ids in order.values():
        assert ids == sorted(ids)


# 1 ------------------------------------------------------------------------------


@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_healthy_run_consumes_every_record_once_in_order(acks: str) -> None:
    rig = Rig(1, acks=acks)
    rig.load(2000.0, until_s=10.0)
    rig.run(12.0)
    n = len(rig.msgs)
    assert n > 18_000
    assert len(rig.acked_s) == n and not rig.errors
    # every record handed over exactly once, and stored once
    delivered = [m for _, _, m in rig.deliveries]
    assert len(delivered) == n and set(delivered) == set(range(n))
    assert sorted(rig.done_ids) == list(range(n))
    assert_order_per_conversation(rig)
    # within each conversation the delivery order is exactly the publish order
    by_conv: dict[int, list[int]] = defaultdict(list)
    for m in delivered:
        by_conv[rig.msgs[m].conv].append(m)
    assert all(ids == sorted(ids) for ids in by_conv.values())
    c = rig.broker.counters()
    assert c["broker_truncated"] == 0 and c["broker_dropped"] == 0
    assert c["broker_elections"] == 0 and c["broker_rebalances"] == 0
    assert rig.broker.lag() == 0 and c["broker_max_lag"] >= 1
    # every partition went to member p mod 3
    for t, consumer, msg_id in rig.deliveries[:200]:
        assert consumer == rig.part(msg_id) % 3, t


# 2 ------------------------------------------------------------------------------


def _leader_crash(seed: int, acks: str) -> Rig:
    # 5,000 records/s around the crash, zones 1 ms apart: a follower's fetch round
    # (hop, append, hop) leaves a window of a few records the leader alone has
    rig = Rig(seed, acks=acks, hop_s=0.001)
    rig.load(5000.0, start_s=3.0, until_s=7.0)
    rig.at(5.0, rig.broker.crash, 0)
    rig.run(25.0)
    return rig


def test_acks1_leader_crash_loses_acknowledged_records_exactly_the_truncated_ones() -> None:
    lost_total = 0
    for seed in range(1, 7):
        rig = _leader_crash(seed, "1")
        lost = rig.acked_lost()
        truncated = rig.broker.counters()["broker_truncated"]
        assert len(lost) == truncated, seed
        # the lost records are in partitions node 0 led, acknowledged just before the crash
        assert all(rig.part(m) % 3 == 0 for m in lost)
        assert all(4.9 < rig.acked_s[m] <= 5.0 for m in lost)
        # everything else acknowledged was consumed
        assert rig.consumed_ids() == set(rig.acked_s) - lost
        assert_order_per_conversation(rig)
        lost_total += len(lost)
    assert lost_total > 0


def test_acks_all_leader_crash_loses_no_acknowledged_record() -> None:
    for seed in range(1, 7):
        rig = _leader_crash(seed, "all")
        assert not rig.acked_lost(), seed
        assert rig.broker.counters()["broker_truncated"] == 0
        assert len(rig.acked_s) == len(rig.msgs)  # retries got everything in within 30 s
        assert rig.consumed_ids() == set(range(len(rig.msgs)))
        assert_order_per_conversation(rig)


def test_acks0_losses_are_the_truncated_and_dropped_records() -> None:
    lost_total = 0
    for seed in range(1, 5):
        rig = _leader_crash(seed, "0")
        c = rig.broker.counters()
        lost = rig.acked_lost()
        assert len(lost) == c["broker_truncated"] + c["broker_dropped"], seed
        lost_total += len(lost)
    assert lost_total > 0


# 3 ------------------------------------------------------------------------------


def _two_followers_down(acks: str) -> Rig:
    rig = Rig(2, acks=acks)
    rig.load(1000.0, until_s=60.0)
    rig.at(2.0, rig.broker.crash, 1)
    rig.at(2.0, rig.broker.crash, 2)
    rig.at(40.0, rig.broker.recover, 1)
    rig.at(40.0, rig.broker.recover, 2)
    rig.run(75.0)
    return rig


def test_acks_all_refuses_writes_while_the_isr_is_below_min_insync_replicas() -> None:
    rig = _two_followers_down("all")
    b = rig.broker
    c = b.counters()
    assert c["broker_produce_errors"] > 0  # NotEnoughReplicas
    assert c["broker_isr_shrinks"] > 0
    # after the fence every partition is led by node 0 alone
    # nothing published after the crash is acknowledged while the followers are down
    during = [m for m, t in rig.published_s.items() if 2.01 < t < 40.0]
    assert during and not [m for m in during if rig.acked_s.get(m, 1e9) < 40.0]
    # once they are back and in sync, the records still within the delivery timeout
    # (published after t = 10 s) are retried and acknowledged, nothing is lost
    recent = [m for m in during if rig.published_s[m] > 10.5]
    assert all(m in rig.acked_s for m in recent)
    assert c["broker_produce_expired"] > 0  # those older than 30 s were given up
    assert not rig.acked_lost()
    assert all(len(b.isr[p]) == 3 for p in range(b.partitions))


def test_acks1_keeps_writing_with_one_replica() -> None:
    rig = _two_followers_down("1")
    after_fence = [m for m, t in rig.published_s.items() if 11.5 < t < 40.0]
    lat = rig.latencies(after_fence)
    assert len(lat) == len(after_fence) > 20_000
    assert lat.max() < 0.05
    assert rig.broker.counters()["broker_produce_errors"] == 0


# 4 ------------------------------------------------------------------------------


@pytest.mark.parametrize("acks", ["1", "all"])
@pytest.mark.parametrize("failover_s", [9.0, 4.0])
def test_produce_to_a_partition_whose_leader_crashed_waits_for_the_election(
    failover_s: float, acks: str
) -> None:
    rig = Rig(3, acks=acks, failover_s=failover_s)
    rig.load(1000.0, until_s=25.0)
    rig.at(5.0, rig.broker.crash, 0)
    rig.run(40.0)
    orphans = [m for m, t in rig.published_s.items() if t > 5.0 and rig.part(m) % 3 == 0]
    first_ok = min(rig.acked_s[m] for m in orphans) - 5.0
    # the session timeout, then at most one retry backoff, a hop and a replication round
    assert failover_s < first_ok < failover_s + 0.11
    assert {rig.broker.leader[p] for p in range(0, 12, 3)} == {1}
    assert len(rig.acked_s) == len(rig.msgs)
    others = [m for m, t in rig.published_s.items() if 5.0 < t < 6.0 and rig.part(m) % 3]
    if acks == "1":  # the partitions node 0 did not lead did not wait
        assert rig.latencies(others).max() < 0.05
    else:  # node 0 is in every ISR: acks=all waits for its removal everywhere
        assert failover_s - 1.01 < rig.latencies(others).max() < failover_s + 0.01


# 5 ------------------------------------------------------------------------------


def _follower_crash(acks: str, failover_s: float = 9.0) -> tuple[Rig, np.ndarray, np.ndarray]:
    rig = Rig(4, acks=acks, failover_s=failover_s)
    rig.load(1000.0, until_s=60.0)
    rig.at(5.0, rig.broker.crash, 2)
    rig.run(110.0)
    # partitions where node 2 is a follower (p mod 3 in {0, 1}): their leader lives
    ids = [m for m, t in rig.published_s.items() if t > 5.0 and rig.part(m) % 3 != 2]
    times = np.array([rig.published_s[m] for m in ids if m in rig.acked_s])
    return rig, times, rig.latencies(ids)


def test_a_follower_crash_stalls_acks_all_until_the_isr_shrinks() -> None:
    rig, times, lat = _follower_crash("all")
    # the controller fences node 2 after broker.session.timeout.ms (9 s) and drops
    # it from the ISR: records published just after the crash wait up to ~9 s
    assert 8.5 < lat.max() < 9.1
    assert lat[times > 14.2].max() < 0.05
    assert rig.broker.counters()["broker_isr_shrinks"] >= 8


def test_a_follower_crash_does_not_stall_acks1() -> None:
    _, _, lat = _follower_crash("1")
    assert lat.max() < 0.05


def test_without_fencing_replica_lag_time_max_drops_the_follower() -> None:
    # a session timeout longer than replica.lag.time.max.ms: the leader's own
    # lag check (every 15 s, lag > 30 s) shrinks the ISR first
    rig, times, lat = _follower_crash("all", failover_s=120.0)
    assert 30.0 < lat.max() < 45.1
    assert lat[times > 45.1].max() < 0.05
    assert any("replica lag" in what for _, what in rig.broker.events)


# 6 ------------------------------------------------------------------------------


def test_consumer_crash_rebalances_after_the_session_timeout_and_redelivers() -> None:
    rig = Rig(5, acks="all", consume_s=0.008)
    rig.load(1000.0, until_s=30.0)
    rig.crash_consumer(5.0, 0)
    rig.run(90.0)
    counts: dict[int, list[tuple[float, int]]] = defaultdict(list)
    for t, consumer, m in rig.deliveries:
        counts[m].append((t, consumer))
    twice = {m: v for m, v in counts.items() if len(v) > 1}
    assert twice  # the records in flight on consumer 0 when it died
    for first, second in twice.values():
        assert first[1] == 0 and second[1] != 0
        assert first[0] <= 5.0 and 5.0 + 42.0 <= second[0] <= 5.0 + 45.01
    b = rig.broker
    c = b.counters()
    assert c["broker_rebalances"] == 1 and c["broker_redelivered"] == len(twice)
    # records of consumer 0's partitions waited for the rebalance: lag built up
    assert c["broker_max_lag"] > 1000
    assert rig.consumed_ids() == set(range(len(rig.msgs))) and b.lag() == 0
    assert_order_per_conversation(rig)


def test_a_restarted_consumer_rejoins_the_group() -> None:
    rig = Rig(6, acks="1", consume_s=0.002)
    rig.load(500.0, until_s=80.0)
    rig.crash_consumer(5.0, 1)
    rig.recover_consumer(20.0, 1)
    rig.run(95.0)
    late = [c for t, c, _ in rig.deliveries if t > 55.0]
    assert set(late) == {0, 1, 2}  # member 1 is back (a new member after the old one expired)
    assert rig.consumed_ids() == set(range(len(rig.msgs)))
    assert rig.broker.counters()["broker_rebalances"] == 1


# 7 ------------------------------------------------------------------------------


def test_acks_all_costs_more_latency_than_acks1() -> None:
    seeds = range(11, 19)
    means: dict[str, list[float]] = {"1": [], "all": []}
    for acks in means:
        for seed in seeds:
            rig = Rig(seed, acks=acks)
            rig.load(1000.0, until_s=5.0)
            rig.run(6.0)
            means[acks].append(float(rig.latencies().mean()))
    one, every = mean_ci(means["1"]), mean_ci(means["all"])
    assert every.low > one.high
    diff = paired_difference(means["all"], means["1"])
    assert diff.significant and diff.low > 0
    # acks=all adds a replication round trip: hop + follower append + hop
    assert 0.0005 < diff.mean < 0.003


# other behaviour ------------------------------------------------------------------


def test_leadership_returns_to_preferred_leaders_after_recovery() -> None:
    rig = Rig(7, acks="all")
    rig.load(100.0, until_s=320.0)
    rig.at(5.0, rig.broker.crash, 0)
    rig.at(30.0, rig.broker.recover, 0)
    rig.run(330.0)
    b = rig.broker
    assert [b.leader[p] for p in range(b.partitions)] == [p % 3 for p in range(b.partitions)]
    assert any("preferred leader election" in what for _, what in b.events)
    assert any("back in the ISR" in what for _, what in b.events)
    assert not rig.acked_lost()
    assert rig.consumed_ids() == set(range(len(rig.msgs)))


def test_an_offline_partition_waits_for_its_last_in_sync_replica() -> None:
    # RF 2, min ISR 1: node 1 alone in the ISR of p0 (replicas 0, 1) dies after node 0
    rig = Rig(8, acks="all", replication_factor=2, min_insync_replicas=1, partitions=3)
    rig.load(200.0, until_s=60.0, convs=30)
    rig.at(5.0, rig.broker.crash, 0)
    rig.at(20.0, rig.broker.crash, 1)
    rig.at(30.0, rig.broker.recover, 0)  # not in the ISR: no unclean election
    rig.at(45.0, rig.broker.recover, 1)
    rig.run(80.0)
    b = rig.broker
    assert any("p0 offline" in what for _, what in b.events)
    p0 = [m for m, t in rig.published_s.items() if 30.0 < t < 44.0 and rig.part(m) == 0]
    assert p0 and all(rig.acked_s.get(m, 1e9) > 45.0 for m in p0)
    assert not rig.acked_lost()
    assert b.counters()["broker_truncated"] == 0


@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_random_faults_keep_the_guarantees_of_each_acks_setting(acks: str) -> None:
    """Broker and consumer crashes at random: order holds, losses are exactly the
    records Kafka admits it lost (none with acks=all), the rest is consumed."""
    for seed in (21, 22, 23):
        rig = Rig(seed, acks=acks, consume_s=0.004, failover_s=4.0)
        rig.load(400.0, until_s=80.0, convs=60)
        rng = np.random.default_rng(seed)
        t = 1.0
        while t < 70.0:
            t += float(rng.exponential(5.0))
            down = float(rng.uniform(0.5, 40.0))
            if rng.random() < 0.6:
                node = int(rng.integers(3))
                rig.at(t, rig.broker.crash, node)
                rig.at(t + down, rig.broker.recover, node)
            else:
                consumer = int(rng.integers(3))
                rig.crash_consumer(t, consumer)
                rig.recover_consumer(t + down, consumer)
        rig.run(250.0)
        c = rig.broker.counters()
        lost = rig.acked_lost()
        admitted = c["broker_truncated"] + (c["broker_dropped"] if acks == "0" else 0.0)
        assert len(lost) == admitted, seed
        if acks == "all":
            assert not lost
        assert_order_per_conversation(rig)
        assert set(rig.acked_s) - lost <= rig.consumed_ids()
        assert rig.broker.lag() == 0
