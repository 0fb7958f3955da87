"""Replicated and managed stores: what sets Cassandra, DynamoDB and MongoDB apart.

Each test drives one store directly with plain callbacks that record when they
were called, so that what is asserted is the store's own behaviour: which
writes fail when nodes are down, which are throttled, when a failover lets
writes through again, and which acknowledged writes a rollback takes away.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest

from sim.components.stores.cassandra import CassandraStore
from sim.components.stores.dynamodb import DynamoDbStore
from sim.components.stores.mongodb import MongoDbStore
from sim.components.stores.placement import consistency_count, stable_hash
from sim.core.distributions import lognormal
from sim.core.kernel import Kernel
from sim.core.metrics import Message
from sim.core.statistics import mean_ci
from sim.scenario.store import CassandraConfig, Consistency, DynamoDbConfig, MongoDbConfig

# --------------------------------------------------------------------------- helpers


def message(i: int, conv: int, payload: int = 200) -> Message:
    return Message(i, conv, 0, 0, 0.0, payload, payload + 10, payload + 10)


class Calls:
    """Records the callbacks of writes and reads: what completed, when, and after how long."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.started: dict[int, float] = {}
        self.ok: dict[int, float] = {}
        self.error: dict[int, float] = {}
        self.lost: list[Message] = []

    def write(self, store: Any, msg: Message) -> None:
        self.started[msg.msg_id] = self.kernel.now
        store.write(msg, self._ok, self._error)

    def read(self, store: Any, key: int, tag: int) -> None:
        self.started[tag] = self.kernel.now
        store.read(key, self._ok_tag, self._error_tag, tag)

    def _ok(self, msg: Message) -> None:
        assert msg.msg_id not in self.ok and msg.msg_id not in self.error
        self.ok[msg.msg_id] = self.kernel.now

    def _error(self, msg: Message) -> None:
        assert msg.msg_id not in self.ok and msg.msg_id not in self.error
        self.error[msg.msg_id] = self.kernel.now

    def _ok_tag(self, tag: int) -> None:
        self.ok[tag] = self.kernel.now

    def _error_tag(self, tag: int) -> None:
        self.error[tag] = self.kernel.now

    def on_lost(self, msgs: Sequence[Message]) -> None:
        self.lost.extend(msgs)

    def latencies(self) -> list[float]:
        return [t - self.started[i] for i, t in self.ok.items()]


def schedule_writes(
    kernel: Kernel,
    store: Any,
    calls: Calls,
    count: int,
    rate: float,
    conv_of: Callable[[int], int],
    start_s: float = 0.0,
    payload: int = 200,
) -> list[Message]:
    msgs = [message(i, conv_of(i), payload) for i in range(count)]
    for i, msg in enumerate(msgs):
        kernel.after(start_s + i / rate, lambda m: calls.write(store, m), msg)
    return msgs


def schedule_reads(
    kernel: Kernel, store: Any, calls: Calls, keys: Sequence[int], rate: float, start_s: float = 0.0
) -> None:
    """One read of ``keys[i]`` (tagged ``i``) every ``1 / rate`` seconds."""
    for i, key in enumerate(keys):
        kernel.after(start_s + i / rate, lambda ctx: calls.read(store, ctx[0], ctx[1]), (key, i))


def net(kernel: Kernel, mean_s: float = 0.0005) -> Callable[[], float]:
    """A one-way internal hop: lognormal, from its own stream."""
    return lognormal(mean_s, 0.5).sampler(kernel.streams.generator("test.net"))


def crash_at(kernel: Kernel, store: Any, node: int, at_s: float) -> None:
    kernel.after(at_s - kernel.now, store.crash, node)


def recover_at(kernel: Kernel, store: Any, node: int, at_s: float) -> None:
    kernel.after(at_s - kernel.now, store.recover, node)


# --------------------------------------------------------------------------- common


def test_stable_hash_is_splitmix64_and_spreads_consecutive_ids() -> None:
    # the first outputs of SplitMix64 seeded with 0 and 1 (the published reference values)
    assert stable_hash(0) == 0xE220A8397B1DCDAF
    assert stable_hash(1) == 0x910A2DEC89025CC1
    counts = np.bincount([stable_hash(i) % 8 for i in range(8000)], minlength=8)
    assert counts.min() > 850 and counts.max() < 1150


