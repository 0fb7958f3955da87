"""Tests of sim.studies.slo and sim.studies.capacity: SLO parsing, the conservative verdict,
bisection, and searches whose right answer is known from queueing theory.

The simulated searches use :func:`sim.validation.theory.queue_scenario`: the message
service is an M/M/c queue (Poisson arrivals, exponential 10 ms service, every other
step instantaneous), so a message's online delivery latency is its sojourn time in
that queue and ``latency_mean`` estimates the exact mean sojourn of ``sim.validation.queueing.mmc``.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from sim.cli.capacity import add_capacity_command
from sim.scenario.loader import ScenarioError
from sim.scenario.schema import Scenario
from sim.studies.capacity import Mode, Status, bisect, capacity, dimension_label, format_value
from sim.studies.slo import SLO, SLO_METRICS, Condition, Operator
from sim.validation import queueing
from sim.validation.theory import USERS, queue_scenario

SERVICE_RATE_PER_S = 100.0
EXPONENTIAL_10MS = {"dist": "exponential", "mean": 1.0 / SERVICE_RATE_PER_S}
#: short runs: a few thousand messages per run keep the whole module well under a minute
DURATION_S, WARMUP_S = 30.0, 5.0


def mmc_scenario(arrival_rate_per_s: float, workers: int, name: str) -> Scenario:
    return queue_scenario(
        arrival_rate_per_s, EXPONENTIAL_10MS, workers, DURATION_S, WARMUP_S, name=name
    )


def mean_sojourn_s(arrival_rate_per_s: float, workers: int) -> float:
    """Exact M/M/c mean sojourn; infinite when the queue has no steady state."""
    if arrival_rate_per_s >= workers * SERVICE_RATE_PER_S:
        return math.inf
    return queueing.mmc(arrival_rate_per_s, SERVICE_RATE_PER_S, workers).mean_sojourn_s


def max_evaluations(low: float, high: float, resolution: float) -> int:
    """Both bounds, then one value per halving of the range down to the resolution."""
    return 2 + math.ceil(math.log2((high - low) / resolution))


# ----------------------------------------------------------------------- SLO text


@pytest.mark.parametrize(
    ("text", "metric", "operator", "threshold"),
    [
        ("latency_p99<=0.2", "latency_p99", Operator.LE, 0.2),
        ("lost==0", "lost", Operator.EQ, 0.0),
        ("availability>=0.999", "availability", Operator.GE, 0.999),
        ("  throughput > 1e3 ", "throughput", Operator.GT, 1000.0),
        ("ack_p99 < 0.5", "ack_p99", Operator.LT, 0.5),
    ],
)
def test_conditions_parse_metric_operator_and_threshold(
    text: str, metric: str, operator: Operator, threshold: float
) -> None:
    condition = Condition.parse(text)
    assert (condition.metric, condition.operator, condition.threshold) == (
        metric,
        operator,
        threshold,
    )


def test_an_slo_reads_several_conditions_and_prints_them_back() -> None:
    slo = SLO.parse(["latency_p99<=0.2", "lost==0"])
    assert SLO.parse("latency_p99<=0.2 and lost==0") == slo
    assert SLO.parse("latency_p99<=0.2, lost==0") == slo
    assert str(slo) == "latency_p99<=0.2 and lost==0"
    assert slo.metrics == ("latency_p99", "lost")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("latency_p42<=0.2", "unknown metric 'latency_p42'"),
        ("seed==1", "unknown metric 'seed'"),
        ("lost=0", "operators: <=, <, >=, >, =="),
        ("lost=<0", "operators"),
        ("latency_p99<=", "METRIC OP NUMBER"),
        ("latency_p99<=fast", "'fast' is not a finite number"),
        ("latency_p99<=nan", "not a finite number"),
    ],
)
def test_a_bad_condition_is_one_error_naming_the_text_and_what_is_allowed(
    text: str, says: str
) -> None:
    with pytest.raises(ScenarioError) as error:
        Condition.parse(text)
    message = str(error.value)
    assert repr(text) in message and says in message
    if "unknown metric" in says:
        assert "latency_p99" in message and "availability" in message  # the allowed list


def test_an_empty_slo_is_refused() -> None:
    with pytest.raises(ScenarioError, match="at least one condition"):
        SLO.parse([])


def test_every_slo_metric_is_a_measured_summary_column() -> None:
    assert "latency_p99" in SLO_METRICS and "lost" in SLO_METRICS
    assert "scenario" not in SLO_METRICS and "seed" not in SLO_METRICS


# --------------------------------------------------------- the conservative verdict


def test_a_mean_under_the_threshold_is_not_enough_when_its_interval_straddles_it() -> None:
    """Mean 0.183 s <= 0.2 s, but the 95% interval reaches above 0.2 s: not met."""
    condition = Condition.parse("latency_p99<=0.2")
    straddling = [0.10, 0.30, 0.15]
    assert np.mean(straddling) < 0.2
    assert not condition.check(straddling)
    assert condition.check([0.18, 0.181, 0.182])


def test_lower_bounds_need_the_whole_interval_above_the_threshold() -> None:
    condition = Condition.parse("availability>=0.999")
    assert condition.check([0.9995, 0.9996, 0.9997])
    assert not condition.check([0.9999, 0.998, 0.9999])  # mean 0.99927 but wide interval


def test_equality_on_counts_needs_every_replication() -> None:
    condition = Condition.parse("lost==0")
    assert condition.check([0, 0, 0])
    assert not condition.check([0, 0, 1])
    assert condition.check([0])  # no interval needed


def test_a_missing_measurement_fails_and_one_run_has_no_interval() -> None:
    condition = Condition.parse("latency_p99<=0.2")
    assert not condition.check([0.1, math.nan, 0.1])
    assert not condition.check([0.1])


# --------------------------------------------------------------------- bisection


@given(
    low=st.integers(0, 10_000),
    width=st.integers(1, 10_000),
    boundary_at=st.floats(0.0, 1.0),
    mode=st.sampled_from(Mode),
)
def test_integer_bisection_finds_the_exact_boundary_in_log2_evaluations(
    low: int, width: int, boundary_at: float, mode: Mode
) -> None:
    """For any monotone predicate the answer is exact and no value is evaluated twice."""
    high = low + width
    boundary = low + round(boundary_at * width)
    evaluated: list[float] = []

    def meets(value: float) -> bool:
        evaluated.append(value)
        return value <= boundary if mode is Mode.MAX_LOAD else value >= boundary

    bracket = bisect(low, high, meets, mode=mode, integer=True, tolerance=0.0)
    assert len(evaluated) == len(set(evaluated))
    assert len(evaluated) <= max_evaluations(low, high, 1)
    assert all(isinstance(v, int) for v in evaluated)
    if mode is Mode.MAX_LOAD:
        expected = Status.BOUND_MEETS if boundary == high else Status.FOUND
        assert bracket.answer == boundary
        assert bracket.failed_at == (None if boundary == high else boundary + 1)
    else:
        expected = Status.BOUND_MEETS if boundary == low else Status.FOUND
        assert bracket.answer == boundary
        assert bracket.failed_at == (None if boundary == low else boundary - 1)
    assert bracket.status is expected


def test_bisection_stops_at_a_failing_easy_bound_after_one_evaluation() -> None:
    evaluated: list[float] = []

    def never(value: float) -> bool:
        evaluated.append(value)
        return False

    bracket = bisect(1, 64, never, mode=Mode.MIN_SIZE, integer=True, tolerance=0.0)
    assert (bracket.status, bracket.answer, bracket.failed_at) == (Status.BOUND_FAILS, None, 64)
    assert evaluated == [64]


def test_a_relative_tolerance_bounds_the_work_for_large_ranges() -> None:
    """A million users to 1%: about 9 values instead of 22 for the exact integer."""
    evaluated: list[float] = []

    def meets(users: float) -> bool:
        evaluated.append(users)
        return users <= 654_321

    bracket = bisect(1_000, 1_000_000, meets, mode=Mode.MAX_LOAD, integer=True, tolerance=0.01)
    assert bracket.status is Status.FOUND and bracket.answer is not None
    assert bracket.failed_at is not None
    assert bracket.answer <= 654_321 < bracket.failed_at
    assert bracket.failed_at - bracket.answer <= 0.01 * bracket.failed_at
    assert len(evaluated) <= max_evaluations(1_000, 1_000_000, 0.01 * 654_321)


# ------------------------------------------------ searches with a known answer


def test_min_size_finds_the_smallest_mmc_that_meets_a_mean_latency_slo() -> None:
    """300 msg/s on 10 ms servers: W(4) = 15.1 ms, W(5) = 11.2 ms, so <= 13 ms needs 5."""
    arrival_rate_per_s, threshold_s = 300.0, 0.013
    known = next(c for c in range(1, 100) if mean_sojourn_s(arrival_rate_per_s, c) <= threshold_s)
    assert mean_sojourn_s(arrival_rate_per_s, known - 1) > threshold_s * 1.1  # clear margin

    result = capacity(
        mmc_scenario(arrival_rate_per_s, 1, "mm_c"),
        "architecture.service.workers",
        [f"latency_mean<={threshold_s}", "lost==0"],
        mode="min_size",
        low=1,
        high=8,
        replications=3,
        seed=1,
        backend="serial",
    )
    assert result.status is Status.FOUND and result.met
    assert (result.answer, result.failed_at) == (known, known - 1)
    assert (
        result.describe()
        == "mm_c meets latency_mean<=0.013 and lost==0 with 5 service workers (4 fail)"
    )

    points = result.points
    assert len(points) <= max_evaluations(1, 8, 1)
    assert list(points["value"]) == sorted(points["value"])
    assert {"value", "met", "replications", "latency_mean_ci_low", "lost_ci_high"} <= set(points)
    assert (points["met"] == (points["value"] >= known)).all()
    # common random numbers: every value ran with the same seeds
    seeds = result.runs.groupby("value")["seed"].apply(tuple)
    assert set(seeds) == {(1, 2, 3)}


def test_max_load_finds_the_arrival_rate_an_mm2_can_take_within_a_latency_slo() -> None:
    """M/M/2 with mean sojourn <= 30 ms takes at most lambda* = 163.3 msg/s (theory).

    The conservative verdict stops short of lambda* (by 3% to 11% over nine seeds
    tried), never beyond it (to the search's 2% resolution); the 15% allowance covers
    the width of intervals from 3 replications of 30 s.
    """
    threshold_s, tolerance = 0.03, 0.02
    low_rate, high_rate = 0.0, 2 * SERVICE_RATE_PER_S
    for _ in range(60):  # lambda* from theory, by bisection on the exact formula
        rate = (low_rate + high_rate) / 2
        low_rate, high_rate = (
            (rate, high_rate) if mean_sojourn_s(rate, 2) <= threshold_s else (low_rate, rate)
        )
    per_user_per_hour = 3600.0 / USERS  # messages_per_user_per_hour per msg/s of load
    capacity_rate = low_rate * per_user_per_hour

    result = capacity(
        mmc_scenario(100.0, 2, "mm2"),
        "workload.messages_per_user_per_hour",
        f"latency_mean<={threshold_s}",
        mode=Mode.MAX_LOAD,
        low=50.0 * per_user_per_hour,
        high=2 * SERVICE_RATE_PER_S * per_user_per_hour,
        replications=3,
        seed=1,
        backend="processes",
        tolerance=tolerance,
    )
    assert result.status is Status.FOUND and result.answer is not None
    assert 0.85 * capacity_rate <= result.answer <= capacity_rate * (1 + tolerance)
    assert result.failed_at is not None and result.failed_at > result.answer
    sentence = result.describe()
    assert sentence.startswith("mm2 meets latency_mean<=0.03 up to ")
    assert sentence.endswith(f" messages per user per hour ({format_value(result.failed_at)} fail)")
    assert len(result.points) <= max_evaluations(
        result.low, result.high, tolerance * result.failed_at
    )


def test_bounds_that_already_decide_are_reported_without_bisecting() -> None:
    """3 servers at 300 msg/s is saturated: even the top of [1, 3] fails; 5 already meets."""
    scenario = mmc_scenario(300.0, 1, "mm_c")
    slo = "latency_mean<=0.013"
    too_small = capacity(
        scenario, "architecture.service.workers", slo, mode="min_size", low=1, high=3,
        seed=1, backend="serial",
    )  # fmt: skip
    assert (too_small.status, too_small.met, too_small.answer) == (Status.BOUND_FAILS, False, None)
    assert list(too_small.points["value"]) == [3]
    assert too_small.describe() == (
        "mm_c does not meet latency_mean<=0.013 even with 3 service workers, "
        "the upper end of the search"
    )

    enough = capacity(
        scenario, "architecture.service.workers", slo, mode="min_size", low=5, high=7,
        seed=1, backend="serial",
    )  # fmt: skip
    assert (enough.status, enough.met, enough.answer) == (Status.BOUND_MEETS, True, 5)
    assert list(enough.points["value"]) == [5, 7]
    assert "already with 5 service workers" in enough.describe()


# ---------------------------------------------------------- errors before any run


@pytest.mark.parametrize(
    ("dimension", "kwargs", "says"),
    [
        ("architecture.gatway.instances", {}, "did you mean 'architecture.gateway'"),
        ("architecture.service", {}, "is not a number"),
        ("architecture.service.workers", {"low": 1.5}, "holds integers"),
        ("architecture.service.workers", {"low": 8, "high": 2}, "low must be < high"),
        ("architecture.service.workers", {"low": 0}, "architecture.service.workers"),
        ("architecture.service.workers", {"mode": "max_users"}, "allowed: max_load, min_size"),
        ("architecture.service.workers", {"replications": 1}, "replications must be >= 2"),
        ("architecture.service.workers", {"backend": "gpu"}, "backend 'gpu'"),
        ("workload.messages_per_user_per_hour", {"tolerance": 0}, "tolerance"),
    ],
)
def test_bad_arguments_are_one_error_before_anything_runs(
    dimension: str, kwargs: dict[str, Any], says: str
) -> None:
    arguments: dict[str, Any] = {"mode": "min_size", "low": 1, "high": 8, **kwargs}
    with pytest.raises(ScenarioError) as error:
        capacity(mmc_scenario(300.0, 1, "mm_c"), dimension, "latency_mean<=0.013", **arguments)
    assert says in str(error.value)


def test_dimension_labels_read_as_words() -> None:
    assert dimension_label("architecture.gateway.instances") == "gateway instances"
    assert dimension_label("architecture.gateway.instances", 1) == "gateway instance"
    assert dimension_label("workload.users") == "users"
    assert dimension_label("workload.messages_per_user_per_hour") == "messages per user per hour"


# ----------------------------------------------------------------------- command


def test_the_command_prints_every_point_and_the_answer_in_one_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "mm_c.yaml"
    model.write_text(yaml.safe_dump(mmc_scenario(300.0, 1, "mm_c").model_dump(mode="json")))
    parser = argparse.ArgumentParser(prog="msgsim")
    add_capacity_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(
        [
            "capacity", str(model), "--dimension", "architecture.service.workers",
            "--mode", "min_size", "--low", "4", "--high", "5", "--slo", "latency_mean<=0.013",
            "--slo", "lost==0", "--backend", "serial", "--quiet", "--csv", str(tmp_path / "p.csv"),
        ]
    )  # fmt: skip
    assert args.fn(args) == 0
    lines = capsys.readouterr().out.splitlines()
    point_lines = [line for line in lines if line.startswith("  service workers")]
    assert len(point_lines) == 2
    assert point_lines[0].endswith("meets") and point_lines[1].endswith("fails")
    assert "mm_c meets latency_mean<=0.013 and lost==0 with 5 service workers (4 fail)" in lines
    assert (tmp_path / "p.csv").read_text().startswith("value,met,")

    bad = parser.parse_args(
        ["capacity", str(model), "--dimension", "architecture.service.workers",
         "--low", "1", "--high", "8", "--slo", "latency<=0.2"]
    )  # fmt: skip
    with pytest.raises(ScenarioError, match="unknown metric 'latency'"):
        bad.fn(bad)
