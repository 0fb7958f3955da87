"""Gateway defences and the attack workload: token buckets, token introspection with
its cache, token refresh, and the flood of compromised accounts (the abuse detector
has its own file, ``tests/test_sim_detector.py``)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from sim.components.security.auth import AuthServer, auth_request_cost, introspection_call_s
from sim.components.security.introspection import Introspection
from sim.components.security.ratelimit import TokenBuckets
from sim.components.security.tokens import TokenClock
from sim.components.station import Station
from sim.core.distributions import Constant, LogNormal
from sim.core.kernel import Kernel, Streams
from sim.core.statistics import mean_ci
from sim.scenario.security import Auth, AuthKind
from sim.scenario.tier import Tier
from sim.scenario.workload import Attack, Workload
from sim.workload.attack import AttackTraffic
from sim.workload.population import Conversations, OnlineSet, build_conversations
from sim.workload.traffic import Traffic

# ------------------------------------------------------------------ token buckets


def test_at_twice_the_rate_a_bucket_accepts_its_rate_and_the_burst_exactly() -> None:
    rate, burst = 10.0, 20
    buckets = TokenBuckets(rate, burst)
    sends = 20_000
    times = [k / (2 * rate) for k in range(sends)]
    accepted = sum(buckets.take(7, t) for t in times)
    # the bucket is never full again after the first send, so every token refilled
    # over [0, t_last] is used, except what is left at the end (less than one)
    credit = burst + rate * times[-1]
    assert credit - 1.0 < accepted <= credit
    assert abs(accepted / sends - 0.5) <= (burst + 1) / sends
    assert buckets.accepted == accepted and buckets.refused == sends - accepted


def test_a_poisson_sender_at_twice_the_rate_never_gets_more_than_rate_plus_burst() -> None:
    rate, burst = 5.0, 10
    buckets = TokenBuckets(rate, burst)
    rng = np.random.default_rng(3)
    times = np.cumsum(rng.exponential(1.0 / (2 * rate), 40_000)).tolist()
    accepted = sum(buckets.take(1, t) for t in times)
    credit = burst + rate * times[-1]
    assert accepted <= credit  # a hard bound, whatever the arrivals
    # overloaded twice over, the bucket would need a 2 s silence (probability e**-20
    # per gap) to fill up and waste tokens: every refilled token is used
    assert credit - 1.0 < accepted
    assert accepted / len(times) == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize("limit", [10.0, 7.3, 3.0, 0.4])
@pytest.mark.parametrize("burst", [1, 20])
@pytest.mark.parametrize("fraction", [1.0, 0.999, 0.5, 1 / 3])
@pytest.mark.parametrize("clock", ["product", "sum"])
def test_a_sender_at_or_below_the_rate_is_never_refused_after_its_burst(
    limit: float, burst: int, fraction: float, clock: str
) -> None:
    buckets = TokenBuckets(limit, burst)
    t0 = 12.345
    # empty the bucket first: the hardest case, no slack left
    assert all(buckets.take(0, t0) for _ in range(burst))
    assert not buckets.take(0, t0)
    period = 1.0 / (limit * fraction)
    t = t0
    for k in range(1, 20_001):
        # simulated times are either products or running sums of floats
        t = t0 + k * period if clock == "product" else t + period
        assert buckets.take(0, t), f"refused at send {k}, t={t}"
    assert buckets.refused == 1


def test_the_burst_is_honoured_and_refills_at_the_rate_up_to_the_burst() -> None:
    buckets = TokenBuckets(10.0, 20)
    assert [buckets.take(5, 1.0) for _ in range(25)] == [True] * 20 + [False] * 5
    assert buckets.take(5, 1.1)  # one token refilled in 0.1 s
    assert not buckets.take(5, 1.1)
    assert [buckets.take(5, 1.35) for _ in range(3)] == [True, True, False]  # 2.5 tokens
    # a long pause refills to the burst, not beyond
    assert [buckets.take(5, 100.0) for _ in range(22)] == [True] * 20 + [False] * 2
    # other users are untouched
    assert buckets.take(6, 100.0) and buckets.tokens(6, 100.0) == 19.0
    assert buckets.users == 2


# ------------------------------------------------------------------ introspection


def _auth(cache_ttl_s: float, service_s: float, instances: int = 1, workers: int = 1) -> Auth:
    return Auth(
        kind=AuthKind.OAUTH_INTROSPECTION,
        cache_ttl_s=cache_ttl_s,
        server=Tier(instances=instances, workers=workers, service_time_s=Constant(value=service_s)),
    )


def _introspection(
    kernel: Kernel, spec: Auth, hop_s: float, **kwargs: Any
) -> tuple[Introspection, list[Station]]:
    stations = [
        Station(kernel, "auth", i, spec.server.workers, 0.0) for i in range(spec.server.instances)
    ]
    return Introspection(spec, kernel, stations, lambda: hop_s, 0.0, **kwargs), stations


def _check_at(
    kernel: Kernel, intro: Introspection, t: float, token: int, done: list[tuple[Any, float]]
) -> None:
    label = (token, t)
    kernel.after(t, lambda _: intro.check(token, lambda a: done.append((a, kernel.now)), label))


def _poisson_hit_ratio(seed: int, rate_per_s: float, ttl_s: float, checks: int) -> float:
    """Hit ratio of one token checked at Poisson times, answers back at once."""
    kernel = Kernel(seed)
    intro, _ = _introspection(kernel, _auth(ttl_s, 0.0), 0.0)
    times = np.cumsum(kernel.streams.generator("test.checks").exponential(1 / rate_per_s, checks))
    for t in times.tolist():
        kernel.at(t, lambda _: intro.check(7, _noop, None))
    kernel.run(until=float(times[-1]) + 1.0)
    return intro.hit_ratio


def _noop(_: Any) -> None:
    return None


def test_the_hit_ratio_of_poisson_checks_is_the_renewal_formula() -> None:
    """Checks at Poisson rate r, answers cached for T: each miss opens a cycle of T in
    which r*T checks hit on average, so the hit ratio is rT/(1+rT) (renewal-reward).
    Judged by a 99 % interval over 10 replications of 1,500 checks, which must also be
    narrow enough that a cache 25 % longer or shorter than T (0.79 or 0.69 instead of
    0.75) would fall outside it."""
    rate_per_s, ttl_s = 0.1, 30.0
    expected = rate_per_s * ttl_s / (1 + rate_per_s * ttl_s)
    ratios = [_poisson_hit_ratio(seed, rate_per_s, ttl_s, 1500) for seed in range(1, 11)]
    ci = mean_ci(np.asarray(ratios), confidence=0.99)
    assert ci.low <= expected <= ci.high, (ci, expected)
    for wrong_ttl_s in (ttl_s * 1.25, ttl_s * 0.75):
        wrong = rate_per_s * wrong_ttl_s / (1 + rate_per_s * wrong_ttl_s)
        assert not ci.low <= wrong <= ci.high, (ci, wrong)


def test_hits_within_the_ttl_make_no_request_and_a_check_after_it_does() -> None:
    kernel = Kernel(1)
    hop, service = 0.001, 0.01
    intro, stations = _introspection(kernel, _auth(30.0, service), hop)
    done: list[tuple[Any, float]] = []
    for t in (0.0, 1.0, 5.0, 20.0, 29.0, 31.0, 31.005, 40.0):
        _check_at(kernel, intro, t, 99, done)
    kernel.run(until=100)
    answer = 2 * hop + service
    answered = dict(done)
    # hits are let through at once; misses when the answer is back
    assert answered[(99, 0.0)] == pytest.approx(answer)
    for t in (1.0, 5.0, 20.0, 29.0, 40.0):
        assert answered[(99, t)] == t
    # 31.0 is 30.988 s after the answer arrived: expired; 31.005 joins that request
    assert answered[(99, 31.0)] == pytest.approx(31.0 + answer)
    assert answered[(99, 31.005)] == pytest.approx(31.0 + answer)
    assert len(done) == 8
    assert intro.requests == 2 and intro.server.requests == 2 and stations[0].jobs == 2
    assert (intro.hits, intro.misses, intro.coalesced) == (5, 3, 1)
    assert intro.hit_ratio == pytest.approx(5 / 8)


def test_concurrent_misses_for_one_token_coalesce_into_one_request() -> None:
    kernel = Kernel(1)
    intro, stations = _introspection(kernel, _auth(30.0, 0.01, instances=2), 0.001)
    done: list[tuple[Any, float]] = []
    for i in range(5):
        _check_at(kernel, intro, i * 0.002, 1, done)
    _check_at(kernel, intro, 0.003, 2, done)  # another token: its own request
    kernel.run(until=1)
    times = dict(done)
    assert [times[(1, i * 0.002)] for i in range(5)] == pytest.approx([0.012] * 5)
    assert times[(2, 0.003)] == pytest.approx(0.003 + 0.012)  # second instance, no wait
    assert intro.requests == 2 and [s.jobs for s in stations] == [1, 1]
    assert intro.misses == 6 and intro.coalesced == 4 and intro.hits == 0
    assert intro.in_flight == 0 and intro.cached_tokens == 2


def test_a_miss_takes_two_hops_plus_service_plus_the_wait_at_the_auth_server() -> None:
    kernel = Kernel(1)
    hop, service = 0.002, 0.05
    intro, stations = _introspection(kernel, _auth(30.0, service), hop)
    done: list[tuple[Any, float]] = []
    for token in (10, 11, 12):
        _check_at(kernel, intro, 0.0, token, done)
    kernel.run(until=1)
    times = dict(done)
    # one worker, FIFO: the k-th request waits (k - 1) service times
    for k, token in enumerate((10, 11, 12)):
        assert times[(token, 0.0)] == pytest.approx(2 * hop + (k + 1) * service, abs=1e-12)
    assert stations[0].waited == 2
    assert stations[0].wait_sum_s == pytest.approx(service + 2 * service)


def test_requests_go_round_robin_over_auth_instances() -> None:
    kernel = Kernel(1)
    hop, service = 0.002, 0.05
    intro, stations = _introspection(kernel, _auth(30.0, service, instances=2), hop)
    done: list[tuple[Any, float]] = []
    for token in range(5):
        _check_at(kernel, intro, 0.0, token, done)
    kernel.run(until=1)
    times = dict(done)
    assert [s.jobs for s in stations] == [3, 2]
    expected = [1, 1, 2, 2, 3]  # services until done: instance 0 serves 0, 2, 4
    for token in range(5):
        assert times[(token, 0.0)] == pytest.approx(2 * hop + expected[token] * service)


def test_a_zero_cache_ttl_sends_every_check() -> None:
    kernel = Kernel(1)
    intro, stations = _introspection(kernel, _auth(0.0, 0.01), 0.001)
    done: list[tuple[Any, float]] = []
    for t in (0.0, 0.0, 0.001, 5.0):
        _check_at(kernel, intro, t, 1, done)
    kernel.run(until=10)
    assert len(done) == 4 and intro.requests == 4 and stations[0].jobs == 4
    assert intro.hits == 0 and intro.coalesced == 0


def test_a_request_reaching_a_down_instance_is_lost_and_the_token_asked_again() -> None:
    kernel = Kernel(1)
    intro, stations = _introspection(kernel, _auth(30.0, 0.01, instances=2), 0.001)
    stations[1].crash()
    done: list[tuple[Any, float]] = []
    _check_at(kernel, intro, 0.0, 1, done)  # instance 0
    _check_at(kernel, intro, 0.0, 2, done)  # instance 1: down, lost
    _check_at(kernel, intro, 0.0005, 2, done)  # joins the doomed request
    _check_at(kernel, intro, 0.1, 2, done)  # instance 0 again: a fresh request
    kernel.run(until=1)
    assert [a for a, _ in done] == [(1, 0.0), (2, 0.1)]
    assert intro.server.lost == 1 and stations[1].dropped == 1
    assert intro.requests == 3 and intro.in_flight == 0


def test_a_request_lost_in_a_crash_is_given_up_after_the_timeout() -> None:
    kernel = Kernel(1)
    intro, stations = _introspection(kernel, _auth(30.0, 0.5), 0.001, timeout_s=10.0)
    done: list[tuple[Any, float]] = []
    _check_at(kernel, intro, 0.0, 1, done)

    def crash(_: None) -> None:
        stations[0].crash()

    kernel.after(0.2, crash)
    kernel.after(1.0, lambda _: stations[0].recover())
    _check_at(kernel, intro, 5.0, 1, done)  # still within the timeout: waits, in vain
    _check_at(kernel, intro, 10.5, 1, done)  # past it: a new request
    kernel.run(until=20)
    assert done == [((1, 10.5), pytest.approx(10.5 + 0.502))]
    assert intro.requests == 2 and intro.coalesced == 1


def _hit_ratio_run(seed: int, rate: float, ttl: float, latency_s: float) -> float:
    """Poisson checks of ``rate`` per token for 20 tokens over 2000 s."""
    kernel = Kernel(seed)
    spec = _auth(ttl, 0.0)  # an instantaneous auth server: the latency is the hops
    intro, _ = _introspection(kernel, spec, latency_s / 2)
    rng = kernel.streams.generator("test.checks")
    for token in range(20):
        times = np.cumsum(rng.exponential(1.0 / rate, int(rate * 2000 * 1.3)))
        for t in times[times < 2000.0].tolist():
            kernel.after(t, lambda tok: intro.check(tok, lambda _: None, None), token)
    kernel.run(until=2001)
    return intro.hit_ratio


@pytest.mark.parametrize("latency_s", [0.0, 1.0])
def test_the_hit_ratio_matches_the_renewal_argument(latency_s: float) -> None:
    # a cycle per token: one miss sends a request, checks during its latency d
    # join it (lambda d misses on average), then the answer serves lambda T hits,
    # then the first check after expiry is the next miss. Renewal-reward:
    # hit ratio = lambda T / (1 + lambda d + lambda T); with d = 0, lambda T / (1 + lambda T)
    rate, ttl = 0.5, 4.0
    ci = mean_ci([_hit_ratio_run(seed, rate, ttl, latency_s) for seed in range(10)])
    theory = rate * ttl / (1 + rate * latency_s + rate * ttl)
    assert ci.low <= theory <= ci.high, (ci, theory)
    assert ci.half_width < 0.01


def test_the_auth_request_cost_defaults_to_the_measured_costs() -> None:
    from sim.scenario.calibration import load_calibration

    cal = load_calibration()
    cost = auth_request_cost(Auth())
    assert isinstance(cost, LogNormal)
    assert cost.mean == pytest.approx(cal.server_frame_s + introspection_call_s(cal))
    assert cost.cv == pytest.approx(1.0)
    assert 1e-7 < introspection_call_s(cal) < 1e-3
    given = Constant(value=0.003)
    assert auth_request_cost(Auth(server=Tier(request_s=given))) == given


def test_auth_server_refreshes_are_requests_on_the_same_instances() -> None:
    kernel = Kernel(1)
    spec = _auth(30.0, 0.01, instances=2)
    stations = [Station(kernel, "auth", i, 1, 0.0) for i in range(2)]
    server = AuthServer(spec, kernel, stations, lambda: 0.001)
    done: list[float] = []
    for _ in range(3):
        server.request(lambda _: done.append(kernel.now), None)
    kernel.run(until=1)
    assert done == pytest.approx([0.012, 0.012, 0.022])
    assert server.requests == 3 and [s.jobs for s in stations] == [2, 1]


# ------------------------------------------------------------------ token refresh


def test_a_user_online_longer_than_the_ttl_refreshes_every_ttl() -> None:
    clock = TokenClock(3600.0)
    since = 100.0
    assert clock.next_refresh_s(since, since) == 3700.0
    assert clock.refreshes(since, 3699.999) == 0 and clock.refreshes(since, 3700.0) == 1
    assert clock.next_refresh_s(since, 3700.0) == 7300.0
    assert clock.refreshes(since, 4 * 3600.0 + 100.0) == 4
    assert clock.refreshes(since, 50.0) == 0
    # awkward floats: at each scheduled refresh time, exactly k refreshes are done
    clock = TokenClock(0.1)
    for k in range(1, 2000):
        at = 0.3 + k * 0.1
        assert clock.refreshes(0.3, at) == k
        assert clock.next_refresh_s(0.3, at) == 0.3 + (k + 1) * 0.1


def test_token_ids_change_at_each_refresh_and_encode_the_user() -> None:
    clock = TokenClock(60.0)
    user = 123_456
    assert clock.token(user, 0) == user * 2**20
    assert clock.token_at(user, 10.0, 69.0) == user * 2**20
    assert clock.token_at(user, 10.0, 70.0) == user * 2**20 + 1
    assert TokenClock.user_of(clock.token(user, 5)) == user
    with pytest.raises(ValueError):
        clock.token(user, 2**20)


def test_a_refresh_makes_the_next_check_a_miss_even_within_the_cache_ttl() -> None:
    kernel = Kernel(1)
    intro, _ = _introspection(kernel, _auth(30.0, 0.0), 0.0)
    clock = TokenClock(60.0)
    done: list[tuple[Any, float]] = []
    for t in (50.0, 59.0, 60.0, 61.0):
        _check_at(kernel, intro, t, clock.token_at(7, 0.0, t), done)
    kernel.run(until=100)
    assert len(done) == 4
    assert (intro.misses, intro.hits) == (2, 2)  # 50 miss, 59 hit, 60 new token, 61 hit


# ----------------------------------------------------------------- attack traffic


@pytest.fixture(scope="module")
def convs() -> Conversations:
    return build_conversations(Workload(users=500), np.random.default_rng(5))


def _run_attack(
    convs: Conversations, seed: int, spec: Attack, until_s: float = 100.0
) -> tuple[AttackTraffic, list[tuple[float, int, int, int]]]:
    kernel = Kernel(seed)
    attack = AttackTraffic(spec, kernel.streams, convs, 500, until_s)
    sends: list[tuple[float, int, int, int]] = []
    attack.start(kernel, lambda u, s, p: sends.append((kernel.now, u, s, p)), 300)
    kernel.run(until=until_s + 50)
    return attack, sends


def test_attack_sends_have_mean_k_r_duration_and_each_attacker_its_share(
    convs: Conversations,
) -> None:
    spec = Attack(attackers=10, rate_per_s=20.0, start_s=10.0, duration_s=15.0)
    totals, per_attacker = [], []
    for seed in range(20):
        attack, sends = _run_attack(convs, seed, spec)
        totals.append(len(sends))
        counts = np.bincount([u for _, u, _, _ in sends], minlength=500)[attack.attackers]
        per_attacker.append(counts)
    # 99%, not 95%: seeds 0-19 happen to sit in the 5% tail of a 95% interval
    # (2984.6 +- 14.5); over 1000 seeds the mean was 2999.5 +- 3.5, and 3 of 50
    # blocks of 20 seeds missed at 95%, as they should
    ci = mean_ci(totals, confidence=0.99)
    assert ci.low <= 10 * 20.0 * 15.0 <= ci.high, ci
    # every attacker sends at R: pooled over seeds, each one's mean count is R * duration
    means = np.mean(per_attacker, axis=0)
    se = math.sqrt(20.0 * 15.0 / 20)  # Poisson: variance = mean, 20 seeds
    assert np.all(np.abs(means - 300.0) < 4.5 * se), means


def test_attack_sends_only_from_attackers_into_their_own_slots_inside_the_window(
    convs: Conversations,
) -> None:
    spec = Attack(attackers=25, rate_per_s=40.0, start_s=30.0, duration_s=20.0)
    attack, sends = _run_attack(convs, 4, spec)
    assert len(attack.attackers) == 25 == len(set(attack.attackers.tolist()))
    assert sum(attack.is_attacker) == 25 and len(attack.is_attacker) == 500
    assert sends and attack.sent == len(sends)
    first = convs.user_first_slot
    for t, user, slot, payload in sends:
        assert 30.0 <= t < 50.0
        assert attack.is_attacker[user]
        assert first[user] <= slot < first[user + 1]
        assert payload == 300
    assert {u for _, u, _, _ in sends} == set(attack.attackers.tolist())
    assert min(t for t, *_ in sends) < 30.5 and max(t for t, *_ in sends) > 49.5


def test_an_attack_without_duration_lasts_until_the_end_of_the_run(convs: Conversations) -> None:
    attack, sends = _run_attack(convs, 2, Attack(attackers=3, rate_per_s=10.0, start_s=5.0), 60.0)
    assert attack.end_s == 60.0
    assert max(t for t, *_ in sends) < 60.0 and max(t for t, *_ in sends) > 59.0
    longer = Attack(attackers=3, rate_per_s=10.0, start_s=5.0, duration_s=1e6)
    assert AttackTraffic(longer, Streams(2), convs, 500, 60.0).end_s == 60.0


def test_attackers_without_a_conversation_are_skipped() -> None:
    # users 0, 1, 2 share two conversations; user 3 has none
    tiny = Conversations(np.array([0, 2, 4]), np.array([0, 1, 1, 2], dtype=np.int32), 4, 2)
    kernel = Kernel(1)
    attack = AttackTraffic(Attack(attackers=4, rate_per_s=5.0), kernel.streams, tiny, 4, 50.0)
    assert attack.skipped == 1 and attack.active.tolist() == [0, 1, 2]
    sends: list[int] = []
    attack.start(kernel, lambda u, s, p: sends.append(u), lambda: 1)
    kernel.run(until=60)
    assert set(sends) == {0, 1, 2}
    with pytest.raises(ValueError, match="attackers"):
        AttackTraffic(Attack(attackers=5), Streams(1), tiny, 4, 50.0)


class _Recorder:
    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.sends: list[tuple[float, int, int, int]] = []

    def send(self, user: int, slot: int, payload: int) -> None:
        self.sends.append((self.kernel.now, user, slot, payload))


def test_attack_settings_leave_the_legitimate_workload_untouched(convs: Conversations) -> None:
    workload = Workload(users=500, messages_per_user_per_hour=3600.0)
    settings = [
        Attack(attackers=0),
        Attack(attackers=20, rate_per_s=50.0, start_s=1.0, duration_s=5.0),
        Attack(attackers=20, rate_per_s=200.0, start_s=0.0),
        Attack(attackers=60, rate_per_s=10.0, start_s=3.0, duration_s=2.0),
    ]
    legit_runs, named_draws, attackers = [], [], []
    for spec in settings:
        kernel = Kernel(9)
        attack = AttackTraffic(spec, kernel.streams, convs, 500, 10.0)
        traffic = Traffic(workload, kernel.streams, convs, 10.0)
        legit, flood = _Recorder(kernel), _Recorder(kernel)
        payload = AttackTraffic.payload_sampler(workload.payload_bytes, kernel.streams)
        attack.start(kernel, flood.send, payload)
        traffic.start(kernel, OnlineSet(bytearray(b"\x01" * 500)), legit.send)
        kernel.run(until=12)
        legit_runs.append(legit.sends)
        named_draws.append(
            [
                kernel.streams.generator(n).random(8).tolist()
                for n in ("workload.traffic", "workload.sessions")
            ]
        )
        attackers.append(attack.attackers.tolist())
        assert (len(flood.sends) > 0) == (spec.attackers > 0)
    assert len(legit_runs[0]) > 1000
    assert all(run == legit_runs[0] for run in legit_runs[1:])
    assert all(draws == named_draws[0] for draws in named_draws[1:])
    # the rate and window do not change who the compromised accounts are
    assert attackers[1] == attackers[2]