def test_consistency_counts() -> None:
    assert [consistency_count(c, 3) for c in Consistency] == [1, 2, 3]
    assert [consistency_count(c, 5) for c in Consistency] == [1, 3, 5]


# --------------------------------------------------------------------------- Cassandra


def cassandra(kernel: Kernel, **fields: Any) -> CassandraStore:
    spec = CassandraConfig(kind="cassandra", **{"nodes": 6, **fields})
    return CassandraStore(spec, kernel, net(kernel), 0.0)


def test_cassandra_replicas_are_rf_consecutive_ring_nodes_from_a_stable_hash() -> None:
    a = cassandra(Kernel(1))
    b = cassandra(Kernel(2))
    seen: set[int] = set()
    for conv in range(200):
        reps = a.replicas(conv)
        assert reps == b.replicas(conv)  # independent of seed and process
        assert len(reps) == 3
        assert [(reps[0] + i) % 6 for i in range(3)] == list(reps)
        seen.update(reps)
    assert seen == set(range(6))


def test_cassandra_quorum_survives_one_node_down_with_no_failed_write() -> None:
    """RF 3, QUORUM, node 2 of 6 down from t=0.5: 10,000 writes at 1,000/s all succeed."""
    k = Kernel(3)
    store = cassandra(k, write_consistency="quorum")
    calls = Calls(k)
    schedule_writes(k, store, calls, 10_000, 1000.0, lambda i: i % 500)
    crash_at(k, store, 2, 0.5)
    k.run(until=15.0)
    assert len(calls.error) == 0
    assert len(calls.ok) == 10_000
    # about half the conversations have node 2 among their 3 replicas: each such write is hinted
    assert 0.4 * 9500 < store.hints_stored < 0.6 * 9500
    assert store.counters()["store_unavailable"] == 0


def test_cassandra_all_fails_exactly_for_conversations_on_the_down_node() -> None:
    k = Kernel(4)
    store = cassandra(k, write_consistency="all")
    calls = Calls(k)
    msgs = schedule_writes(k, store, calls, 5000, 1000.0, lambda i: i % 500, start_s=1.0)
    crash_at(k, store, 2, 0.5)
    k.run(until=10.0)
    on_down = {conv for conv in range(500) if 2 in store.replicas(conv)}
    assert 0 < len(on_down) < 500
    failed_convs = {m.conv for m in msgs if m.msg_id in calls.error}
    ok_convs = {m.conv for m in msgs if m.msg_id in calls.ok}
    assert failed_convs == on_down
    assert ok_convs == set(range(500)) - on_down
    assert len(calls.ok) + len(calls.error) == 5000
    # UnavailableException: the coordinator refuses at once, nothing is written or hinted
    assert all(calls.error[i] == calls.started[i] for i in calls.error)
    assert store.unavailable == len(calls.error)
    assert store.hints_stored == 0


def test_cassandra_one_survives_two_nodes_down_where_quorum_does_not() -> None:
    down = (2, 3)
    results = {}
    for level in ("one", "quorum"):
        k = Kernel(5)
        store = cassandra(k, write_consistency=level)
        calls = Calls(k)
        msgs = schedule_writes(k, store, calls, 3000, 1000.0, lambda i: i % 300, start_s=1.0)
        for node in down:
            crash_at(k, store, node, 0.5)
        k.run(until=8.0)
        results[level] = (store, msgs, calls)
    store, msgs, calls = results["one"]
    # every key keeps a live replica (RF 3 on consecutive nodes, 2 down): ONE never fails
    assert all(any(r not in down for r in store.replicas(c)) for c in range(300))
    assert len(calls.error) == 0 and len(calls.ok) == 3000
    store, msgs, calls = results["quorum"]
    one_live = {c for c in range(300) if sum(r not in down for r in store.replicas(c)) < 2}
    assert one_live  # keys whose replicas include both down nodes
    assert {m.conv for m in msgs if m.msg_id in calls.error} == one_live


