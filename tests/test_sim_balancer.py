"""Load balancer policies and active health checks, on real stations and a real kernel."""

from __future__ import annotations

import hashlib
from collections import Counter

import numpy as np
import pytest

from sim.components.balancer import CACHED_KEYS, Balancer, splitmix64, splitmix64_array
from sim.components.station import Station
from sim.core.kernel import Kernel
from sim.core.statistics import mean_ci
from sim.scenario.architecture import BalancerPolicy, HealthCheck, LoadBalancer

INTERVAL_S = 2.0
FALL = 3
RISE = 2


def tier(
    count: int,
    policy: BalancerPolicy = BalancerPolicy.ROUND_ROBIN,
    checks: bool = False,
    seed: int = 1,
    name: str = "gateway",
    workers: int = 1,
) -> tuple[Kernel, list[Station], Balancer]:
    kernel = Kernel(seed)
    stations = [Station(kernel, name, i, workers, 0.0) for i in range(count)]
    spec = LoadBalancer(
        policy=policy,
        health_check=HealthCheck(
            enabled=checks,
            interval_s=INTERVAL_S,
            unhealthy_threshold=FALL,
            healthy_threshold=RISE,
        ),
    )
    return kernel, stations, Balancer(spec, stations, kernel, name)


def crash_at(kernel: Kernel, station: Station, at_s: float) -> None:
    """Crash ``station`` at simulated time ``at_s`` (absolute)."""

    def crash(_: object) -> None:
        station.crash()

    kernel.after(at_s - kernel.now, crash)


def recover_at(kernel: Kernel, station: Station, at_s: float) -> None:
    """Bring ``station`` back at simulated time ``at_s`` (absolute)."""
    kernel.after(at_s - kernel.now, lambda _: station.recover())


def index_of(station: Station | None) -> int:
    assert station is not None
    return station.index


def connect(lb: Balancer, users: int) -> set[int]:
    """Open one connection per user, counted as the caller does; the instances used."""
    used = set()
    for user in range(users):
        index = index_of(lb.pick_connection(user))
        lb.connections[index] += 1
        used.add(index)
    return used


# ------------------------------------------------------------ round robin


def test_round_robin_cycles_through_all_then_skips_an_ejected_instance() -> None:
    kernel, stations, lb = tier(4, checks=True)
    assert [index_of(lb.pick_request(0)) for _ in range(8)] == [0, 1, 2, 3, 0, 1, 2, 3]
    assert [index_of(lb.pick_connection(0)) for _ in range(4)] == [0, 1, 2, 3]
    crash_at(kernel, stations[2], 1.0)
    kernel.run(until=1.0 + FALL * INTERVAL_S + 0.01)
    assert not lb.healthy(2)
    assert [lb.healthy(i) for i in (0, 1, 3)] == [True, True, True]
    picks = [index_of(lb.pick_request(0)) for _ in range(30)]
    assert 2 not in picks
    assert Counter(picks) == {0: 10, 1: 10, 3: 10}  # the others share evenly


def test_skip_advances_round_robin() -> None:
    _, _, lb = tier(3)
    lb.skip(4)
    assert [index_of(lb.pick_connection(0)) for _ in range(3)] == [1, 2, 0]


def test_every_policy_returns_none_without_instances() -> None:
    for policy in BalancerPolicy:
        _, _, lb = tier(0, policy, checks=True)
        assert lb.pick_connection(7) is None
        assert lb.pick_request(7) is None


# ------------------------------------------------------------ least connections


def test_least_connections_picks_the_minimum() -> None:
    kernel, stations, lb = tier(4, BalancerPolicy.LEAST_CONNECTIONS, checks=True)
    lb.connections[:] = [5, 2, 7, 2]
    assert index_of(lb.pick_connection(0)) == 1  # the first of the tied minima
    lb.connections[1] = 9
    assert index_of(lb.pick_connection(0)) == 3
    # outstanding requests (in service + queued): 3, 1, 2, 4
    for station, jobs in zip(stations, [3, 1, 2, 4], strict=True):
        for _ in range(jobs):
            station.submit(100.0, lambda _: None, None)
    assert [s.outstanding for s in stations] == [3, 1, 2, 4]
    assert index_of(lb.pick_request(0)) == 1
    # once instance 1 is out of rotation, the minimum among the others
    crash_at(kernel, stations[1], 1.0)
    kernel.run(until=1.0 + FALL * INTERVAL_S + 0.01)
    assert not lb.healthy(1)
    assert index_of(lb.pick_request(0)) == 2
    assert index_of(lb.pick_connection(0)) == 3  # 5, (9), 7, 2


# ------------------------------------------------------------ consistent hashing

KEYS = 100_000


def test_splitmix64_matches_the_reference_and_its_vectorised_form() -> None:
    # the first output of SplitMix64 seeded with 0 (Steele, Lea & Flood 2014; Vigna)
    assert splitmix64(0) == 0xE220A8397B1DCDAF
    keys = [0, 1, 2, 12345, CACHED_KEYS - 1, CACHED_KEYS, 2**63, 2**64 - 1]
    assert splitmix64_array(np.array(keys, dtype=np.uint64)).tolist() == [
        splitmix64(k) for k in keys
    ]


