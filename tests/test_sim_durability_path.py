"""Stores, brokers and inboxes on the whole message path, with and without crashes.

Component behaviour is tested in each component's own file; here the point is
what users see end to end (the checker's accounting, the timeseries), and that
the known facts hold through the whole simulator.
"""

from __future__ import annotations

from typing import Any

import pytest

from sim.model.result import Result
from sim.model.run import simulate
from sim.scenario.loader import list_presets, load_scenario
from sim.scenario.schema import Scenario

SMALL = {
    "workload.users": 1500,
    "workload.messages_per_user_per_hour": 120,
    "run.duration_s": 120,
    "run.warmup_s": 20,
    "run.drain_s": 60,
    "run.interval_s": 5,
}


def preset(name: str, **overrides: Any) -> Scenario:
    return load_scenario(name, {**SMALL, **overrides})


def crash(target: str, at_s: float = 40.0, duration_s: float = 30.0) -> list[dict[str, Any]]:
    return [{"at_s": at_s, "kind": "crash", "target": target, "duration_s": duration_s}]


def window(res: Result, start: float, end: float, column: str) -> float:
    ts = res.timeseries
    return float(ts[(ts["t_s"] >= start) & (ts["t_s"] < end)][column].sum())


ARCHITECTURES = sorted(p.name for p in list_presets() if p.kind == "presets")


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_every_preset_delivers_every_acked_message_once_in_order_when_healthy(name: str) -> None:
    res = simulate(preset(name), seed=1, progress=False)
    row = res.summary.iloc[0]
    assert row["sent"] > 100
    assert row["acked"] == row["sent"] and row["failed"] == 0
    assert row["lost"] == 0 and row["duplicated"] == 0 and row["reordered"] == 0
    assert res.meta["settled"]


def cassandra(consistency: str, **extra: Any) -> Scenario:
    return preset(
        "websocket_microservices",
        **{
            "architecture.store.kind": "cassandra",
            "architecture.store.nodes": 3,
            "architecture.store.write_consistency": consistency,
            "architecture.store.read_consistency": consistency,
            "faults": crash("store.1"),
            **extra,
        },
    )


@pytest.mark.parametrize("seed", [1, 2])
def test_cassandra_quorum_at_rf3_survives_a_node_down_without_failed_sends(seed: int) -> None:
    res = simulate(cassandra("quorum"), seed=seed, progress=False)
    row = res.summary.iloc[0]
    assert row["failed"] == 0 and row["lost"] == 0 and row["write_errors"] == 0
    counters = res.meta["counters"]
    assert counters["store_hints_stored"] > 0
    assert counters["store_hints_replayed"] == counters["store_hints_stored"]


def test_cassandra_all_fails_writes_for_conversations_on_the_down_node() -> None:
    res = simulate(cassandra("all"), seed=1, progress=False)
    assert res.summary.iloc[0]["write_errors"] > 0
    assert res.meta["counters"]["store_unavailable"] > 0
    assert window(res, 40, 70, "errors_per_s") > 0


def test_a_mongodb_primary_loss_stops_writes_for_about_the_election_timeout() -> None:
    sc = preset("websocket_rabbitmq_mongodb", faults=crash("store.0"))
    res = simulate(sc, seed=1, progress=False)
    # nothing becomes durable from the crash until the election (10 s + a fraction)
    assert window(res, 40, 50, "throughput") == 0.0
    assert window(res, 55, 70, "throughput") > 0
    events = res.faults[res.faults["kind"] == "event"]["detail"]
    assert events.str.contains("election").any()
    row = res.summary.iloc[0]
    assert row["lost"] == 0 and row["duplicated"] == 0


def test_sqs_duplicates_reach_the_consumers_but_never_a_screen() -> None:
    sc = preset("websocket_sqs_dynamodb", **{"architecture.broker.duplicate_probability": 0.2})
    res = simulate(sc, seed=1, progress=False)
    assert res.meta["counters"]["sqs_duplicates"] > 0
    assert res.meta["counters"]["broker_redeliveries"] > 0
    assert res.summary.iloc[0]["duplicated"] == 0


