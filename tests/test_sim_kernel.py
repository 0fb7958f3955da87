"""Named random streams and distributions: reproducible, independent, with known moments."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import TypeAdapter

from sim.core.distributions import Distribution
from sim.core.kernel import Streams
from sim.core.statistics import mean_ci

ADAPTER: TypeAdapter[Distribution] = TypeAdapter(Distribution)

SPECS = [
    {"dist": "constant", "value": 0.25},
    {"dist": "exponential", "mean": 2.0},
    {"dist": "lognormal", "mean": 0.08, "cv": 0.5},
    {"dist": "gamma", "mean": 1.0, "cv": 0.5},
    {"dist": "pareto", "alpha": 3.5, "mean": 2.0},
    {"dist": "zipf", "a": 2.0, "max": 50},
    {"dist": "empirical", "values": [1, 2, 10], "weights": [3, 1, 1]},
    {
        "dist": "mixture",
        "components": [0.01, {"dist": "exponential", "mean": 0.1}],
        "weights": [9, 1],
    },
]


def test_a_stream_is_a_function_of_seed_and_name_only() -> None:
    a = Streams(7).generator("workload.sessions").random(5)
    other = Streams(7)
    other.generator("something.else").random(100)  # another component drawing first
    b = other.generator("workload.sessions").random(5)
    assert np.array_equal(a, b)


def test_different_names_and_seeds_give_different_streams() -> None:
    s = Streams(7)
    assert not np.array_equal(s.generator("a").random(5), s.generator("b").random(5))
    assert not np.array_equal(
        Streams(8).generator("a").random(5), Streams(7).generator("a").random(5)
    )


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: str(s["dist"]))
def test_sample_means_agree_with_the_distributions_mean(spec: dict[str, object]) -> None:
    """Mean of 20 batches of 5,000 draws: the 99.9% CI over batches covers the exact mean."""
    dist = ADAPTER.validate_python(spec)
    rng = np.random.default_rng(2024)
    batch_means = [dist.draw(rng, 5000).mean() for _ in range(20)]
    ci = mean_ci(batch_means, confidence=0.999)
    if dist.variance == 0:
        assert ci.mean == pytest.approx(dist.mean)
    else:
        assert ci.low <= dist.mean <= ci.high


@pytest.mark.parametrize("spec", SPECS[1:], ids=lambda s: str(s["dist"]))
def test_sample_variances_agree_with_the_distributions_variance(spec: dict[str, object]) -> None:
    dist = ADAPTER.validate_python(spec)
    rng = np.random.default_rng(99)
    batch_vars = [dist.draw(rng, 20000).var() for _ in range(20)]
    ci = mean_ci(batch_vars, confidence=0.999)
    assert ci.low <= dist.variance <= ci.high


def test_the_block_sampler_draws_the_same_values_as_vectorised_draws() -> None:
    dist = ADAPTER.validate_python({"dist": "lognormal", "mean": 1.0, "cv": 1.0})
    sampler = dist.sampler(np.random.default_rng(5))
    one_by_one = sorted(sampler() for _ in range(1024))
    block = sorted(dist.draw(np.random.default_rng(5), 1024).tolist())
    assert one_by_one == block


def test_lognormal_parameters_follow_from_mean_and_cv() -> None:
    dist = ADAPTER.validate_python({"dist": "lognormal", "mean": 3.0, "cv": 2.0})
    assert math.exp(dist.mu + dist.sigma**2 / 2) == pytest.approx(3.0)  # type: ignore[union-attr]


def test_heavy_tails_report_infinite_moments() -> None:
    dist = ADAPTER.validate_python({"dist": "pareto", "alpha": 1.5, "scale": 1.0})
    assert math.isfinite(dist.mean) and dist.variance == math.inf


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"dist": "exponential", "mean": -1}, "mean"),
        ({"dist": "zipf", "a": 2, "min": 5, "max": 3}, "min"),
        ({"dist": "pareto", "alpha": 0.5, "mean": 2}, "alpha"),
        ({"dist": "empirical", "values": [1, 2], "weights": [1]}, "weights"),
    ],
)
def test_impossible_parameters_are_rejected(spec: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        ADAPTER.validate_python(spec)