def test_cassandra_hints_are_stored_while_down_and_replayed_on_recovery() -> None:
    """3 nodes, RF 3: node 1 holds every key. Down from 1 s to 4 s of a 500/s load."""
    k = Kernel(6)
    store = cassandra(k, nodes=3)
    calls = Calls(k)
    msgs = schedule_writes(k, store, calls, 3000, 500.0, lambda i: i % 100)
    crash_at(k, store, 1, 1.0)
    recover_at(k, store, 1, 4.0)
    k.run(until=3.9)
    sent_while_down = sum(1 for m in msgs if 1.0 <= calls.started.get(m.msg_id, -1.0) < 3.9)
    # one hint per write sent while down, plus writes in flight to node 1 when it crashed
    assert sent_while_down <= store.hints_stored <= sent_while_down + 10
    assert store.hints_replayed == 0
    k.run(until=10.0)
    assert store.hints_replayed == store.hints_stored >= 1500
    assert len(calls.error) == 0
    assert any("replaying" in what for _, what in store.events)


def test_cassandra_hints_stop_after_the_hint_window_and_without_hinted_handoff() -> None:
    stored = {}
    variants: dict[str, dict[str, Any]] = {
        "window 1 s": {"max_hint_window_s": 1.0},
        "no handoff": {"hinted_handoff": False},
    }
    for name, fields in variants.items():
        k = Kernel(7)
        store = cassandra(k, nodes=3, **fields)
        calls = Calls(k)
        schedule_writes(k, store, calls, 2000, 500.0, lambda i: i % 100)
        crash_at(k, store, 1, 0.5)
        k.run(until=6.0)
        stored[name] = (store.hints_stored, store.hints_dropped)
        assert len(calls.error) == 0
    hinted, dropped = stored["window 1 s"]
    assert 500 <= hinted <= 510  # the first second of the outage only
    assert dropped > 1000
    assert stored["no handoff"] == (0, 0)


def test_cassandra_write_whose_replica_crashes_in_flight_times_out() -> None:
    """ALL, a replica crashes while writing: the coordinator never gets its ack."""
    k = Kernel(8)
    store = cassandra(k, write_consistency="all", write_s=0.01)
    calls = Calls(k)
    k.after(0.0, lambda _: calls.write(store, message(0, 3)), None)
    crash_at(k, store, store.replicas(3)[1], 0.005)
    k.run(until=5.0)
    assert calls.error == {0: pytest.approx(2.0)}
    assert store.timeouts == 1
    assert store.hints_stored == 1  # the coordinator hints the replica that did not answer


def test_cassandra_quorum_write_latency_is_at_least_one_latency() -> None:
    """Paired over 10 seeds (common random numbers): mean QUORUM minus mean ONE latency > 0."""
    diffs = []
    for seed in range(10):
        means = {}
        for level in ("one", "quorum"):
            k = Kernel(seed)
            store = cassandra(k, write_consistency=level)
            calls = Calls(k)
            schedule_writes(k, store, calls, 2000, 500.0, lambda i: i % 400)
            k.run(until=6.0)
            assert len(calls.ok) == 2000
            means[level] = float(np.mean(calls.latencies()))
        diffs.append(means["quorum"] - means["one"])
    ci = mean_ci(diffs)
    assert ci.low > 0.0
    # QUORUM waits for a remote replica: two hops (2 x 0.5 ms) more, roughly
    assert 0.0005 < ci.mean < 0.003


def test_cassandra_reads_need_read_consistency_live_replicas() -> None:
    k = Kernel(9)
    store = cassandra(k, read_consistency="all")
    calls = Calls(k)
    users = list(range(300))
    for user in users:
        k.after(1.0 + user / 1000, lambda u: calls.read(store, u, u), user)
    crash_at(k, store, 4, 0.5)
    k.run(until=5.0)
    on_down = {u for u in users if 4 in store.replicas(u)}
    assert set(calls.error) == on_down
    assert set(calls.ok) == set(users) - on_down


