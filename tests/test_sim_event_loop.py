"""The kernel's event loop, fixed-duration timeouts, the online set and the thinned traffic."""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Iterable
from typing import Any, NamedTuple

import numpy as np
import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.core.kernel import Kernel, Timeouts
from sim.scenario.workload import Workload
from sim.workload.population import Conversations, OnlineSet, build_conversations
from sim.workload.traffic import Traffic

# ------------------------------------------------------------------ the event loop


def _noop(_: Any) -> None:
    return None


def _other_noop(_: Any) -> None:
    return None


def test_calls_scheduled_with_after_run_in_time_order_and_ties_in_scheduling_order() -> None:
    kernel = Kernel(0)
    log: list[tuple[float, str]] = []

    def record(label: str) -> None:
        log.append((kernel.now, label))

    for delay, label in [(3.0, "a"), (1.0, "b"), (2.0, "c"), (1.0, "d"), (0.5, "e"), (1.0, "f")]:
        kernel.after(delay, record, label)
    kernel.run()
    assert log == [(0.5, "e"), (1.0, "b"), (1.0, "d"), (1.0, "f"), (2.0, "c"), (3.0, "a")]


def test_after_counts_its_delay_from_the_time_it_is_called() -> None:
    kernel = Kernel(0)
    log: list[float] = []

    def schedule_later(delay: float) -> None:
        kernel.after(delay, log.append, kernel.now + delay)

    kernel.at(2.5, schedule_later, 0.75)
    kernel.run()
    assert log == [3.25]
    assert kernel.now == 3.25


def test_a_call_scheduled_with_at_runs_at_exactly_its_time() -> None:
    kernel = Kernel(0)
    seen: list[tuple[float, float]] = []

    def check(t: float) -> None:
        seen.append((t, kernel.now))

    times = [0.1 + 0.2, 1 / 3, 7.000000000000001, 2.0]
    for t in times:
        kernel.at(t, check, t)
    kernel.run()
    assert [now for _, now in seen] == sorted(times)
    assert all(now == t for t, now in seen)


def test_run_until_runs_calls_strictly_before_the_limit_and_leaves_those_at_the_limit() -> None:
    kernel = Kernel(0)
    env = kernel
    log: list[tuple[float, str]] = []

    def record(label: str) -> None:
        log.append((kernel.now, label))

    def process() -> Generator[simpy.Event, Any, None]:
        yield env.timeout(5.0)
        record("process")

    for t, label in [(1.0, "a"), (4.999, "b"), (5.0, "c"), (5.0, "d"), (7.0, "e")]:
        kernel.at(t, record, label)
    env.process(process())
    env.run(until=5)
    assert log == [(1.0, "a"), (4.999, "b")]
    assert env.now == 5.0
    assert env.peek() == 5.0
    env.run(until=6.0)
    assert log[2:] == [(5.0, "c"), (5.0, "d"), (5.0, "process")]
    assert env.now == 6.0
    assert env.peek() == 7.0


def test_run_until_a_time_not_after_now_raises_value_error_and_keeps_the_queue() -> None:
    kernel = Kernel(0)
    env = kernel
    log: list[float] = []
    kernel.at(4.0, log.append, 4.0)
    for until in (0.0, -1.0):
        with pytest.raises(ValueError, match="until"):
            env.run(until=until)
    env.run(until=3.0)
    for until in (3.0, 2.0):
        with pytest.raises(ValueError, match="until"):
            env.run(until=until)
    assert env.now == 3.0
    assert env.peek() == 4.0
    env.run(until=5.0)
    assert log == [4.0]


def test_run_without_until_runs_every_scheduled_call() -> None:
    kernel = Kernel(0)
    env = kernel
    log: list[float] = []

    def chain(remaining: int) -> None:
        log.append(kernel.now)
        if remaining:
            kernel.after(3.0, chain, remaining - 1)

    kernel.at(1.0, chain, 2)
    kernel.at(1e6, log.append, 1e6)
    env.run()
    assert log == [1.0, 4.0, 7.0, 1e6]
    assert env.now == 1e6
    assert env.peek() == math.inf


