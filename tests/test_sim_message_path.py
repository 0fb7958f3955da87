"""Behaviour of the first message path: delivery semantics, transports, tiers, retries.

Scenarios are small (a few hundred users, minutes of simulated time) so the
suite stays fast; comparisons between designs use paired replications (common
random numbers) and confidence intervals, never one seed's numbers.
"""

from __future__ import annotations

import gc
from typing import Any

import numpy as np
import pytest

from sim.core.metrics import Message
from sim.core.statistics import mean_ci, paired_difference
from sim.model.client.timeline import Timeline
from sim.model.run import Model, simulate
from sim.scenario.loader import load_scenario, with_overrides
from sim.scenario.schema import Scenario


def small(overrides: dict[str, Any] | None = None, **arch: Any) -> Scenario:
    raw: dict[str, Any] = {
        "name": "small",
        "architecture": {"gateway": {"instances": 2}, "service": {"instances": 2}, **arch},
        "workload": {
            "users": 400,
            "sessions": {"mean_online_s": 120, "mean_offline_s": 240},
            "messages_per_user_per_hour": 120,
            "conversations": {
                "group_fraction": 0.1,
                "group_size": {"dist": "zipf", "a": 2.0, "min": 3, "max": 20},
            },
        },
        "run": {"duration_s": 240, "warmup_s": 30, "drain_s": 30, "interval_s": 10},
    }
    return load_scenario(raw, overrides)


@pytest.mark.parametrize("transport", ["websocket", "long_polling", "short_polling"])
@pytest.mark.parametrize("style", ["monolith", "microservices"])
def test_without_faults_every_acked_message_reaches_every_member_once_in_order(
    transport: str, style: str
) -> None:
    res = simulate(small(style=style, transport={"kind": transport}), seed=3, progress=False)
    row = res.summary.iloc[0]
    assert row["sent"] > 300
    assert row["acked"] == row["sent"] and row["failed"] == 0
    assert row["lost"] == 0 and row["duplicated"] == 0 and row["reordered"] == 0
    whole = res.meta["whole_run"]
    assert whole["lost"] == 0 and whole["duplicated"] == 0 and whole["reordered"] == 0
    # both paths are used: pushes to online members, syncs for members who were offline
    paths = set(res.deliveries["path"].astype(str))
    assert paths == {"online", "sync"}


