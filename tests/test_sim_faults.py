"""Faults on the message path: crashes of gateways, services and the store, end to end.

Each test runs a small scenario through the whole simulator and looks at what
users saw: the checker's outcome accounting, the timeseries and the fault table.
Comparisons use replications, never one seed's numbers.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd
import pytest

from sim.core.statistics import mean_ci
from sim.model.result import Result
from sim.model.run import simulate
from sim.scenario.loader import load_scenario
from sim.scenario.schema import Scenario

SEEDS = range(1, 7)


def scenario(faults: list[dict[str, Any]], **overrides: Any) -> Scenario:
    raw: dict[str, Any] = {
        "name": "faulty",
        "architecture": {
            "gateway": {"instances": 3},
            "service": {"instances": 2},
        },
        "workload": {
            "users": 600,
            "sessions": {"mean_online_s": 300, "mean_offline_s": 300},
            "messages_per_user_per_hour": 120,
        },
        "faults": faults,
        "run": {"duration_s": 180, "warmup_s": 20, "drain_s": 90, "interval_s": 5},
    }
    return load_scenario(raw, overrides)


def window(res: Result, start: float, end: float, column: str) -> float:
    ts = res.timeseries
    rows = ts[(ts["t_s"] >= start) & (ts["t_s"] < end)]
    return float(rows[column].sum())


GATEWAY_CRASH = [{"at_s": 60, "kind": "crash", "target": "gateway.0", "duration_s": 40}]
STORE_CRASH = [{"at_s": 60, "kind": "crash", "target": "store.0", "duration_s": 20}]


def test_a_gateway_crash_drops_its_connections_and_clients_reconnect_elsewhere() -> None:
    for seed in SEEDS[:3]:
        res = simulate(scenario(GATEWAY_CRASH), seed=seed, progress=False)
        counters = res.meta["counters"]
        assert counters["connections_lost"] > 0
        # round robin without health checks keeps offering the dead instance: refusals
        assert counters["connect_failures"] > 0
        row = res.summary.iloc[0]
        assert row["lost"] == 0 and row["duplicated"] == 0 and row["reordered"] == 0
        assert res.meta["settled"]


def test_health_checks_eject_a_crashed_gateway_and_readmit_it() -> None:
    sc = scenario(
        GATEWAY_CRASH,
        **{"architecture.load_balancer.health_check.enabled": True},
    )
    res = simulate(sc, seed=1, progress=False)
    faults = res.faults
    ejected = faults[faults["kind"] == "ejected"]
    readmitted = faults[faults["kind"] == "readmitted"]
    assert list(ejected["target"]) == ["gateway.0"]
    # 3 failed checks 2 s apart, the first within 2 s of the crash
    assert 60 + 4 <= float(ejected["at_s"].iloc[0]) <= 60 + 6 + 1e-9
    assert 100 + 2 <= float(readmitted["at_s"].iloc[0]) <= 100 + 4 + 1e-9


def test_health_checks_cut_connection_refusals_after_a_gateway_crash() -> None:
    """Paired over seeds: with ejection, far fewer connections go to the dead instance."""
    plain, checked = [], []
    for seed in SEEDS:
        plain.append(
            simulate(scenario(GATEWAY_CRASH), seed=seed, progress=False).meta["counters"][
                "connect_failures"
            ]
        )
        sc = scenario(GATEWAY_CRASH, **{"architecture.load_balancer.health_check.enabled": True})
        checked.append(simulate(sc, seed=seed, progress=False).meta["counters"]["connect_failures"])
    diff = mean_ci(np.asarray(plain) - np.asarray(checked))
    assert diff.low > 0


def test_a_single_store_down_fails_writes_meanwhile_and_loses_nothing_acked() -> None:
    for seed in SEEDS[:3]:
        res = simulate(scenario(STORE_CRASH), seed=seed, progress=False)
        assert window(res, 60, 80, "throughput") == 0.0  # nothing becomes durable
        assert window(res, 60, 85, "errors_per_s") > 0
        assert window(res, 85, 180, "throughput") > 0
        row = res.summary.iloc[0]
        assert row["lost"] == 0 and row["duplicated"] == 0
        assert row["write_errors"] > 0
        crash = res.faults[res.faults["kind"] == "crash"]
        assert list(crash["target"]) == ["store.0"]


def test_a_service_crash_loses_work_in_progress_which_senders_retry() -> None:
    faults = [{"at_s": 60, "kind": "crash", "target": "service.0", "duration_s": 30}]
    res = simulate(scenario(faults), seed=2, progress=False)
    row = res.summary.iloc[0]
    # the balancer keeps sending to the dead instance: retries recover most sends
    assert res.meta["counters"]["dropped_jobs"] > 0
    assert res.meta["retries"] > 0
    assert row["lost"] == 0 and row["duplicated"] == 0


def test_the_same_fault_scenario_twice_gives_identical_traces() -> None:
    faults = GATEWAY_CRASH + STORE_CRASH
    a = simulate(scenario(faults), seed=4, progress=False)
    b = simulate(scenario(faults), seed=4, progress=False)
    pd.testing.assert_frame_equal(a.messages, b.messages)
    pd.testing.assert_frame_equal(a.deliveries, b.deliveries)
    pd.testing.assert_frame_equal(a.faults, b.faults)
    assert a.meta["events"] == b.meta["events"]


def test_the_timeline_of_a_fault_run_shows_errors_the_window_and_the_reactions() -> None:
    from matplotlib.collections import PolyCollection
    from matplotlib.lines import Line2D

    from sim.output.timeline_plot import timeline, timeline_metrics

    sc = scenario(GATEWAY_CRASH, **{"architecture.load_balancer.health_check.enabled": True})
    res = simulate(sc, seed=1, progress=False)
    metrics = timeline_metrics(res)
    assert "errors_per_s" in metrics and "connected_users" in metrics
    figure = timeline(res)
    first = figure.axes[0]
    shaded = [*first.patches, *(c for c in first.collections if isinstance(c, PolyCollection))]
    labels = [line.get_label() for line in first.get_lines() if isinstance(line, Line2D)]
    assert any("crash gateway.0" in str(p.get_label()) for p in shaded)
    assert "ejected (reaction)" in labels and "readmitted (reaction)" in labels
    # connected users (counted as each interval starts) dip when the crash drops a third
    ts = res.timeseries.set_index("t_s")["connected_users"]
    assert ts.loc[60.0] < 0.8 * ts.loc[55.0]


def test_acking_at_the_gateway_is_faster_but_loses_what_a_crash_takes() -> None:
    """The ack point trades latency for the promise: a gateway ack comes before the
    store write, so work lost in a crashed message service was already acked."""
    faults = [{"at_s": 60, "kind": "crash", "target": "service.0", "duration_s": 30}]
    lost_gateway = lost_store = 0
    ack_gateway, ack_store = [], []
    for seed in SEEDS[:4]:
        at_gateway = simulate(
            scenario(faults, **{"architecture.ack_after": "gateway"}), seed=seed, progress=False
        ).summary.iloc[0]
        at_store = simulate(scenario(faults), seed=seed, progress=False).summary.iloc[0]
        lost_gateway += at_gateway["lost"]
        lost_store += at_store["lost"]
        ack_gateway.append(at_gateway["ack_p50"])
        ack_store.append(at_store["ack_p50"])
    assert lost_gateway > 0 and lost_store == 0
    faster = mean_ci(np.asarray(ack_store) - np.asarray(ack_gateway))
    assert faster.low > 0.001  # the service hop, the store write and the way back


# ---------------------------------------------------------------- other fault kinds


def test_a_whole_tier_crash_stops_every_instance_of_it() -> None:
    res = simulate(
        scenario([{"at_s": 60, "kind": "crash", "target": "service", "duration_s": 20}]),
        seed=1,
        progress=False,
    )
    assert window(res, 61, 80, "throughput") == 0.0
    assert window(res, 85, 120, "throughput") > 0
    assert res.summary.iloc[0]["lost"] == 0


def test_a_slow_store_raises_ack_latency_only_during_the_window() -> None:
    slow = [{"at_s": 60, "kind": "slow", "target": "store.0", "duration_s": 40, "factor": 50}]
    res = simulate(scenario(slow), seed=1, progress=False)
    msgs = res.messages[res.messages["acked"]]
    ack = msgs["ack_time_s"] - msgs["send_time_s"]
    during = ack[(msgs["send_time_s"] >= 65) & (msgs["send_time_s"] < 95)]
    before = ack[(msgs["send_time_s"] >= 20) & (msgs["send_time_s"] < 55)]
    after = ack[(msgs["send_time_s"] >= 110) & (msgs["send_time_s"] < 180)]
    # 2 ms writes x50 = 100 ms more at the median
    assert during.median() > before.median() + 0.05
    assert after.median() < before.median() + 0.02
    assert res.faults.iloc[0]["detail"] == "service times x50"


def test_a_pause_delays_work_without_losing_any() -> None:
    pause = [{"at_s": 60, "kind": "pause", "target": "service", "duration_s": 3}]
    res = simulate(scenario(pause), seed=2, progress=False)
    row = res.summary.iloc[0]
    assert row["lost"] == 0 and res.meta["counters"]["dropped_jobs"] == 0
    msgs = res.messages[res.messages["acked"]]
    stuck = msgs[(msgs["send_time_s"] >= 60) & (msgs["send_time_s"] < 62.5)]
    # sent during the pause, acked only after it ends (or after a retry)
    assert len(stuck) > 0 and (stuck["ack_time_s"] >= 63.0).all()


def test_a_partition_between_service_and_store_times_writes_out_and_heals() -> None:
    cut = [
        {
            "at_s": 60,
            "kind": "partition",
            "between": [["service"], ["store"]],
            "duration_s": 20,
        }
    ]
    res = simulate(scenario(cut), seed=1, progress=False)
    assert window(res, 61, 80, "throughput") == 0.0
    assert window(res, 85, 180, "throughput") > 0
    assert res.meta["counters"]["write_timeouts"] > 0
    assert res.summary.iloc[0]["lost"] == 0
    assert res.faults.iloc[0]["target"] == "service | store"


def test_a_one_way_partition_cuts_only_one_direction() -> None:
    """Clients can reach the gateways but hear nothing back: sends are stored but their
    acks are lost, so senders retry into dedup. Pushes in the window are lost too; a
    recipient recovers one only when a later message of that conversation reveals the
    gap (no heartbeat tells a client its connection went deaf)."""
    cut = [
        {
            "at_s": 60,
            "kind": "partition",
            "between": [["gateway"], ["client"]],
            "one_way": True,
            "duration_s": 15,
        }
    ]
    res = simulate(scenario(cut), seed=1, progress=False)
    assert window(res, 61, 75, "throughput") > 0  # writes still arrive and are stored
    assert window(res, 61, 75, "retries_per_s") > 0  # no acks come back
    row = res.summary.iloc[0]
    assert row["duplicated"] == 0
    # senders give up on messages the system did store: "failed" yet displayed to others
    failed = set(res.messages[res.messages["failed"]]["msg_id"])
    assert failed and failed & set(res.deliveries["msg_id"])
    assert row["lost"] < 0.05 * row["sent"]
    assert res.meta["counters"]["partition_drops"] > 0


def test_link_loss_adds_retransmission_delay_to_the_client_link() -> None:
    lossy = [{"at_s": 60, "kind": "link", "target": "client", "duration_s": 60, "loss": 0.3}]
    clean = simulate(scenario([]), seed=3, progress=False)
    res = simulate(scenario(lossy), seed=3, progress=False)

    def p99(r: Result) -> float:
        d = r.deliveries
        window_rows = d[
            (d["send_time_s"] >= 65) & (d["send_time_s"] < 115) & (d["path"] == "online")
        ]
        return float(window_rows["latency_s"].quantile(0.99))

    # 30 % loss on each of two links: the p99 path meets at least one 200 ms RTO
    assert p99(res) > p99(clean) + 0.15
    assert res.summary.iloc[0]["lost"] == 0


def test_a_zone_outage_crashes_every_instance_and_node_of_that_zone() -> None:
    sc = scenario(
        [{"at_s": 60, "kind": "zone_outage", "target": "zone.1", "duration_s": 30}],
        **{
            "architecture.zones": 3,
            "architecture.store.kind": "cassandra",
            "architecture.store.nodes": 3,
            "architecture.load_balancer.health_check.enabled": True,
        },
    )
    res = simulate(sc, seed=1, progress=False)
    faults = res.faults
    ejected = set(faults[faults["kind"] == "ejected"]["target"])
    assert ejected == {"gateway.1", "service.1"}  # zone 1 of 3 gateways and 2 services
    counters = res.meta["counters"]
    assert counters["store_hints_stored"] > 0  # cassandra node 1 was down: hinted
    row = res.summary.iloc[0]
    assert row["lost"] == 0 and row["write_errors"] == 0  # QUORUM survives one zone


#: random crashes: 6 gateways up and down for a 30-minute window, 3 replications:
#: about 460 failures and as many repairs, so that the mean of either is known to
#: within about +-12% (99.5% each, 99% for the pair) and a 25% error fails
RANDOM_MTBF_S, RANDOM_MTTR_S, RANDOM_WINDOW_S, RANDOM_UNITS = 60.0, 10.0, 1800.0, 6
RANDOM_SEEDS = (1, 2, 3)


def exponential_mean_ci(exposure_s: float, events: int, confidence: float) -> tuple[float, float]:
    """Confidence interval of an exponential mean from ``events`` ended within
    ``exposure_s`` of total time at risk (windows cut off by the end count as exposure,
    not as events): the estimate ``exposure_s / events``, whose logarithm has a
    standard error of ``1 / sqrt(events)`` (the large-sample approximation)."""
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    estimate = exposure_s / events
    spread = math.exp(z / math.sqrt(events))
    return estimate / spread, estimate * spread


def random_crash_windows() -> pd.DataFrame:
    """The drawn crash windows of every replication, with the users' losses checked."""
    sc = scenario(
        [
            {
                "at_s": 0,
                "kind": "random_crash",
                "target": "gateway",
                "duration_s": RANDOM_WINDOW_S,
                "mtbf_s": RANDOM_MTBF_S,
                "mttr_s": RANDOM_MTTR_S,
            }
        ],
        **{
            "architecture.gateway.instances": RANDOM_UNITS,
            # a light load: what is measured here is the fault process, not the users
            "workload.users": 20,
            "run.duration_s": RANDOM_WINDOW_S,
            "run.drain_s": 10,
        },
    )
    frames = []
    for seed in RANDOM_SEEDS:
        res = simulate(sc, seed=seed, progress=False)
        assert res.summary.iloc[0]["lost"] == 0
        frames.append(res.faults[res.faults["detail"] == "random_crash (MTBF/MTTR)"])
    return pd.concat(frames, ignore_index=True)