@pytest.mark.parametrize("until", [None, 10.0])
def test_simpy_processes_interleave_with_kernel_calls_in_time_order(until: float | None) -> None:
    kernel = Kernel(0)
    env = kernel
    log: list[tuple[str, float]] = []

    def ticker() -> Generator[simpy.Event, Any, None]:
        for _ in range(3):
            yield env.timeout(1.0)
            log.append(("process", env.now))

    def call(_: Any) -> None:
        log.append(("call", kernel.now))

    env.process(ticker())
    kernel.at(1.5, call)
    kernel.after(2.5, call)
    env.run(until=until)
    assert log == [
        ("process", 1.0),
        ("call", 1.5),
        ("process", 2.0),
        ("call", 2.5),
        ("process", 3.0),
    ]


def test_a_simpy_event_and_a_call_at_the_same_instant_run_in_scheduling_order() -> None:
    kernel = Kernel(0)
    env = kernel
    log: list[str] = []

    def on_timeout(label: str) -> Callable[[simpy.Event], None]:
        def callback(_: simpy.Event) -> None:
            log.append(label)

        return callback

    first = env.timeout(1.0)
    assert first.callbacks is not None
    first.callbacks.append(on_timeout("first timeout"))
    kernel.at(1.0, log.append, "at")
    second = env.timeout(1.0)
    assert second.callbacks is not None
    second.callbacks.append(on_timeout("second timeout"))
    kernel.after(1.0, log.append, "after")
    env.run()
    assert log == ["first timeout", "at", "second timeout", "after"]


@pytest.mark.parametrize("failing", ["call", "process"])
def test_an_exception_during_run_until_propagates_and_leaves_no_stop_sentinel(
    failing: str,
) -> None:
    kernel = Kernel(0)
    env = kernel
    log: list[float] = []
    for t in (1.0, 3.0, 15.0):
        kernel.at(t, log.append, t)

    def boom(_: Any) -> None:
        raise RuntimeError("boom")

    def failing_process() -> Generator[simpy.Event, Any, None]:
        yield env.timeout(2.0)
        raise RuntimeError("boom")

    if failing == "call":
        kernel.at(2.0, boom)
    else:
        env.process(failing_process())
    with pytest.raises(RuntimeError, match="boom"):
        env.run(until=10.0)
    assert log == [1.0]
    assert env.now == 2.0
    assert env.peek() == 3.0
    # a sentinel left at 10 would stop this run there, before the call at 15
    env.run(until=20.0)
    assert log == [1.0, 3.0, 15.0]
    assert env.now == 20.0
    assert env.peek() == math.inf


def test_an_exception_during_run_without_until_propagates_and_keeps_later_calls() -> None:
    kernel = Kernel(0)
    env = kernel
    log: list[float] = []

    def boom(_: Any) -> None:
        raise KeyError("boom")

    kernel.at(1.0, log.append, 1.0)
    kernel.at(2.0, boom)
    kernel.at(3.0, log.append, 3.0)
    with pytest.raises(KeyError, match="boom"):
        env.run()
    assert log == [1.0]
    env.run()
    assert log == [1.0, 3.0]


def test_events_scheduled_grows_by_exactly_the_number_of_scheduled_calls_and_events() -> None:
    idle, busy = Kernel(0), Kernel(0)
    for k in range(7):
        busy.after(float(k), _noop)
        busy.at(float(k) + 0.5, _noop)
    busy.timeout(3.0)
    assert busy.events_scheduled - idle.events_scheduled == 15


def _traced_run(times: Iterable[float], until: float = 100.0) -> tuple[Kernel, list[float]]:
    kernel = Kernel(0, trace=True)
    log: list[float] = []

    def record(_: Any) -> None:
        log.append(kernel.now)
        if kernel.now < 3.0:
            kernel.after(10.0, _other_noop)

    for t in times:
        kernel.at(t, record)
    kernel.after(200.0, record)
    kernel.run(until=until)
    return kernel, log