def test_messages_that_outlive_the_inbox_retention_are_lost_and_counted() -> None:
    short = preset("websocket_sqs_dynamodb", **{"architecture.offline.retention_s": 30})
    res = simulate(short, seed=1, progress=False)
    assert res.meta["counters"]["inbox_expired"] > 0
    assert res.summary.iloc[0]["lost"] > 0
    # tombstones keep later messages flowing: nothing is held behind an expired one
    assert res.summary.iloc[0]["reordered"] == 0


def test_an_sqs_inbox_makes_reconnect_syncs_slower_than_a_store_read() -> None:
    store = simulate(preset("websocket_microservices"), seed=1, progress=False)
    sqs = simulate(
        preset("websocket_microservices", **{"architecture.offline.inbox": "sqs"}),
        seed=1,
        progress=False,
    )

    # ReceiveMessage calls of about 20 ms each instead of a 1 ms store read; every
    # reconnect sync of the run (the drain's included), the same reconnects in both
    def sync_median(res: Result) -> float:
        d = res.deliveries
        return float(d[d["path"] == "sync"]["latency_s"].median())

    assert sync_median(sqs) > sync_median(store) + 0.015
    assert sqs.meta["counters"]["inbox_sqs_calls"] >= sqs.meta["counters"]["inbox_sqs_reads"]


def test_sqs_fifo_throttles_sends_above_300_calls_a_second_unless_batched() -> None:
    heavy = {
        "architecture.broker.kind": "sqs_fifo",
        "workload.messages_per_user_per_hour": 1800,  # about 190 messages/s online
        "workload.users": 1500,
        "architecture.broker.fifo_ops_per_s": 100.0,
    }
    throttled = simulate(preset("websocket_sqs_dynamodb", **heavy), seed=1, progress=False)
    batched = simulate(
        preset("websocket_sqs_dynamodb", **heavy, **{"architecture.broker.fifo_batch": 10}),
        seed=1,
        progress=False,
    )
    assert throttled.meta["counters"]["sqs_throttled"] > 0
    assert throttled.summary.iloc[0]["write_errors"] > 0
    assert batched.meta["counters"]["sqs_throttled"] == 0
    assert batched.summary.iloc[0]["failed"] == 0


def kafka_under_load(acks: str) -> Scenario:
    """About 3,000 messages a second, brokers 1 ms apart, broker 0 crashes at 8 s."""
    return load_scenario(
        "websocket_kafka_cassandra",
        {
            "workload.users": 3000,
            "workload.messages_per_user_per_hour": 14400,
            "run.duration_s": 12,
            "run.warmup_s": 2,
            "run.drain_s": 40,
            "run.interval_s": 1,
            "architecture.network.internal_rtt_s": 0.002,
            "architecture.service.instances": 8,
            "architecture.broker.acks": acks,
            "faults": crash("broker.0", at_s=8, duration_s=10),
        },
    )


def test_kafka_acks_1_loses_acked_messages_when_a_leader_crashes_under_load() -> None:
    """The records the leader had acknowledged but no follower had fetched are truncated
    by the new leader: acked, never delivered, and the checker finds every one."""
    lost = 0
    for seed in (1, 2):
        res = simulate(kafka_under_load("1"), seed=seed, progress=False)
        assert res.meta["settled"]
        whole = res.meta["whole_run"]["lost"]
        assert whole == res.meta["counters"]["broker_truncated"]
        assert res.summary.iloc[0]["duplicated"] == 0
        lost += whole
    assert lost > 0


def test_kafka_acks_all_with_min_insync_2_loses_nothing_but_stalls_meanwhile() -> None:
    res = simulate(kafka_under_load("all"), seed=1, progress=False)
    assert res.meta["whole_run"]["lost"] == 0
    assert res.meta["counters"]["broker_truncated"] == 0
    # broker 0 is in every ISR: acks=all waits for the fencing (9 s); senders give up
    assert res.summary.iloc[0]["failed"] > 0
    msgs = res.messages
    during = msgs[(msgs["send_time_s"] >= 8.5) & (msgs["send_time_s"] < 16.0) & msgs["acked"]]
    assert (during["ack_time_s"] >= 8.0 + 9.0).all()
