"""SQS queue model: duplicates, best-effort vs FIFO order, visibility, retention, FIFO limits.

Each test drives :class:`~sim.components.brokers.sqs.SqsQueue` directly: a kernel,
consumer stations, a fake ``consume`` that takes a job on the consumer's station
and then calls ``done``, and messages published on a schedule.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import pytest
from pydantic import TypeAdapter

from sim.components.brokers.sqs import SqsQueue
from sim.components.brokers.sqs_delivery import LONG_POLL_S
from sim.components.durable import Done
from sim.components.station import Station
from sim.core.distributions import BlockDraws
from sim.core.kernel import Kernel
from sim.core.metrics import Message
from sim.core.statistics import mean_ci
from sim.scenario.broker import Broker


class Bench:
    """A queue, its consumers and a publisher, with everything recorded."""

    def __init__(
        self,
        kind: str = "sqs",
        seed: int = 1,
        consumers: int = 3,
        workers: int = 4,
        consume_s: float = 0.005,
        down_until_s: float = 0.0,
        **broker: Any,
    ) -> None:
        self.kernel = Kernel(seed)
        self.stations = [Station(self.kernel, "service", i, workers, 0.0) for i in range(consumers)]
        if down_until_s > 0.0:  # the consumers start later
            for station in self.stations:
                station.crash()
                self.kernel.after(down_until_s, lambda s: s.recover(), station)
        self.spec = TypeAdapter(Broker).validate_python({"kind": kind, **broker})
        self.queue = SqsQueue(self.spec, self.kernel, lambda: 0.0005, 0.0, self.stations)
        self.queue.consume = self.consume
        rng = self.kernel.streams.generator("test.consume")
        self.cost = BlockDraws(lambda k: rng.exponential(consume_s, k))
        self.arrivals = self.kernel.streams.generator("test.arrivals")
        self.msgs: list[Message] = []
        self.ok_s: dict[int, float] = {}
        self.errors: list[tuple[float, int]] = []
        self.delivered: list[tuple[float, int, Message]] = []
        self.completed: list[tuple[float, int, Message]] = []
        #: messages whose first delivery the consumer "forgets" (never calls done)
        self.forget_first = False

    @property
    def now(self) -> float:
        return self.kernel.now

    def consume(self, c: int, msg: Message, done: Done) -> None:
        first = all(m is not msg for _, _, m in self.delivered) if self.forget_first else False
        self.delivered.append((self.now, c, msg))
        if first:
            return  # processed, never deleted
        self.stations[c].submit(self.cost(), self._finish, (c, msg, done))

    def _finish(self, job: tuple[int, Message, Done]) -> None:
        c, msg, done = job
        self.completed.append((self.now, c, msg))
        done(msg)

    def ok(self, msg: Message) -> None:
        self.ok_s.setdefault(msg.msg_id, self.now)

    def error(self, msg: Message) -> None:
        self.errors.append((self.now, msg.msg_id))

    def publish(self, msg: Message) -> None:
        self.queue.publish(msg, self.ok, self.error)

    def message(self, t: float, conv: int) -> Message:
        msg = Message(len(self.msgs), conv, 0, 0, t, 100, 150, 150)
        self.msgs.append(msg)
        return msg

    def traffic(self, rate: float, start: float, end: float, convs: int) -> None:
        """Poisson publishes at ``rate`` per second over ``convs`` conversations."""
        t = start
        while True:
            t += float(self.arrivals.exponential(1.0 / rate))
            if t >= end:
                return
            msg = self.message(t, int(self.arrivals.integers(convs)))
            self.kernel.after(t, self.publish, msg)

    def at(self, t: float, fn: Any) -> None:
        self.kernel.after(t, lambda _: fn(), None)

    def run(self, until: float) -> None:
        self.kernel.run(until=until)

    def completed_ids(self) -> set[int]:
        return {m.msg_id for _, _, m in self.completed}


def inversions(bench: Bench) -> int:
    """Messages of one conversation completed after a later message of that conversation."""
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


def test_standard_queue_duplicates_match_the_duplicate_probability() -> None:
    p = 0.02
    ratios = []
    for seed in range(20):
        bench = Bench(seed=seed, duplicate_probability=p)
        bench.traffic(100.0, 0.0, 20.0, convs=50)
        bench.run(60.0)
        extra = len(bench.completed) - len(bench.completed_ids())
        assert bench.completed_ids() == set(bench.ok_s) and len(bench.ok_s) == len(bench.msgs)
        assert extra == bench.queue.duplicates  # every copy was received and processed
        ratios.append(extra / bench.queue.received)
    ci = mean_ci(ratios)
    assert ci.low <= p <= ci.high, str(ci)
    assert ci.half_width < p / 2


def test_standard_order_is_best_effort_and_fifo_keeps_group_order() -> None:
    standard = Bench(kind="sqs", duplicate_probability=0.0)
    standard.traffic(50.0, 0.0, 20.0, convs=2)
    standard.run(60.0)
    assert len(standard.completed_ids()) == len(standard.msgs)
    assert inversions(standard) > 0

    fifo = Bench(kind="sqs_fifo")
    fifo.traffic(50.0, 0.0, 20.0, convs=2)
    fifo.run(60.0)
    assert len(fifo.completed) == len(fifo.msgs) == len(fifo.completed_ids())
    assert inversions(fifo) == 0
    # one message of a group in flight at a time: deliveries of a group never overlap
    for conv in (0, 1):
        times = [(t, m.msg_id) for t, _, m in fifo.delivered if m.conv == conv]
        done = {m.msg_id: t for t, _, m in fifo.completed}
        for (_, prev), (t, _) in pairwise(times):
            assert t >= done[prev]


@pytest.mark.parametrize("kind", ["sqs", "sqs_fifo"])
def test_an_undeleted_message_is_received_again_after_the_visibility_timeout(kind: str) -> None:
    # no extra copies on a standard queue (a FIFO queue has none, and no such field)
    no_copies = {"duplicate_probability": 0.0} if kind == "sqs" else {}
    bench = Bench(kind=kind, consumers=1, visibility_timeout_s=30.0, **no_copies)
    bench.forget_first = True
    for i in range(5):
        bench.kernel.after(1.0 + i, bench.publish, bench.message(1.0 + i, conv=i))
    bench.run(100.0)
    first: dict[int, float] = {}
    again: dict[int, float] = {}
    for t, _, msg in bench.delivered:
        (again if msg.msg_id in first else first).setdefault(msg.msg_id, t)
    assert set(again) == set(first) == set(range(5))
    gaps = [again[i] - first[i] for i in range(5)]
    # visible again when the timeout ends; a long poll was waiting, so it returns at once
    assert all(30.0 - 1e-9 <= gap < 30.001 for gap in gaps), gaps
    assert bench.queue.visibility_returns == 5
    assert bench.completed_ids() == set(range(5)) and len(bench.completed) == 5


def test_messages_past_retention_expire_unread() -> None:
    bench = Bench(kind="sqs", retention_s=60.0, down_until_s=120.0)
    bench.traffic(10.0, 0.0, 10.0, convs=5)
    late = bench.message(130.0, conv=0)
    bench.kernel.after(130.0, bench.publish, late)
    expired_at_70: list[float] = []
    bench.at(70.5, lambda: expired_at_70.append(bench.queue.expired))
    bench.run(300.0)
    early = len(bench.msgs) - 1
    assert early > 50 and len(bench.ok_s) == early + 1
    assert expired_at_70 == [early]  # every message sent in the first 10 s, gone by 70 s
    assert bench.queue.expired == early
    assert bench.completed_ids() == {late.msg_id}  # the others were never delivered


def test_empty_long_polls_return_after_20_seconds() -> None:
    bench = Bench(kind="sqs", consumers=2)
    bench.kernel.after(50.0, bench.publish, bench.message(50.0, conv=0))
    bench.run(100.5)
    q = bench.queue
    # 2 consumers x 2 pollers; each empty poll holds 20 s (+ the call latency)
    assert 12 <= q.empty_receives <= 4 * 100.0 / LONG_POLL_S
    assert q.receives == q.empty_receives + 1 + 4  # + the one that returned + those held now
    (t, _, _) = bench.delivered[0]
    assert 50.0 < t < 50.1  # a held long poll returns as soon as the message arrives


def test_fifo_throttles_sends_over_the_call_limit() -> None:
    bench = Bench(kind="sqs_fifo", fifo_ops_per_s=300.0, fifo_batch=1, consumers=1)
    for i in range(10_000):  # 1,000 msg/s for 10 s, 100 conversations
        t = 0.001 * (i + 1)
        bench.kernel.after(t, bench.publish, bench.message(t, conv=i % 100))
    bench.run(30.0)
    accepted = sorted(bench.ok_s.values())
    steady = [t for t in accepted if 2.0 <= t < 10.0]
    assert len(steady) / 8.0 == pytest.approx(300.0, rel=0.02)
    # the bucket starts full: one second of calls more over the whole run
    assert len(accepted) == pytest.approx(300 * 10 + 300, abs=5)
    assert len(bench.errors) == 10_000 - len(accepted) == bench.queue.throttled
    assert bench.completed_ids() == set(bench.ok_s)


def test_fifo_batches_of_10_carry_1000_messages_per_second() -> None:
    bench = Bench(kind="sqs_fifo", fifo_ops_per_s=300.0, fifo_batch=10, consumers=4)
    for i in range(10_000):
        t = 0.001 * (i + 1)
        bench.kernel.after(t, bench.publish, bench.message(t, conv=i % 100))
    bench.run(30.0)
    assert not bench.errors and len(bench.ok_s) == 10_000
    assert bench.queue.send_calls < 300 * 10  # under the call limit: batches of 4 or so
    assert bench.completed_ids() == set(bench.ok_s)
    assert inversions(bench) == 0


def test_fifo_deduplicates_a_resend_within_5_minutes() -> None:
    bench = Bench(kind="sqs_fifo")
    once = bench.message(1.0, conv=0)
    twice = bench.message(1.0, conv=1)
    for t, msg in ((1.0, once), (100.0, once), (1.0, twice), (400.0, twice)):
        bench.kernel.after(t, bench.publish, msg)
    oks: list[int] = []
    bench.ok = lambda msg: oks.append(msg.msg_id)  # type: ignore[method-assign]
    bench.run(500.0)
    assert sorted(oks) == [0, 0, 1, 1]  # every send is accepted
    ids = sorted(m.msg_id for _, _, m in bench.completed)
    assert ids == [0, 1, 1]  # the resend after 5 minutes is a new message
    assert bench.queue.deduplicated == 1


def test_an_unavailable_endpoint_fails_every_call() -> None:
    bench = Bench(kind="sqs", duplicate_probability=0.0, visibility_timeout_s=30.0)
    bench.traffic(50.0, 0.0, 60.0, convs=10)
    bench.at(20.0, lambda: bench.queue.crash(0))
    bench.at(30.0, lambda: bench.queue.recover(0))
    bench.run(120.0)
    refused = {i for t, i in bench.errors}
    assert refused and all(20.0 <= t <= 30.0 for t, _ in bench.errors)
    assert all(m.msg_id in refused for m in bench.msgs if 20.0 < m.send_s < 30.0)
    assert set(bench.ok_s) | refused == {m.msg_id for m in bench.msgs}
    assert bench.completed_ids() == set(bench.ok_s)  # nothing accepted is lost
    assert not [t for t, _, _ in bench.delivered if 20.001 < t < 30.0]
    q = bench.queue
    assert q.receive_errors > 0
    # deletes that failed in the outage: those messages came back after their timeout
    assert q.visibility_returns == q.delete_errors
    assert len(bench.completed) - len(bench.completed_ids()) == q.visibility_returns


def test_a_dead_consumers_messages_go_to_the_others_after_the_visibility_timeout() -> None:
    bench = Bench(kind="sqs", consumers=3, duplicate_probability=0.0, consume_s=0.05)
    bench.traffic(100.0, 0.0, 60.0, convs=20)
    bench.at(20.0, bench.stations[0].crash)
    bench.run(150.0)
    assert bench.completed_ids() == set(bench.ok_s) and len(bench.ok_s) == len(bench.msgs)
    stranded = {m.msg_id for t, c, m in bench.delivered if c == 0} - {
        m.msg_id for _, c, m in bench.completed if c == 0
    }
    assert stranded and bench.queue.visibility_returns == len(stranded)
    for t, c, m in bench.completed:
        if m.msg_id in stranded:
            assert c != 0 and t >= 20.0 + 30.0 - 0.5


def test_runs_are_reproducible() -> None:
    def once() -> list[tuple[float, int, int]]:
        bench = Bench(kind="sqs", seed=5, duplicate_probability=0.01)
        bench.traffic(100.0, 0.0, 10.0, convs=20)
        bench.run(40.0)
        return [(t, c, m.msg_id) for t, c, m in bench.completed]

    first = once()
    assert first == once() and len(first) > 500


def test_only_the_endpoint_can_fail() -> None:
    bench = Bench(kind="sqs")
    with pytest.raises(ValueError, match=r"broker\.0"):
        bench.queue.crash(1)
    with pytest.raises(ValueError, match="sqs or sqs_fifo"):
        SqsQueue(
            TypeAdapter(Broker).validate_python({"kind": "rabbitmq"}), bench.kernel, float, 0.0, []
        )