def test_a_traced_kernel_gives_one_digest_for_one_schedule_and_counts_the_calls_it_ran() -> None:
    times = [1.0, 2.0, 2.0, 5.5, 50.0]
    first, log = _traced_run(times)
    second, _ = _traced_run(times)
    assert first.trace is not None and second.trace is not None
    assert log == times
    assert first.trace.digest == second.trace.digest
    # five calls, three follow-ups scheduled by the calls before 3 s; the call at 200 is not run
    assert first.trace.events == 8


def test_a_traced_kernel_digest_changes_when_one_call_time_changes() -> None:
    base, _ = _traced_run([1.0, 2.0, 5.5])
    moved, _ = _traced_run([1.0, 2.0, 5.25])
    assert base.trace is not None and moved.trace is not None
    assert base.trace.events == moved.trace.events
    assert base.trace.digest != moved.trace.digest


# ------------------------------------------------------------------ timeouts


def test_a_timeout_calls_fn_at_exactly_its_start_time_plus_the_delay() -> None:
    kernel = Kernel(0)
    delay = 0.3
    fired: list[tuple[str, float]] = []

    def fn(arg: str) -> None:
        fired.append((arg, kernel.now))

    timeouts = Timeouts(kernel, delay, fn, lambda _: True)
    starts = {"a": 0.1, "b": 0.7, "c": 0.7, "d": 1 / 3}
    for arg, t in starts.items():
        kernel.at(t, timeouts.start, arg)
    kernel.run()
    assert sorted(fired, key=lambda f: f[1]) == fired
    assert dict(fired) == {arg: t + delay for arg, t in starts.items()}
    assert len(fired) == len(starts)
    assert len(timeouts) == 0


def test_timeouts_of_args_that_died_before_their_deadline_have_no_effect() -> None:
    kernel = Kernel(0)
    delay = 5.0
    dead: set[int] = set()
    fired: list[tuple[int, float]] = []

    def fn(arg: int) -> None:
        if arg not in dead:
            fired.append((arg, kernel.now))

    timeouts = Timeouts(kernel, delay, fn, lambda arg: arg not in dead)
    # (start, death); a death after start + delay comes too late to matter
    plan = {
        0: (0.0, 1.0),
        1: (0.5, None),
        2: (1.0, 5.9),
        3: (2.0, 7.5),
        4: (2.5, 2.5),
        5: (3.0, None),
    }
    for arg, (start, death) in plan.items():
        kernel.at(start, timeouts.start, arg)
        if death is not None:
            kernel.at(death, dead.add, arg)
    kernel.run()
    assert fired == [(1, 5.5), (3, 7.0), (5, 8.0)]


def test_a_timeout_started_from_inside_fn_fires_one_delay_later() -> None:
    kernel = Kernel(0)
    delay = 1.5
    fired: list[tuple[str, float]] = []
    timeouts: Timeouts

    def fn(arg: str) -> None:
        fired.append((arg, kernel.now))
        if sum(1 for a, _ in fired if a == arg) < 3:
            timeouts.start(arg)

    timeouts = Timeouts(kernel, delay, fn, lambda _: True)
    kernel.at(0.0, timeouts.start, "x")
    kernel.at(0.5, timeouts.start, "y")
    kernel.run()
    assert fired == [
        ("x", 1.5),
        ("y", 2.0),
        ("x", 3.0),
        ("y", 3.5),
        ("x", 4.5),
        ("y", 5.0),
    ]