def test_cassandra_read_latency_is_the_slowest_of_the_replicas_asked() -> None:
    means = {}
    for level in ("one", "all"):
        k = Kernel(10)
        store = cassandra(k, read_consistency=level)
        calls = Calls(k)
        schedule_reads(k, store, calls, range(2000), 1000.0)
        k.run(until=5.0)
        assert len(calls.ok) == 2000
        means[level] = float(np.mean(calls.latencies()))
    # ONE: the coordinator's own read (1 ms); ALL: the slowest of it and two remote reads
    assert means["one"] == pytest.approx(0.001, rel=0.15)
    assert means["all"] > means["one"] + 0.001


# --------------------------------------------------------------------------- DynamoDB


def dynamo(kernel: Kernel, **fields: Any) -> DynamoDbStore:
    spec = DynamoDbConfig(kind="dynamodb", **{"write_s": 0.005, "read_s": 0.004, **fields})
    return DynamoDbStore(spec, kernel, lambda: 0.0005, 0.0)


def test_dynamodb_hot_partition_throttles_while_the_table_has_capacity() -> None:
    """1,500 writes/s: to one conversation (one partition of 1,000 WCU/s) or spread over
    1,000 conversations. The table has 4 x 1,000 WCU/s: only the hot partition throttles."""
    results = {}
    for name, conv_of in {"hot": lambda i: 7, "spread": lambda i: i % 1000}.items():
        k = Kernel(11)
        store = dynamo(k)
        calls = Calls(k)
        schedule_writes(k, store, calls, 30_000, 1500.0, conv_of)
        k.run(until=60.0)
        results[name] = (store, calls)
    hot, calls = results["hot"]
    assert hot.throttled > 0
    assert hot.throttle_errors > 0  # gave up after the SDK's 10 retries
    assert len(calls.error) == hot.throttle_errors
    assert len(calls.ok) + len(calls.error) == 30_000
    busy = hot.partition_of(7)
    assert hot.throttled_by_partition[busy] == hot.throttled
    # what got through: the partition's 1,000 WCU/s plus its initial second
    assert len(calls.ok) <= 1000 * 60 + 1000
    assert any("throttling" in what for _, what in hot.events)
    spread, calls = results["spread"]
    assert spread.throttled == 0
    assert len(calls.ok) == 30_000
    assert spread.counters()["store_wcu"] == 30_000


def test_dynamodb_burst_capacity_lets_a_short_burst_through() -> None:
    """5,000 writes in one second to one partition: throttled on a fresh table, not after
    100 s of unused capacity has accumulated."""
    throttled = {}
    for name, start in {"fresh": 0.0, "after 100 s idle": 100.0}.items():
        k = Kernel(12)
        store = dynamo(k)
        calls = Calls(k)
        schedule_writes(k, store, calls, 5000, 5000.0, lambda i: 7, start_s=start)
        k.run(until=start + 60.0)
        throttled[name] = store.throttled
    assert throttled["fresh"] > 0
    assert throttled["after 100 s idle"] == 0


def test_dynamodb_burst_capacity_is_capped_at_300_seconds() -> None:
    """10 WCU/s, idle 1,000 s: 3,000 units saved, not 10,000. No retries: the rest fails."""
    k = Kernel(13)
    store = dynamo(k, write_units_per_partition=10.0, sdk_max_retries=0)
    calls = Calls(k)
    schedule_writes(k, store, calls, 5000, 5000.0, lambda i: 7, start_s=1000.0)
    k.run(until=1010.0)
    assert 3000 <= len(calls.ok) <= 3011  # 300 s x 10 WCU/s, and the burst's own second
    assert len(calls.error) == store.throttled == store.throttle_errors


def test_dynamodb_write_units_follow_item_size() -> None:
    k = Kernel(14)
    store = dynamo(k)
    calls = Calls(k)
    # 900 B + 100 B of attributes: 1 WCU; 2,000 B + 100 B: 3 WCU
    for i in range(10):
        calls.write(store, message(i, i, payload=900))
    k.run(until=1.0)
    assert store.wcu_consumed == 10
    for i in range(10, 20):
        calls.write(store, message(i, i, payload=2000))
    k.run(until=2.0)
    assert store.wcu_consumed == 10 + 30
    assert len(calls.ok) == 20


