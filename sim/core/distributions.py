"""Probability distributions for service times, delays, sizes and counts.

A distribution is a frozen pydantic model, written in YAML as a mapping with a
``dist`` key (``{dist: lognormal, mean: 0.08, cv: 0.5}``) or as a bare number,
which means a constant. Every distribution knows its exact mean and variance,
so tests and ``sim.validation.queueing`` can compare samples with theory, and builds a
*sampler*: a zero-argument callable that draws from a numpy ``Generator`` in
blocks, because one numpy call per draw would dominate the simulator's cost.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

Sampler = Callable[[], float]

#: Draws fetched from numpy per refill of a sampler's buffer.
BLOCK_SIZE = 1024


class _Dist(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    @property
    def mean(self) -> float:
        raise NotImplementedError

    @property
    def variance(self) -> float:
        raise NotImplementedError

    @property
    def cv(self) -> float:
        """Coefficient of variation, standard deviation over mean."""
        m = self.mean
        return math.sqrt(self.variance) / m if m else 0.0

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """Draw ``size`` independent samples as a float array."""
        raise NotImplementedError

    def sampler(self, rng: np.random.Generator) -> Sampler:
        """A fast zero-argument sampler drawing from ``rng`` in blocks."""
        return BlockDraws(lambda k: self.draw(rng, k))

    @property
    def is_zero(self) -> bool:
        """True when every sample is exactly 0 (an instantaneous step)."""
        return False


class BlockDraws:
    """Values of a vectorised numpy draw, handed out one at a time.

    ``BlockDraws(lambda k: rng.random(k))()`` costs a list pop per value and one
    numpy call per :data:`BLOCK_SIZE` values. Every sampler of the simulator is one.
    """

    __slots__ = ("_buffer", "_draw")

    def __init__(self, draw: Callable[[int], np.ndarray]) -> None:
        self._draw = draw
        self._buffer: list[Any] = []

    def __call__(self) -> Any:
        buffer = self._buffer
        if not buffer:
            buffer = self._draw(BLOCK_SIZE).tolist()
            buffer.reverse()
            self._buffer = buffer
        return buffer.pop()


class Constant(_Dist):
    """Always ``value``: deterministic service times (M/D/1), fixed sizes."""

    dist: Literal["constant"] = "constant"
    value: float = Field(ge=0)

    @property
    def mean(self) -> float:
        return self.value

    @property
    def variance(self) -> float:
        return 0.0

    @property
    def is_zero(self) -> bool:
        return self.value == 0.0

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return np.full(size, self.value)

    def sampler(self, rng: np.random.Generator) -> Sampler:
        value = self.value
        return lambda: value


class Exponential(_Dist):
    """Memoryless, by its mean: Poisson inter-arrival times, M/M/c service."""

    dist: Literal["exponential"] = "exponential"
    mean_: float = Field(gt=0, alias="mean")

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    @property
    def mean(self) -> float:
        return self.mean_

    @property
    def variance(self) -> float:
        return self.mean_**2

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return rng.exponential(self.mean_, size)


class LogNormal(_Dist):
    """Lognormal by mean and coefficient of variation, the usual shape of latencies."""

    dist: Literal["lognormal"] = "lognormal"
    mean_: float = Field(gt=0, alias="mean")
    cv_: float = Field(gt=0, alias="cv")

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    @property
    def mean(self) -> float:
        return self.mean_

    @property
    def variance(self) -> float:
        return (self.mean_ * self.cv_) ** 2

    @property
    def sigma(self) -> float:
        """Standard deviation of the underlying normal."""
        return math.sqrt(math.log1p(self.cv_**2))

    @property
    def mu(self) -> float:
        """Mean of the underlying normal."""
        return math.log(self.mean_) - self.sigma**2 / 2

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return rng.lognormal(self.mu, self.sigma, size)


class Gamma(_Dist):
    """Gamma by mean and coefficient of variation (cv < 1: more regular than exponential)."""

    dist: Literal["gamma"] = "gamma"
    mean_: float = Field(gt=0, alias="mean")
    cv_: float = Field(gt=0, alias="cv")

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    @property
    def mean(self) -> float:
        return self.mean_

    @property
    def variance(self) -> float:
        return (self.mean_ * self.cv_) ** 2

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        shape = 1.0 / self.cv_**2
        return rng.gamma(shape, self.mean_ / shape, size)


class Pareto(_Dist):
    """Pareto (type I) with shape ``alpha`` and minimum ``scale``: heavy tails.

    Give either ``scale`` or ``mean`` (then ``alpha`` must exceed 1).
    The mean is infinite for alpha <= 1 and the variance for alpha <= 2.
    """

    dist: Literal["pareto"] = "pareto"
    alpha: float = Field(gt=0)
    scale: float | None = Field(default=None, gt=0)
    mean_: float | None = Field(default=None, gt=0, alias="mean")

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    @model_validator(mode="after")
    def _scale_or_mean(self) -> Pareto:
        if (self.scale is None) == (self.mean_ is None):
            raise ValueError("pareto needs exactly one of 'scale' or 'mean'")
        if self.mean_ is not None and self.alpha <= 1:
            raise ValueError(f"pareto with a 'mean' needs alpha > 1, got alpha={self.alpha}")
        return self

    @property
    def x_min(self) -> float:
        if self.scale is not None:
            return self.scale
        assert self.mean_ is not None
        return self.mean_ * (self.alpha - 1) / self.alpha

    @property
    def mean(self) -> float:
        if self.alpha <= 1:
            return math.inf
        return self.alpha * self.x_min / (self.alpha - 1)

    @property
    def variance(self) -> float:
        a = self.alpha
        if a <= 2:
            return math.inf
        return self.x_min**2 * a / ((a - 1) ** 2 * (a - 2))

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return self.x_min * (1.0 + rng.pareto(self.alpha, size))


class _Discrete(_Dist):
    """A distribution over finitely many values, sampled by inverse CDF."""

    def support(self) -> tuple[np.ndarray, np.ndarray]:
        """Values and their probabilities."""
        raise NotImplementedError

    @property
    def mean(self) -> float:
        values, probs = self.support()
        return float(np.dot(values, probs))

    @property
    def variance(self) -> float:
        values, probs = self.support()
        m = float(np.dot(values, probs))
        return float(np.dot((values - m) ** 2, probs))

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        values, probs = self.support()
        cdf = np.cumsum(probs)
        cdf[-1] = 1.0
        idx = np.searchsorted(cdf, rng.random(size), side="right")
        return values[np.minimum(idx, len(values) - 1)].astype(float)


class Zipf(_Discrete):
    """Bounded Zipf on ``min..max``: P(k) proportional to k**-a. Group sizes, contact counts."""

    dist: Literal["zipf"] = "zipf"
    a: float = Field(gt=0)
    max: int = Field(ge=1)
    min: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _bounds(self) -> Zipf:
        if self.min > self.max:
            raise ValueError(f"zipf needs min <= max, got min={self.min}, max={self.max}")
        return self

    def support(self) -> tuple[np.ndarray, np.ndarray]:
        k = np.arange(self.min, self.max + 1, dtype=float)
        w = k ** (-self.a)
        return k, w / w.sum()


class Empirical(_Discrete):
    """Observed values, optionally weighted: replay a measured distribution."""

    dist: Literal["empirical"] = "empirical"
    values: tuple[float, ...] = Field(min_length=1)
    weights: tuple[float, ...] | None = None

    @model_validator(mode="after")
    def _weights(self) -> Empirical:
        if self.weights is not None:
            if len(self.weights) != len(self.values):
                raise ValueError(
                    f"empirical weights must have one entry per value: "
                    f"{len(self.weights)} weights for {len(self.values)} values"
                )
            if any(w < 0 for w in self.weights) or sum(self.weights) <= 0:
                raise ValueError("empirical weights must be >= 0 with a positive sum")
        return self

    def support(self) -> tuple[np.ndarray, np.ndarray]:
        values = np.asarray(self.values, dtype=float)
        if self.weights is None:
            probs = np.full(len(values), 1.0 / len(values))
        else:
            w = np.asarray(self.weights, dtype=float)
            probs = w / w.sum()
        return values, probs

    @property
    def is_zero(self) -> bool:
        return all(v == 0 for v in self.values)


class Mixture(_Dist):
    """A weighted mixture of distributions, e.g. a cache hit/miss latency."""

    dist: Literal["mixture"] = "mixture"
    components: tuple[Distribution, ...] = Field(min_length=1)
    weights: tuple[float, ...]

    @model_validator(mode="after")
    def _weights(self) -> Mixture:
        if len(self.weights) != len(self.components):
            raise ValueError("mixture needs one weight per component")
        if any(w < 0 for w in self.weights) or sum(self.weights) <= 0:
            raise ValueError("mixture weights must be >= 0 with a positive sum")
        return self

    def _probs(self) -> np.ndarray:
        w = np.asarray(self.weights, dtype=float)
        return w / w.sum()

    @property
    def mean(self) -> float:
        return float(sum(p * c.mean for p, c in zip(self._probs(), self.components, strict=True)))

    @property
    def variance(self) -> float:
        m = self.mean
        second = sum(
            p * (c.variance + c.mean**2)
            for p, c in zip(self._probs(), self.components, strict=True)
        )
        return float(second - m**2)

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        which = rng.choice(len(self.components), size=size, p=self._probs())
        out = np.empty(size)
        for i, comp in enumerate(self.components):
            mask = which == i
            n = int(mask.sum())
            if n:
                out[mask] = comp.draw(rng, n)
        return out


def _number_is_constant(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return {"dist": "constant", "value": value}
    return value


Distribution = Annotated[
    Constant | Exponential | LogNormal | Gamma | Pareto | Zipf | Empirical | Mixture,
    Field(discriminator="dist"),
    BeforeValidator(_number_is_constant),
]
"""Any distribution; a bare number in YAML is a :class:`Constant`."""

Mixture.model_rebuild()

__all__ = [
    "BLOCK_SIZE",
    "BlockDraws",
    "Constant",
    "Distribution",
    "Empirical",
    "Exponential",
    "Gamma",
    "LogNormal",
    "Mixture",
    "Pareto",
    "Sampler",
    "Zipf",
    "exponential",
    "gamma",
    "lognormal",
]


def exponential(mean: float) -> Exponential:
    """An :class:`Exponential` by its mean (the YAML spelling, for Python callers)."""
    return Exponential.model_validate({"mean": mean})


def lognormal(mean: float, cv: float) -> LogNormal:
    """A :class:`LogNormal` by mean and coefficient of variation."""
    return LogNormal.model_validate({"mean": mean, "cv": cv})


def gamma(mean: float, cv: float) -> Gamma:
    """A :class:`Gamma` by mean and coefficient of variation."""
    return Gamma.model_validate({"mean": mean, "cv": cv})