def test_ten_thousand_mostly_dead_timeouts_cost_few_events_and_live_ones_fire_on_time() -> None:
    n, delay = 10_000, 5.0
    starts = [i * 0.01 for i in range(n)]
    live_args = set(range(0, n, 997))
    dies_at = {arg: starts[arg] + 0.05 for arg in range(n) if arg not in live_args}

    def run(with_timeouts: bool) -> tuple[int, list[tuple[float, int]], int]:
        kernel = Kernel(0)
        fired: list[tuple[float, int]] = []

        def live(arg: int) -> bool:
            return kernel.now < dies_at.get(arg, math.inf)

        def fn(arg: int) -> None:
            if live(arg):
                fired.append((kernel.now, arg))

        timeouts = Timeouts(kernel, delay, fn, live)
        start = timeouts.start if with_timeouts else _noop
        for arg, t in enumerate(starts):
            kernel.at(t, start, arg)
        kernel.run()
        return kernel.events_scheduled, fired, len(timeouts)

    with_events, fired, pending = run(True)
    without_events, _, _ = run(False)
    timeout_events = with_events - without_events
    assert 0 < timeout_events < 100
    assert fired == [(starts[arg] + delay, arg) for arg in sorted(live_args)]
    assert pending == 0


@pytest.mark.parametrize("delay", [0.0, -1.0, math.nan])
def test_a_timeout_that_does_not_last_a_positive_time_is_rejected(delay: float) -> None:
    with pytest.raises(ValueError, match="> 0 s"):
        Timeouts(Kernel(0), delay, _noop, lambda _: True)


class _Plan(NamedTuple):
    start: int
    cancel_after: float | None
    restarts: int


def _fire_times(delay: int, plans: list[_Plan], use_timeouts: bool) -> list[tuple[float, int]]:
    kernel = Kernel(0)
    dead: set[int] = set()
    restarts_left = [plan.restarts for plan in plans]
    fired: list[tuple[float, int]] = []

    def live(arg: int) -> bool:
        return arg not in dead

    def fn(arg: int) -> None:
        if not live(arg):
            return
        fired.append((kernel.now, arg))
        if restarts_left[arg]:
            restarts_left[arg] -= 1
            start(arg)

    def naive_start(arg: int) -> None:
        kernel.after(float(delay), fn, arg)

    start: Callable[[int], None] = (
        Timeouts(kernel, float(delay), fn, live).start if use_timeouts else naive_start
    )
    for arg, plan in enumerate(plans):
        kernel.at(float(plan.start), start, arg)
        if plan.cancel_after is not None:
            kernel.at(plan.start + plan.cancel_after, dead.add, arg)
    kernel.run()
    return fired


# integer starts and deadlines, half-integer deaths: a death never ties with a deadline
_plans = st.lists(
    st.builds(
        _Plan,
        st.integers(0, 30),
        st.none() | st.integers(0, 12).map(lambda k: k + 0.5),
        st.integers(0, 2),
    ),
    max_size=40,
)


@settings(max_examples=50, deadline=None)
@given(delay=st.integers(1, 5), plans=_plans)
def test_timeouts_fire_like_one_scheduled_call_per_timeout(delay: int, plans: list[_Plan]) -> None:
    assert _fire_times(delay, plans, use_timeouts=True) == _fire_times(
        delay, plans, use_timeouts=False
    )


# ------------------------------------------------------------------ the online set


def test_an_online_set_built_from_flags_lists_the_flagged_users() -> None:
    flags = bytearray([0, 1, 1, 0, 0, 1, 0])
    online = OnlineSet(flags)
    assert sorted(online.members) == [1, 2, 5]
    assert all(online.members[online.pos[u]] == u for u in (1, 2, 5))
    assert len(online.members) == 3 and online.flags.count(0) == 4
    assert online.bound == 7 and online.on_exceed is None


@st.composite
def _flags_and_writes(draw: st.DrawFn) -> tuple[list[int], list[tuple[int, int]]]:
    n = draw(st.integers(1, 25))
    flags = draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
    writes = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, 1)), max_size=80))
    return flags, writes


def _state(online: OnlineSet) -> tuple[list[int], list[int], bytes]:
    return list(online.members), list(online.pos), bytes(online.flags)


@settings(max_examples=50, deadline=None)
@given(case=_flags_and_writes())
def test_an_online_set_agrees_with_its_flags_after_any_writes(
    case: tuple[list[int], list[tuple[int, int]]],
) -> None:
    flags, writes = case
    expected = list(flags)
    online = OnlineSet(bytearray(flags))
    for user, value in writes:
        online[user] = value
        expected[user] = value
        state = _state(online)
        online[user] = value
        assert _state(online) == state
        members = list(online.members)
        on = [u for u, f in enumerate(expected) if f]
        assert sorted(members) == on
        assert all(online.pos[u] == members.index(u) for u in on)
        assert len(members) == len(on) and online.flags.count(0) == len(expected) - len(on)
        assert bytes(online.flags) == bytes(expected)
        assert [online[u] for u in range(len(expected))] == expected