def test_dynamodb_eventually_consistent_reads_cost_half() -> None:
    """4,500 queries/s of one user: 4,500 RCU/s strongly consistent (over the partition's
    3,000), 2,250 RCU/s eventually consistent (under it)."""
    results = {}
    for consistent in (True, False):
        k = Kernel(15)
        store = dynamo(k, consistent_reads=consistent)
        calls = Calls(k)
        schedule_reads(k, store, calls, [42] * 45_000, 4500.0)
        k.run(until=40.0)
        results[consistent] = (store, calls)
    strong, _ = results[True]
    assert strong.throttled_reads > 0
    eventual, calls = results[False]
    assert eventual.throttled == 0
    assert len(calls.ok) == 45_000
    assert eventual.rcu_consumed == pytest.approx(0.5 * 45_000)


def test_dynamodb_throttled_requests_retry_with_backoff_then_fail() -> None:
    """With 10 retries, a throttled write fails only after its backoffs; with 0, at once."""
    first_error = {}
    for retries in (0, 10):
        k = Kernel(16)
        store = dynamo(k, sdk_max_retries=retries)
        calls = Calls(k)
        schedule_writes(k, store, calls, 20_000, 2000.0, lambda i: 7)
        k.run(until=60.0)
        assert store.throttle_errors > 0
        assert store.throttled >= store.throttle_errors * (retries + 1)
        first_error[retries] = min(calls.error[i] - calls.started[i] for i in calls.error)
    assert first_error[0] == 0.0
    # 10 retries: at least the 10 round trips of 1 ms; full jitter makes the sleeps random
    assert first_error[10] > 10 * 0.001


def test_dynamodb_endpoint_unavailable_fails_every_call() -> None:
    k = Kernel(17)
    store = dynamo(k)
    calls = Calls(k)
    msgs = schedule_writes(k, store, calls, 3000, 1000.0, lambda i: i % 100)
    crash_at(k, store, 0, 1.0)
    recover_at(k, store, 0, 2.0)
    k.run(until=5.0)
    for m in msgs:
        started = calls.started[m.msg_id]
        if 1.0 <= started < 2.0:
            assert calls.error[m.msg_id] == started
        elif started > 2.0 or started < 0.99:
            assert m.msg_id in calls.ok
    # calls in progress when the endpoint went down fail then
    in_progress = [i for i, t in calls.error.items() if t == 1.0 and calls.started[i] < 1.0]
    assert in_progress
    assert store.refused == len(calls.error)


# --------------------------------------------------------------------------- MongoDB


def mongo(kernel: Kernel, hop_s: float = 0.0005, **fields: Any) -> MongoDbStore:
    spec = MongoDbConfig(kind="mongodb", **{"nodes": 3, **fields})
    return MongoDbStore(spec, kernel, net(kernel, hop_s), 0.0)


def test_mongodb_primary_crash_blocks_writes_until_the_election() -> None:
    k = Kernel(18)
    store = mongo(k)
    calls = Calls(k)
    store.lost = calls.on_lost
    schedule_writes(k, store, calls, 5000, 200.0, lambda i: i % 50)
    for i in range(200):
        k.after(6.0 + i / 100, lambda tag: calls.read(store, 1, 100_000 + tag), i)
    crash_at(k, store, 0, 5.0)
    k.run(until=40.0)
    assert not calls.error
    times = sorted(calls.ok.values())
    during = [t for t in times if 5.0 < t <= 5.0 + store.election_timeout_s]
    assert during == []
    after = [t for t in times if t > 5.0]
    # the election takes a few hundred ms after the 10 s election timeout
    assert 15.2 <= after[0] <= 15.6
    assert store.primary not in (None, 0)
    assert store.elections == 1
    # everything sent during the outage, and the reads, completed after the election
    assert len(calls.ok) == 5000 + 200
    assert store.retried > 0  # operations in progress at the crash were retried once
    assert not calls.lost  # majority (the default): nothing acknowledged rolled back