def test_random_crashes_follow_their_mtbf_and_mttr() -> None:
    """Up times are exponential with mean MTBF and repairs with mean MTTR: each mean,
    estimated over every unit and replication, has the configured value inside its
    99.5% interval (family-wise 99% for the two)."""
    drawn = random_crash_windows()
    down_s = (drawn["until_s"] - drawn["at_s"]).to_numpy()
    repaired = int((drawn["until_s"] < RANDOM_WINDOW_S).sum())  # the rest are cut off
    up_exposure_s = len(RANDOM_SEEDS) * RANDOM_UNITS * RANDOM_WINDOW_S - float(down_s.sum())
    mtbf = exponential_mean_ci(up_exposure_s, len(drawn), 0.995)
    mttr = exponential_mean_ci(float(down_s.sum()), repaired, 0.995)
    assert mtbf[0] <= RANDOM_MTBF_S <= mtbf[1], mtbf
    assert mttr[0] <= RANDOM_MTTR_S <= mttr[1], mttr
    # sharp enough: each interval spans less than a factor 1.25 either side of its
    # estimate, so a process whose true mean is 25% off the configured one fails
    for low, high in (mtbf, mttr):
        assert high / low < 1.25**2, (low, high)


EVERY_KIND: dict[str, list[dict[str, Any]]] = {
    "crash": GATEWAY_CRASH + STORE_CRASH,
    "slow": [{"at_s": 60, "kind": "slow", "target": "store.0", "duration_s": 30, "factor": 20}],
    "pause": [{"at_s": 60, "kind": "pause", "target": "service.1", "duration_s": 2}],
    "partition": [
        {"at_s": 60, "kind": "partition", "between": [["gateway"], ["service"]], "duration_s": 9}
    ],
    "link": [
        {
            "at_s": 60,
            "kind": "link",
            "target": "internal",
            "duration_s": 30,
            "delay_s": 0.01,
            "loss": 0.05,
        }
    ],
    "random_crash": [
        {
            "at_s": 0,
            "kind": "random_crash",
            "target": "service",
            "duration_s": 180,
            "mtbf_s": 60,
            "mttr_s": 5,
        }
    ],
}


@pytest.mark.parametrize("kind", sorted(EVERY_KIND))
def test_the_same_scenario_and_seed_give_the_same_event_trace_for_every_fault_kind(
    kind: str,
) -> None:
    """The determinism self-check: every callback, in order, at the same simulated time."""
    sc = scenario(EVERY_KIND[kind])
    first = simulate(sc, seed=7, progress=False, trace=True).meta["trace"]
    second = simulate(sc, seed=7, progress=False, trace=True).meta["trace"]
    other = simulate(sc, seed=8, progress=False, trace=True).meta["trace"]
    assert first["events"] > 10_000
    assert first == second
    assert other["digest"] != first["digest"]  # the digest does see the difference