@settings(max_examples=50, deadline=None)
@given(case=_flags_and_writes(), headroom=st.integers(-2, 4))
def test_on_exceed_is_called_exactly_when_a_user_comes_online_beyond_the_bound(
    case: tuple[list[int], list[tuple[int, int]]], headroom: int
) -> None:
    flags, writes = case
    online = OnlineSet(bytearray(flags))
    bound = max(0, sum(flags) + headroom)
    online.bound = bound
    calls: list[int] = []
    online.on_exceed = lambda: calls.append(len(online.members))
    expected: list[int] = []
    for user, value in writes:
        comes_online = bool(value) and not online[user]
        online[user] = value
        if comes_online and len(online.members) > bound:
            expected.append(len(online.members))
        assert calls == expected


# ------------------------------------------------------------------ traffic

USERS = 2_000
RATE_PER_S = 1.0  # per online user: 3,600 messages an hour


@pytest.fixture(scope="module")
def convs() -> Conversations:
    return build_conversations(Workload(users=USERS), np.random.default_rng(17))


class _Sends(NamedTuple):
    traffic: Traffic
    online: OnlineSet
    times: np.ndarray
    users: np.ndarray
    slots: np.ndarray
    sent_while_offline: int


def _run_traffic(
    convs: Conversations,
    seed: int,
    initially_online: Iterable[int],
    until_s: float,
    changes: Iterable[tuple[float, int, int]] = (),
) -> _Sends:
    """Run the traffic alone; ``changes`` are (time, user, flag) writes to the online set."""
    kernel = Kernel(seed)
    flags = bytearray(USERS)
    for user in initially_online:
        flags[user] = 1
    online = OnlineSet(flags)
    workload = Workload(users=USERS, messages_per_user_per_hour=RATE_PER_S * 3600.0)
    traffic = Traffic(workload, kernel.streams, convs, until_s)
    times: list[float] = []
    users: list[int] = []
    slots: list[int] = []
    offline = 0

    def send(user: int, slot: int, payload: int) -> None:
        nonlocal offline
        offline += not online[user]
        times.append(kernel.now)
        users.append(user)
        slots.append(slot)

    def write(change: tuple[int, int]) -> None:
        user, flag = change
        online[user] = flag

    for at_s, user, flag in changes:
        kernel.at(at_s, write, (user, flag))
    traffic.start(kernel, online, send)
    kernel.run(until=until_s + 1.0)
    return _Sends(traffic, online, np.array(times), np.array(users), np.array(slots), offline)


def _within_poisson(count: float, mean: float) -> bool:
    """``count`` lies within 4 standard deviations of a Poisson count of mean ``mean``."""
    return abs(count - mean) <= 4.0 * math.sqrt(mean)


FIXED_ONLINE = range(0, USERS, 2)
FIXED_DURATION_S = 100.0


@pytest.fixture(scope="module")
def fixed(convs: Conversations) -> _Sends:
    return _run_traffic(convs, 3, FIXED_ONLINE, FIXED_DURATION_S)


def test_the_send_count_matches_rate_times_online_users_times_duration(fixed: _Sends) -> None:
    expected = RATE_PER_S * len(FIXED_ONLINE) * FIXED_DURATION_S
    assert _within_poisson(len(fixed.times), expected)
    assert fixed.traffic.sent == len(fixed.times)
    assert fixed.times.min() >= 0.0 and fixed.times.max() < FIXED_DURATION_S


def test_offline_users_never_send_and_every_online_user_does(fixed: _Sends) -> None:
    assert fixed.sent_while_offline == 0
    assert set(fixed.users.tolist()) == set(FIXED_ONLINE)