def run_mongo_failover(seed: int, write_concern: str) -> tuple[MongoDbStore, Calls]:
    """5,000 writes/s for 2 s around a primary crash at 5 s, members one cross-AZ hop apart."""
    k = Kernel(seed)
    store = mongo(k, hop_s=0.001, workers=32, write_concern=write_concern)
    calls = Calls(k)
    store.lost = calls.on_lost
    schedule_writes(k, store, calls, 10_000, 5000.0, lambda i: i % 100, start_s=4.0)
    crash_at(k, store, 0, 5.0)
    k.run(until=20.0)
    return store, calls


def test_mongodb_w1_rolls_back_acknowledged_writes_and_majority_does_not() -> None:
    seeds = range(6)
    w1_lost = []
    for seed in seeds:
        store, calls = run_mongo_failover(seed, "w1")
        for msg in calls.lost:
            # acknowledged by the old primary before it crashed
            assert calls.ok[msg.msg_id] <= 5.0
        assert store.rolled_back == len(calls.lost)
        assert not ({m.msg_id for m in calls.lost} & {m.msg_id for m in store.oplog})
        w1_lost.append(len(calls.lost))
        store, calls = run_mongo_failover(seed, "majority")
        assert calls.lost == [] and store.rolled_back == 0
        assert len(calls.ok) == 10_000
    assert sum(w1_lost) > 0
    assert sum(1 for n in w1_lost if n > 0) >= len(seeds) // 2


def test_mongodb_majority_waits_for_a_secondary() -> None:
    means = {}
    for concern in ("w1", "majority"):
        k = Kernel(19)
        store = mongo(k, write_concern=concern)
        calls = Calls(k)
        schedule_writes(k, store, calls, 2000, 500.0, lambda i: i % 100)
        k.run(until=6.0)
        assert len(calls.ok) == 2000
        means[concern] = float(np.mean(calls.latencies()))
    # majority: the primary's write, a getMore round, a secondary's write, a position report
    assert means["majority"] > means["w1"] + 0.002


def test_mongodb_without_a_majority_there_is_no_primary_and_server_selection_times_out() -> None:
    k = Kernel(20)
    store = mongo(k)
    calls = Calls(k)
    schedule_writes(k, store, calls, 10, 1.0, lambda i: i, start_s=2.0)
    crash_at(k, store, 0, 1.0)  # the primary
    crash_at(k, store, 1, 1.0)  # and a secondary: one of three left
    k.run(until=60.0)
    assert store.primary is None
    assert store.elections == 0
    assert set(calls.error) == set(range(10))
    for i, t in calls.error.items():
        assert t == pytest.approx(calls.started[i] + 30.0)
    # a member comes back: a majority again, an election, writes flow
    recover_at(k, store, 1, 60.0)
    k.after(1.0, lambda m: calls.write(store, m), message(99, 1))
    k.run(until=70.0)
    assert store.primary is not None and 99 in calls.ok


def test_mongodb_primary_steps_down_without_a_majority() -> None:
    k = Kernel(21)
    store = mongo(k)
    crash_at(k, store, 1, 1.0)
    crash_at(k, store, 2, 1.0)
    k.run(until=12.0)
    assert store.primary is None and store.stepdowns == 1


def test_mongodb_old_primary_rejoins_as_a_secondary() -> None:
    k = Kernel(22)
    store = mongo(k)
    calls = Calls(k)
    schedule_writes(k, store, calls, 4000, 100.0, lambda i: i % 10)
    crash_at(k, store, 0, 5.0)
    recover_at(k, store, 0, 20.0)
    k.run(until=25.0)
    new_primary = store.primary
    assert new_primary not in (None, 0)
    assert store.received[0] >= len(store.oplog) - 5  # caught up, following the new primary
    # the new primary fails too: node 0 can be elected again, nothing acknowledged is lost
    crash_at(k, store, new_primary, 26.0)
    k.run(until=50.0)
    assert store.elections == 2
    assert store.primary is not None and store.primary != new_primary
    assert not calls.error and len(calls.ok) == 4000
