"""Tests of sim.core.statistics: t quantiles, intervals, summaries, paired differences."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from sim.core.statistics import (
    ConfidenceInterval,
    mean_ci,
    mser5_truncation,
    paired_difference,
    regularized_incomplete_beta,
    student_t_cdf,
    student_t_quantile,
    summarize,
)

# Published two-sided 95% / 99% / 90% critical values (e.g. NIST/SEMATECH table).
T_TABLE = [
    (0.975, 1, 12.7062047),
    (0.975, 2, 4.3026527),
    (0.975, 4, 2.7764451),
    (0.975, 10, 2.2281389),
    (0.975, 29, 2.0452296),
    (0.975, 1e6, 1.959966),
    (0.995, 5, 4.0321430),
    (0.95, 3, 2.3533634),
    (0.9995, 3, 12.9239786),
]


@pytest.mark.parametrize(("p", "df", "expected"), T_TABLE)
def test_t_quantile_matches_published_tables(p: float, df: float, expected: float) -> None:
    assert student_t_quantile(p, df) == pytest.approx(expected, abs=5e-7)


def test_t_quantile_matches_closed_forms_for_one_and_two_degrees() -> None:
    """df=1 is Cauchy, df=2 has t = (2p-1)/sqrt(2p(1-p)); both are exact references."""
    for p in (0.51, 0.6, 0.9, 0.99, 0.999999):
        assert student_t_quantile(p, 1) == pytest.approx(math.tan(math.pi * (p - 0.5)), rel=1e-10)
        expected = (2 * p - 1) / math.sqrt(2 * p * (1 - p))
        assert student_t_quantile(p, 2) == pytest.approx(expected, rel=1e-9)


def test_t_quantile_inverts_the_cdf_and_is_antisymmetric() -> None:
    for df in (0.5, 1.5, 3, 7.25, 40, 1e4, 1e8):
        for p in (2**-30, 0.01, 0.3, 0.5, 0.8, 0.975, 1 - 2**-30):  # 1 - p exact
            t = student_t_quantile(p, df)
            assert student_t_cdf(t, df) == pytest.approx(p, rel=1e-9, abs=1e-15)
            assert student_t_quantile(1 - p, df) == pytest.approx(-t, rel=1e-9, abs=1e-12)


def test_t_quantile_tends_to_normal_for_infinite_degrees() -> None:
    assert student_t_quantile(0.975, math.inf) == pytest.approx(1.959963985, abs=1e-9)
    assert student_t_quantile(0.975, 1e12) == pytest.approx(1.959963985, abs=1e-9)


@pytest.mark.parametrize(("p", "df"), [(0.0, 3), (1.0, 3), (0.5, 0), (0.9, -1)])
def test_t_quantile_rejects_impossible_arguments(p: float, df: float) -> None:
    with pytest.raises(ValueError):
        student_t_quantile(p, df)


def test_incomplete_beta_known_values_and_symmetry() -> None:
    """I_x(1, 1) = x, I_x(a, 1) = x**a, and I_x(a, b) = 1 - I_{1-x}(b, a)."""
    assert regularized_incomplete_beta(1, 1, 0.3) == pytest.approx(0.3, rel=1e-13)
    assert regularized_incomplete_beta(2.5, 1, 0.7) == pytest.approx(0.7**2.5, rel=1e-12)
    left = regularized_incomplete_beta(3.2, 7.5, 0.41)
    assert left == pytest.approx(1 - regularized_incomplete_beta(7.5, 3.2, 0.59), rel=1e-12)


def test_mean_ci_of_known_sample() -> None:
    interval = mean_ci([1.0, 2.0, 3.0, 4.0, 5.0])
    half = 2.7764451 * math.sqrt(2.5) / math.sqrt(5)
    assert interval.mean == pytest.approx(3.0)
    assert interval.half_width == pytest.approx(half, rel=1e-7)
    assert (interval.low, interval.high) == pytest.approx((3.0 - half, 3.0 + half), rel=1e-7)
    assert interval.n == 5


def test_mean_ci_drops_and_counts_nan() -> None:
    interval = mean_ci([2.0, math.nan, 4.0, math.nan])
    assert interval.n == 2
    assert interval.dropped == 2
    assert interval.mean == pytest.approx(3.0)
    assert math.isfinite(interval.half_width)


def test_mean_ci_of_one_value_has_infinite_half_width_and_no_nan() -> None:
    interval = mean_ci([7.5])
    assert interval.mean == 7.5
    assert interval.half_width == math.inf
    assert (interval.low, interval.high) == (-math.inf, math.inf)
    assert not interval.significant


def test_mean_ci_of_constant_values_is_a_point() -> None:
    interval = mean_ci([4.0, 4.0, 4.0])
    assert interval.half_width == 0.0
    assert interval.significant


def test_mean_ci_covers_the_true_mean_at_the_nominal_rate() -> None:
    """2,000 sets of n=5 normal values: the 95% interval covers mu 93.5-96.5% of the time."""
    rng = np.random.default_rng(20240501)
    mu = 3.0
    samples = rng.normal(mu, 2.0, size=(2000, 5))
    intervals = [mean_ci(row) for row in samples]
    covered = sum(interval.low <= mu <= interval.high for interval in intervals)
    assert 0.935 <= covered / 2000 <= 0.965


def test_mean_ci_at_90_percent_is_narrower_than_at_99() -> None:
    values = np.random.default_rng(5).normal(size=8)
    assert mean_ci(values, 0.90).half_width < mean_ci(values, 0.99).half_width


def test_paired_difference_removes_common_noise() -> None:
    """With common random numbers a small real effect is significant though the raw CIs overlap."""
    rng = np.random.default_rng(11)
    shared = rng.normal(100.0, 20.0, size=6)
    a = shared + 1.0 + rng.normal(0, 0.1, size=6)
    b = shared
    diff = paired_difference(a, b)
    assert diff.mean == pytest.approx(1.0, abs=0.2)
    assert diff.significant
    ci_a, ci_b = mean_ci(a), mean_ci(b)
    assert ci_a.low < ci_b.high  # the unpaired intervals overlap


def test_paired_difference_of_identical_noise_is_not_significant() -> None:
    rng = np.random.default_rng(3)
    a = rng.normal(0.0, 1.0, size=10)
    b = rng.normal(0.0, 1.0, size=10)
    interval = paired_difference(a, b)
    assert isinstance(interval, ConfidenceInterval)
    assert interval.low < 0 < interval.high
    assert not interval.significant


def test_paired_difference_needs_equal_lengths() -> None:
    with pytest.raises(ValueError, match="equal lengths"):
        paired_difference([1.0, 2.0], [1.0])


def _stacked_summaries() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    rows = []
    for scenario, level in (("websocket", 0.1), ("polling", 0.5)):
        for seed in range(1, 5):
            rows.append(
                {
                    "scenario": scenario,
                    "seed": seed,
                    "latency_p99": level + rng.normal(0, 0.01),
                    "sent": 1000 + seed,
                    "sync_p99": math.nan if seed == 1 else level * 3,
                }
            )
    return pd.DataFrame(rows)


def test_summarize_has_mean_and_ci_columns_per_metric_in_first_seen_order() -> None:
    stacked = _stacked_summaries()
    table = summarize(stacked)
    assert list(table["scenario"]) == ["websocket", "polling"]
    assert list(table.columns) == [
        "scenario",
        "replications",
        "latency_p99",
        "latency_p99_ci_low",
        "latency_p99_ci_high",
        "sent",
        "sent_ci_low",
        "sent_ci_high",
        "sync_p99",
        "sync_p99_ci_low",
        "sync_p99_ci_high",
    ]
    assert list(table["replications"]) == [4, 4]


def test_summarize_values_equal_mean_ci_of_each_group() -> None:
    stacked = _stacked_summaries()
    table = summarize(stacked, metrics=["latency_p99", "sync_p99"], confidence=0.9)
    for _, row in table.iterrows():
        group = stacked[stacked["scenario"] == row["scenario"]]
        expected = mean_ci(group["latency_p99"], 0.9)
        assert row["latency_p99"] == pytest.approx(expected.mean)
        assert row["latency_p99_ci_low"] == pytest.approx(expected.low)
        assert row["latency_p99_ci_high"] == pytest.approx(expected.high)
        assert row["sync_p99"] == pytest.approx(mean_ci(group["sync_p99"]).mean)  # NaN dropped
    assert "sent" not in table.columns


def test_summarize_names_a_missing_column() -> None:
    with pytest.raises(ValueError, match="nope"):
        summarize(_stacked_summaries(), metrics=["nope"])
    with pytest.raises(ValueError, match="architecture"):
        summarize(_stacked_summaries(), by="architecture")


def test_mser5_finds_an_initial_transient() -> None:
    """A linear warm-up of 100 observations before stationary noise is detected and cut."""
    rng = np.random.default_rng(17)
    series = np.concatenate([np.linspace(20.0, 0.0, 100), rng.normal(0.0, 1.0, 900)])
    cut = mser5_truncation(series)
    assert 60 <= cut <= 140
    assert cut % 5 == 0
    assert mser5_truncation(rng.normal(0.0, 1.0, 1000)) < 250