def test_each_online_user_sends_as_a_poisson_process_of_the_per_user_rate(fixed: _Sends) -> None:
    counts = np.bincount(fixed.users, minlength=USERS)[list(FIXED_ONLINE)]
    n = len(counts)
    lam = RATE_PER_S * FIXED_DURATION_S
    # the mean of n Poisson(lam) counts has variance lam / n
    assert abs(counts.mean() - lam) <= 4.0 * math.sqrt(lam / n)
    # the sample variance of n Poisson(lam) counts has variance 2 lam^2 / (n - 1) + lam / n
    assert abs(counts.var(ddof=1) - lam) <= 4.0 * math.sqrt(2 * lam**2 / (n - 1) + lam / n)


def test_a_sender_writes_in_one_of_its_own_conversations(
    fixed: _Sends, convs: Conversations
) -> None:
    first = convs.user_ptr[fixed.users]
    after_last = convs.user_ptr[fixed.users + 1]
    assert np.all((first <= fixed.slots) & (fixed.slots < after_last))


def test_most_candidates_send_when_the_population_is_fixed(fixed: _Sends) -> None:
    traffic = fixed.traffic
    assert traffic.sent <= traffic.candidates
    assert traffic.sent / traffic.candidates > 0.6


def test_after_many_users_come_online_mid_run_the_send_rate_follows_them(
    convs: Conversations,
) -> None:
    switch_s, until_s = 40.0, 100.0
    before, newcomers = range(400), range(400, 1_600)
    run = _run_traffic(convs, 5, before, until_s, changes=[(switch_s, u, 1) for u in newcomers])
    early = run.times < switch_s
    assert _within_poisson(early.sum(), RATE_PER_S * len(before) * switch_s)
    late_expected = RATE_PER_S * (len(before) + len(newcomers)) * (until_s - switch_s)
    assert _within_poisson((~early).sum(), late_expected)
    from_newcomers = run.users >= newcomers.start
    assert not np.any(from_newcomers & early)
    assert _within_poisson(from_newcomers.sum(), RATE_PER_S * len(newcomers) * (until_s - switch_s))
    assert run.online.bound >= len(before) + len(newcomers)
    assert run.sent_while_offline == 0
    assert run.traffic.sent <= run.traffic.candidates
    assert run.traffic.sent / run.traffic.candidates > 0.6


def test_after_most_users_go_offline_mid_run_the_send_rate_follows_them(
    convs: Conversations,
) -> None:
    switch_s, until_s = 30.0, 100.0
    stay, leave = range(100), range(100, 1_000)
    run = _run_traffic(convs, 6, range(1_000), until_s, changes=[(switch_s, u, 0) for u in leave])
    early = run.times < switch_s
    assert _within_poisson(early.sum(), RATE_PER_S * (len(stay) + len(leave)) * switch_s)
    assert _within_poisson((~early).sum(), RATE_PER_S * len(stay) * (until_s - switch_s))
    assert not np.any((run.users >= leave.start) & ~early)
    assert run.sent_while_offline == 0
    assert run.traffic.sent / run.traffic.candidates > 0.6


def test_under_churn_the_send_count_matches_rate_times_the_integral_of_online_users(
    convs: Conversations,
) -> None:
    until_s = 100.0
    rng = np.random.default_rng(23)
    come = rng.uniform(0.0, 50.0, USERS)
    leave = come + rng.exponential(40.0, USERS)
    changes = [(float(t), u, 1) for u, t in enumerate(come)]
    changes += [(float(t), u, 0) for u, t in enumerate(leave) if t < until_s]
    user_seconds = float(np.sum(np.minimum(leave, until_s) - come))
    run = _run_traffic(convs, 7, (), until_s, changes=changes)
    assert _within_poisson(len(run.times), RATE_PER_S * user_seconds)
    assert run.sent_while_offline == 0
    assert np.all(run.times >= come[run.users]) and np.all(run.times < leave[run.users])
    assert run.traffic.sent <= run.traffic.candidates
    assert run.traffic.sent / run.traffic.candidates > 0.6