def test_consistent_hash_cached_and_direct_lookups_agree() -> None:
    _, _, lb = tier(5, BalancerPolicy.CONSISTENT_HASH)
    ring = sorted(
        (h, i) for i in range(5) for h in (_point(i, p) for p in range(lb.spec.hash_points))
    )
    hashes = [h for h, _ in ring]

    def expected(key: int) -> int:
        h = splitmix64(key % 2**64)
        pos = next((j for j, x in enumerate(hashes) if x >= h), 0)
        return ring[pos][1]

    keys = [0, 1, 999, 5000, 77_777, CACHED_KEYS + 3, 2**40 + 1, -1]
    for key in keys:  # the first lookups grow the cache, the big ones bypass it
        assert index_of(lb.pick_request(key)) == expected(key), key
    assert [index_of(lb.pick_connection(k)) for k in keys] == [expected(k) for k in keys]


def _point(index: int, point: int) -> int:
    """Where point ``point`` of instance ``index`` of the gateway ring should sit."""
    digest = hashlib.blake2b(f"gateway.{index}.{point}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def test_consistent_hash_is_sticky_and_spreads_keys_evenly() -> None:
    _, _, lb = tier(8, BalancerPolicy.CONSISTENT_HASH)
    owners = [index_of(lb.pick_connection(k)) for k in range(KEYS)]
    assert owners == [index_of(lb.pick_request(k)) for k in range(KEYS)]  # same key, same one
    counts = np.bincount(owners, minlength=8)
    share = KEYS / 8
    assert counts.min() >= 0.85 * share, counts
    assert counts.max() <= 1.15 * share, counts
    # a second balancer with the same name builds the same ring: nothing is salted
    _, _, again = tier(8, BalancerPolicy.CONSISTENT_HASH, seed=99)
    assert owners[:1000] == [index_of(again.pick_connection(k)) for k in range(1000)]


def test_consistent_hash_ejection_moves_only_the_lost_instances_keys() -> None:
    n = 8
    kernel, stations, lb = tier(n, BalancerPolicy.CONSISTENT_HASH, checks=True)
    before = [index_of(lb.pick_connection(k)) for k in range(KEYS)]
    crash_at(kernel, stations[3], 1.0)
    kernel.run(until=1.0 + FALL * INTERVAL_S + 0.01)
    assert not lb.healthy(3)
    after = [index_of(lb.pick_connection(k)) for k in range(KEYS)]
    moved = 0
    for old, new in zip(before, after, strict=True):
        if old == 3:
            assert new != 3
            moved += 1
        else:
            assert new == old  # every key not on the lost instance stays
    assert 0.85 / n <= moved / KEYS <= 1.15 / n
    # the moved keys spread over the survivors rather than piling on one neighbour
    heirs = Counter(new for old, new in zip(before, after, strict=True) if old == 3)
    assert len(heirs) == n - 1
    assert max(heirs.values()) < 0.5 * moved
    # once readmitted, every key is back where it was
    recover_at(kernel, stations[3], 20.0)
    kernel.run(until=20.0 + RISE * INTERVAL_S + 0.01)
    assert lb.healthy(3)
    assert before == [index_of(lb.pick_connection(k)) for k in range(KEYS)]


# ------------------------------------------------------------ power of two choices


def test_power_of_two_draws_two_distinct_instances() -> None:
    _, stations, lb = tier(2, BalancerPolicy.POWER_OF_TWO)
    lb.connections[:] = [100, 0]
    assert {index_of(lb.pick_connection(0)) for _ in range(200)} == {1}
    for _ in range(3):
        stations[0].submit(100.0, lambda _: None, None)
    assert {index_of(lb.pick_request(0)) for _ in range(200)} == {1}


def test_power_of_two_with_equal_loads_is_uniform_and_reproducible() -> None:
    _, _, lb = tier(8, BalancerPolicy.POWER_OF_TWO, seed=5)
    picks = [index_of(lb.pick_request(0)) for _ in range(80_000)]
    counts = np.bincount(picks, minlength=8)
    assert np.all(np.abs(counts - 10_000) < 500), counts  # 5 standard deviations
    _, _, same = tier(8, BalancerPolicy.POWER_OF_TWO, seed=5)
    assert picks[:500] == [index_of(same.pick_request(0)) for _ in range(500)]


def test_power_of_two_lowers_the_maximum_load_of_balls_into_bins() -> None:
    bins, balls = 100, 1000
    diffs = []
    two_max = []
    for seed in range(12):
        kernel, _, lb = tier(bins, BalancerPolicy.POWER_OF_TWO, seed=seed)
        for _ in range(balls):
            lb.connections[index_of(lb.pick_connection(0))] += 1
        assert sum(lb.connections) == balls
        uniform = kernel.streams.generator("test.uniform").integers(0, bins, balls)
        one_max = int(np.bincount(uniform, minlength=bins).max())
        two_max.append(max(lb.connections))
        diffs.append(one_max - max(lb.connections))
    ci = mean_ci(diffs)
    assert ci.low > 0, ci  # the 95% CI of (uniform max - two-choice max) excludes 0
    # with two choices the maximum stays within a few balls of the mean of 10
    assert mean_ci(two_max).high < 15, two_max


# ------------------------------------------------------------ health checks


@pytest.mark.parametrize("victim", range(4))
def test_health_checks_eject_after_fall_and_readmit_after_rise(victim: int) -> None:
    kernel, stations, lb = tier(4, checks=True)
    crash_s, recover_s = 5.0, 20.0
    crash_at(kernel, stations[victim], crash_s)
    recover_at(kernel, stations[victim], recover_s)
    # out of rotation no earlier than FALL failed checks after the crash
    kernel.run(until=crash_s + (FALL - 1) * INTERVAL_S - 1e-6)
    assert lb.healthy(victim)
    # and no later than the FALL-th check after the crash (one interval of phase)
    kernel.run(until=crash_s + FALL * INTERVAL_S + 1e-6)
    assert not lb.healthy(victim)
    assert all(lb.healthy(i) for i in range(4) if i != victim)
    picks = {index_of(lb.pick_request(0)) for _ in range(12)}
    assert picks == {0, 1, 2, 3} - {victim}
    # back in rotation after RISE passing checks following the recovery
    kernel.run(until=recover_s + (RISE - 1) * INTERVAL_S - 1e-6)
    assert not lb.healthy(victim)
    kernel.run(until=recover_s + RISE * INTERVAL_S + 1e-6)
    assert lb.healthy(victim)
    assert {index_of(lb.pick_request(0)) for _ in range(4)} == {0, 1, 2, 3}
    [(ejected_s, readmitted_s, name)] = lb.ejections
    assert name == f"gateway.{victim}"
    assert crash_s + (FALL - 1) * INTERVAL_S <= ejected_s <= crash_s + FALL * INTERVAL_S
    assert readmitted_s is not None
    assert recover_s + (RISE - 1) * INTERVAL_S <= readmitted_s <= recover_s + RISE * INTERVAL_S


def test_health_check_phases_are_spread_over_the_interval() -> None:
    kernel, stations, lb = tier(4, checks=True)
    for station in stations:
        crash_at(kernel, station, 0.1)
    kernel.run(until=30.0)
    times = sorted(ejected_s for ejected_s, _, _ in lb.ejections)
    # first checks at (i + 1) / N * interval: 0.5, 1, 1.5, 2 s, then every interval
    assert times == pytest.approx([t + (FALL - 1) * INTERVAL_S for t in (0.5, 1.0, 1.5, 2.0)])


def test_a_crash_shorter_than_fall_checks_is_not_ejected() -> None:
    kernel, stations, lb = tier(2, checks=True)
    crash_at(kernel, stations[0], 5.0)
    recover_at(kernel, stations[0], 5.0 + (FALL - 1) * INTERVAL_S - 0.5)
    kernel.run(until=40.0)
    assert lb.healthy(0)
    assert lb.ejections == []


@pytest.mark.parametrize("policy", list(BalancerPolicy))
def test_without_health_checks_a_crashed_instance_keeps_being_picked(
    policy: BalancerPolicy,
) -> None:
    kernel, stations, lb = tier(4, policy, checks=False)
    crash_at(kernel, stations[1], 5.0)
    kernel.run(until=60.0)
    assert not stations[1].up
    assert lb.healthy(1)
    assert lb.ejections == []
    assert 1 in connect(lb, 400)


@pytest.mark.parametrize("policy", list(BalancerPolicy))
def test_fail_open_when_every_instance_is_out_of_rotation(policy: BalancerPolicy) -> None:
    kernel, stations, lb = tier(3, policy, checks=True)
    for station in stations[:2]:
        crash_at(kernel, station, 1.0)
    kernel.run(until=1.0 + FALL * INTERVAL_S + 0.01)
    # one left: it gets everything
    assert {index_of(lb.pick_connection(k)) for k in range(300)} == {2}
    assert {index_of(lb.pick_request(k)) for k in range(300)} == {2}
    crash_at(kernel, stations[2], kernel.now)
    kernel.run(until=kernel.now + FALL * INTERVAL_S + 0.01)
    assert not any(lb.healthy(i) for i in range(3))
    assert len(lb.ejections) == 3
    assert all(readmitted is None for _, readmitted, _ in lb.ejections)
    # none in rotation: route to all of them, by the policy
    assert connect(lb, 300) == {0, 1, 2}
    # one comes back: it alone is in rotation again
    recover_at(kernel, stations[0], kernel.now)
    kernel.run(until=kernel.now + RISE * INTERVAL_S + 0.01)
    assert lb.healthy(0)
    assert {index_of(lb.pick_request(k)) for k in range(300)} == {0}