def test_the_checker_catches_a_client_that_does_not_deduplicate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A broken client (displays whatever arrives, in arrival order) must be caught twice
    over: its double displays as duplicates and its out-of-order displays as reorderings."""

    def careless_receive(
        self: Timeline,
        user: int,
        batch: list[Any],
        path: int,
        ref_s: float,
        from_store: bool = False,
    ) -> None:
        now = self.kernel.now
        for msg, slot in batch:
            if msg.sender != user:
                self.rec.display(msg, user, now, msg.send_s, path)
            self.cursor[slot] = max(self.cursor[slot], msg.seq)

    # busy group chats with a store whose write latency varies: messages of one
    # conversation become durable out of seq order, so pushes arrive out of order
    sc = small(
        {"workload.users": 60, "workload.messages_per_user_per_hour": 1200},
        transport={"kind": "websocket"},
        store={"write_s": {"dist": "lognormal", "mean": 0.05, "cv": 1.5}, "workers": 64},
    )
    honest = simulate(sc, seed=5, progress=False).summary.iloc[0]
    monkeypatch.setattr(Timeline, "_receive", careless_receive)
    broken = simulate(sc, seed=5, progress=False).summary.iloc[0]
    assert honest["duplicated"] == 0 and honest["reordered"] == 0
    # the careless client shows both faults on this seed: a message that reaches it
    # twice is displayed twice (once here), and out-of-order pushes are displayed as
    # they come (dozens of times); each must be counted on its own
    assert broken["duplicated"] > 0, broken
    assert broken["reordered"] > 0, broken


def test_same_scenario_and_seed_give_identical_results_and_other_seeds_differ() -> None:
    sc = small(transport={"kind": "long_polling"})
    a = simulate(sc, seed=11, progress=False)
    b = simulate(sc, seed=11, progress=False)
    c = simulate(sc, seed=12, progress=False)
    assert a.summary.equals(b.summary)
    assert a.deliveries.equals(b.deliveries)
    assert a.timeseries.equals(b.timeseries)
    assert not a.summary.drop(columns="seed").equals(c.summary.drop(columns="seed"))


def test_a_released_model_gives_the_results_of_a_kept_one_and_cannot_be_inspected() -> None:
    """simulate() lets go of the run's objects before building the frames; nothing in the
    result may depend on that (an attack scenario exercises the attack accounting too)."""
    sc = small(
        {
            "workload.attack.attackers": 5,
            "workload.attack.rate_per_s": 5.0,
            "workload.attack.start_s": 60.0,
            "workload.attack.duration_s": 30.0,
        },
        transport={"kind": "websocket"},
    )
    kept = Model(sc, 4)
    a = kept.run(progress=False)
    gc.collect()
    alive = sum(type(o) is Message for o in gc.get_objects())
    released = Model(sc, 4)
    # every message of the released run is gone at once, freed by reference counting
    # (the collector is off: the release takes the components' cycles apart itself),
    # and nothing left leads back to them
    gc.disable()
    try:
        b = released.run(progress=False, release=True)
        assert sum(type(o) is Message for o in gc.get_objects()) == alive
    finally:
        gc.enable()
    gc.collect()
    assert sum(type(o) is Message for o in gc.get_objects()) == alive
    assert b.meta["messages"] > 0 and b.summary.iloc[0]["attack_sent"] > 0
    for name in ("summary", "messages", "deliveries", "timeseries", "faults", "stations"):
        assert getattr(a, name).equals(getattr(b, name)), name
    assert {k: v for k, v in a.meta.items() if k != "wall_s"} == {
        k: v for k, v in b.meta.items() if k != "wall_s"
    }
    assert kept.recorder.messages and not released.recorder.messages
    with pytest.raises(AttributeError):
        _ = released.server


def test_two_architectures_see_the_same_workload_under_one_seed() -> None:
    """Common random numbers: the messages sent do not depend on the architecture."""
    ws = simulate(small(transport={"kind": "websocket"}), seed=2, progress=False)
    sp = simulate(
        small(transport={"kind": "short_polling"}, style="monolith"), seed=2, progress=False
    )
    cols = ["conv_id", "sender", "send_time_s", "payload_bytes"]
    assert ws.messages[cols].equals(sp.messages[cols])


def _paired(metric: str, a: Scenario, b: Scenario, seeds: range) -> tuple[float, float]:
    xa = [simulate(a, s, progress=False).summary.iloc[0][metric] for s in seeds]
    xb = [simulate(b, s, progress=False).summary.iloc[0][metric] for s in seeds]
    ci = paired_difference(xa, xb)
    return ci.low, ci.high


def test_short_polling_has_higher_latency_and_far_more_bytes_than_websockets() -> None:
    ws = small(transport={"kind": "websocket"})
    sp = small(transport={"kind": "short_polling", "poll_interval_s": 2.0})
    seeds = range(1, 6)
    ws_rows = [simulate(ws, s, progress=False).summary.iloc[0] for s in seeds]
    sp_rows = [simulate(sp, s, progress=False).summary.iloc[0] for s in seeds]
    latency = paired_difference(
        [r["latency_p50"] for r in sp_rows], [r["latency_p50"] for r in ws_rows]
    )
    assert latency.low > 0.5  # waiting for the next poll: about half the 2 s interval
    ratios = [a["bytes_per_s"] / b["bytes_per_s"] for a, b in zip(sp_rows, ws_rows, strict=True)]
    assert mean_ci(ratios).low > 10


def test_idle_short_polling_clients_send_the_published_header_overhead() -> None:
    """1,000 clients polling once a second with 871 B of headers: about 871,000 B/s.

    Lubbers & Greco's example; bodies of empty polls and replies add a few percent.
    """
    sc = load_scenario(
        {
            "architecture": {
                "style": "monolith",
                "transport": {"kind": "short_polling", "poll_interval_s": 1.0},
                "gateway": {"instances": 4, "workers": 4},
            },
            "workload": {
                "users": 1000,
                "sessions": {"mean_online_s": 1e9, "mean_offline_s": 0},
                "messages_per_user_per_hour": 0,
            },
            "run": {"duration_s": 60, "warmup_s": 10, "drain_s": 0},
        }
    )
    row = simulate(sc, seed=1, progress=False).summary.iloc[0]
    header_rate = row["requests"] * 871 / 50.0
    assert header_rate == pytest.approx(871_000, rel=0.01)
    assert 871_000 <= row["bytes_per_s"] <= 871_000 * 1.1
    ws_sc = with_overrides(sc, {"architecture.transport.kind": "websocket"})
    ws = simulate(ws_sc, seed=1, progress=False).summary.iloc[0]
    assert ws["bytes_per_s"] < 5_000


def test_microservices_add_internal_hops_to_the_online_latency() -> None:
    mono = small(style="monolith", transport={"kind": "websocket"})
    micro = small(style="microservices", transport={"kind": "websocket"})
    # the median: a mean also carries the rare sender who goes offline while its ack is in
    # flight (its retry waits for the next session), a race the extra hops make likelier
    low, high = _paired("latency_p50", micro, mono, range(1, 6))
    # two more hops (gateway<->service) each way at 0.5 ms RTT: about +1 ms, well under 10 ms
    assert low > 0 and high < 0.01


def test_a_store_slower_than_the_timeout_makes_senders_retry_and_give_up() -> None:
    sc = small(
        transport={"kind": "websocket"},
        store={"write_s": {"dist": "constant", "value": 3.0}},
        resilience={"timeout_s": 1.0, "retry": {"max_attempts": 2, "base_s": 0.1}},
    )
    res = simulate(sc, seed=1, progress=False)
    row = res.summary.iloc[0]
    # a sender that went offline mid-retry may reconnect after the write and get its ack
    assert row["failed"] >= 0.95 * row["sent"] and row["availability"] < 0.05
    failed = res.messages[res.messages["failed"]]
    assert (failed["attempts"] == 2).all()
    # the writes still complete: failed for the sender, yet delivered (at-least-once)
    assert row["delivered"] > 0 and row["duplicated"] == 0


def test_a_token_bucket_rejects_sends_beyond_its_rate() -> None:
    sc = small(
        transport={"kind": "websocket"},
        rate_limit={"kind": "token_bucket", "rate_per_s": 0.001, "burst": 1},
        resilience={"retry": {"max_attempts": 1}},
    )
    res = simulate(sc, seed=1, progress=False)
    assert res.meta["rate_limited"] > 0
    # one attempt each: every rejected send is a failed send, and nothing else fails
    assert res.meta["whole_run"]["failed"] == res.meta["rate_limited"]
    assert res.summary.iloc[0]["availability"] < 0.5


def test_least_connections_spreads_sessions_evenly_over_gateways() -> None:
    sc = small(
        transport={"kind": "websocket"},
        load_balancer={"policy": "least_connections"},
        gateway={"instances": 4},
    )
    res = simulate(sc, seed=1, progress=False)
    jobs = res.stations[res.stations["tier"] == "gateway"]["jobs"].to_numpy()
    assert jobs.min() > 0.5 * jobs.mean()


def test_offline_members_receive_by_sync_with_latency_measured_from_reconnect() -> None:
    res = simulate(small(transport={"kind": "websocket"}), seed=4, progress=False)
    sync = res.deliveries[res.deliveries["path"] == "sync"]
    assert len(sync) > 0
    # sync latency counts from the reconnect, so it is small although the message waited
    waited = (sync["display_time_s"] - sync["send_time_s"]).median()
    assert sync["latency_s"].median() < 2.0 < waited
    assert np.isfinite(res.summary.iloc[0]["sync_p99"])


def test_pairwise_e2e_uploads_one_ciphertext_per_recipient_sender_keys_one() -> None:
    """Groups make pairwise encryption cost upload bytes; 1:1 conversations do not."""
    base = {"workload.conversations.group_fraction": 0.5}
    keys = small(base, encryption={"kind": "e2e", "group_scheme": "sender_keys"})
    pairwise = small(base, encryption={"kind": "e2e", "group_scheme": "pairwise"})
    a = simulate(keys, seed=1, progress=False).summary.iloc[0]["bytes"]
    b = simulate(pairwise, seed=1, progress=False).summary.iloc[0]["bytes"]
    assert b > 1.2 * a


def test_a_drain_too_short_for_the_backlog_is_reported_as_unsettled() -> None:
    """Lost counts what is missing at the end; the run says when that is a backlog."""
    calm = simulate(small(transport={"kind": "websocket"}), seed=1, progress=False)
    assert calm.meta["settled"]
    overloaded = small(
        {"run.drain_s": 1.0},
        transport={"kind": "websocket"},
        store={"workers": 1, "write_s": {"dist": "constant", "value": 0.5}},
    )
    res = simulate(overloaded, seed=1, progress=False)
    assert not res.meta["settled"]


def test_paired_differences_flag_what_the_architecture_changes_and_not_what_it_does_not() -> None:
    """Against WebSockets, short polling significantly raises latency and bytes; with the
    same workload (common random numbers), the number of messages sent does not move."""
    from sim.studies.experiment import compare_runs, differences

    ws = small(transport={"kind": "websocket"})
    sp = small(transport={"kind": "short_polling", "poll_interval_s": 2.0})
    ws = ws.model_copy(update={"name": "ws"})
    sp = sp.model_copy(update={"name": "sp"})
    results = compare_runs([ws, sp], replications=3, backend="serial", progress=False)
    table = differences(results, metrics=("latency_p50", "bytes_per_s", "sent")).set_index("metric")
    assert table.loc["latency_p50", "significant"] and table.loc["latency_p50", "difference"] > 0
    assert table.loc["bytes_per_s", "significant"] and table.loc["bytes_per_s", "difference"] > 0
    assert table.loc["sent", "difference"] == 0 and not table.loc["sent", "significant"]


def test_the_run_reports_the_warm_up_mser5_suggests() -> None:
    """Users start in steady state, so the data-driven warm-up is short: MSER-5 on the
    ack latencies (message by message) stays within the first half of the run."""
    res = simulate(small(transport={"kind": "websocket"}), seed=2, progress=False)
    suggested = res.meta["mser5_warmup_s"]
    assert 0.0 <= suggested <= res.meta["duration_s"] / 2


def test_without_a_given_warm_up_mser5_is_applied_at_an_interval_boundary() -> None:
    sc = small(transport={"kind": "websocket"})
    detected = sc.model_copy(update={"run": sc.run.model_copy(update={"warmup_s": None})})
    res = simulate(detected, seed=2, progress=False)
    meta = res.meta
    assert meta["warmup_detected"] and meta["warmup_s"] % sc.run.interval_s == 0
    assert meta["mser5_warmup_s"] <= meta["warmup_s"] < meta["mser5_warmup_s"] + sc.run.interval_s
    # the window starts there: the same messages as a run given that warm-up explicitly
    given = sc.model_copy(update={"run": sc.run.model_copy(update={"warmup_s": meta["warmup_s"]})})
    same = simulate(given, seed=2, progress=False)
    assert not same.meta["warmup_detected"]
    for column in ("sent", "acked", "delivered", "latency_p99", "bytes", "requests"):
        assert res.summary.iloc[0][column] == same.summary.iloc[0][column], column
    pd_util = res.stations["utilisation"].to_numpy()
    assert abs(pd_util - same.stations["utilisation"].to_numpy()).max() < 1e-9


def test_a_system_started_empty_under_load_gets_a_longer_detected_warm_up() -> None:
    """Queues that start empty fill up: MSER-5 cuts the transient it sees."""
    raw_load = small(
        overrides={
            "architecture.store.workers": 1,
            "architecture.store.write_s": {"dist": "exponential", "mean": 0.012},
            "workload.messages_per_user_per_hour": 240,
            "run.warmup_s": None,
        }
    )
    res = simulate(raw_load, seed=3, progress=False)
    assert res.meta["warmup_detected"]
    assert 0 < res.meta["warmup_s"] <= res.meta["duration_s"] / 2
