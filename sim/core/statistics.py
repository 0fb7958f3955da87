"""Statistics over replications: Student t intervals, summaries, paired comparisons.

One simulation run is one sample. Claims about an architecture therefore rest on
several replications and a confidence interval over them, never on a single seed.
Comparisons of two architectures pair replication *i* of one with replication *i*
of the other: both used the same workload streams (common random numbers), so the
per-pair differences vary far less than the runs themselves and the interval on
the difference is much tighter than two overlapping intervals would suggest.

Only numpy and pandas are used; the Student t quantile is computed here from the
regularized incomplete beta function so that the package needs no scipy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import pandas as pd

#: Columns of a stacked summary that identify a run rather than measure it.
_IDENTITY_COLUMNS: frozenset[str] = frozenset({"seed", "replication", "run_id"})

_BETA_EPS = 1e-16
_BETA_TINY = 1e-300
_QUANTILE_RTOL = 1e-13
#: Above this many degrees of freedom the continued fraction loses digits and the
#: normal-based expansions are exact to double precision instead.
_LARGE_DF = 1e7


def _stirling_correction(x: float) -> float:
    """``lgamma(x) - ((x - 0.5) ln x - x + 0.5 ln 2pi)``, accurate for ``x >= 10``."""
    inv = 1.0 / x
    inv2 = inv * inv
    return inv * (1.0 / 12.0 - inv2 * (1.0 / 360.0 - inv2 * (1.0 / 1260.0 - inv2 / 1680.0)))


def _log_beta(a: float, b: float) -> float:
    """``ln B(a, b)`` without the cancellation of three huge lgamma values.

    For large degrees of freedom ``lgamma(a) - lgamma(a + b)`` is a small
    difference of numbers near ``a ln a``; the Stirling form keeps it exact.
    """
    small, large = min(a, b), max(a, b)
    if large < 100.0:
        return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
    total = small + large
    return (
        math.lgamma(small)
        - (large - 0.5) * math.log1p(small / large)
        - small * math.log(total)
        + small
        + _stirling_correction(large)
        - _stirling_correction(total)
    )


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """Continued fraction of I_x(a, b), evaluated by the modified Lentz method.

    Converges quickly for ``x < (a + 1) / (a + b + 2)``; the number of terms grows
    like ``sqrt(max(a, b))``, so the cap scales with the parameters.
    """
    max_terms = 200 + int(20 * math.sqrt(max(a, b)))
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    d = _BETA_TINY if abs(d) < _BETA_TINY else d
    d = 1.0 / d
    h = d
    for m in range(1, max_terms + 1):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = _BETA_TINY if abs(d) < _BETA_TINY else d
        c = 1.0 + aa / c
        c = _BETA_TINY if abs(c) < _BETA_TINY else c
        d = 1.0 / d
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = _BETA_TINY if abs(d) < _BETA_TINY else d
        c = 1.0 + aa / c
        c = _BETA_TINY if abs(c) < _BETA_TINY else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _BETA_EPS:
            return h
    raise RuntimeError(f"incomplete beta continued fraction did not converge (a={a}, b={b}, x={x})")


def regularized_incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b) for ``a, b > 0``."""
    if a <= 0 or b <= 0:
        raise ValueError(f"a and b must be positive, got a={a}, b={b}")
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"x must lie in [0, 1], got {x}")
    if x == 0.0 or x == 1.0:
        return x
    return _incomplete_beta(a, b, x, 1.0 - x, math.log(x), math.log1p(-x))


def _incomplete_beta(a: float, b: float, x: float, y: float, log_x: float, log_y: float) -> float:
    """I_x(a, b) given ``y = 1 - x`` and both logarithms, each computed by the caller
    without cancellation (for Student t they follow exactly from ``t**2 / df``).

    Uses the symmetry ``I_x(a, b) = 1 - I_y(b, a)`` so that the continued fraction
    is always evaluated where it converges fast.
    """
    log_front = a * log_x + b * log_y - _log_beta(a, b)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_continued_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_continued_fraction(b, a, y) / b


def _check_df(df: float) -> None:
    if not df > 0:
        raise ValueError(f"degrees of freedom must be positive, got {df}")


def _t_upper_tail(t: float, df: float) -> float:
    """P(T > t) for ``t >= 0``, computed directly so small tails keep full precision."""
    if t == 0.0:
        return 0.5
    ratio = t * t / df
    if math.isinf(ratio):
        return 0.0
    log1p_ratio = math.log1p(ratio)
    x = 1.0 / (1.0 + ratio)
    y = ratio / (1.0 + ratio)
    return 0.5 * _incomplete_beta(df / 2.0, 0.5, x, y, -log1p_ratio, math.log(ratio) - log1p_ratio)


def student_t_pdf(t: float, df: float) -> float:
    """Density of Student's t distribution with ``df`` degrees of freedom."""
    _check_df(df)
    if math.isinf(df):
        return NormalDist().pdf(t)
    log_norm = -_log_beta(df / 2.0, 0.5) - 0.5 * math.log(df)
    return math.exp(log_norm - (df + 1.0) / 2.0 * math.log1p(t * t / df))


def student_t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t distribution with ``df`` (possibly fractional) degrees."""
    _check_df(df)
    if math.isinf(df):
        return NormalDist().cdf(t)
    if df > _LARGE_DF:  # Fisher's expansion; the next term is O(df**-2) < 1e-14.
        normal = NormalDist()
        return normal.cdf(t) - normal.pdf(t) * (t**3 + t) / (4.0 * df)
    if t >= 0:
        return 1.0 - _t_upper_tail(t, df)
    return _t_upper_tail(-t, df)


def _hill_quantile(p: float, df: float) -> float:
    """Cornish-Fisher expansion of the t quantile around the normal one (Hill 1970).

    The omitted terms are O(df**-5), far below double precision for large df.
    """
    z = NormalDist().inv_cdf(p)
    z2 = z * z
    g1 = z * (z2 + 1.0) / 4.0
    g2 = z * ((5.0 * z2 + 16.0) * z2 + 3.0) / 96.0
    g3 = z * (((3.0 * z2 + 19.0) * z2 + 17.0) * z2 - 15.0) / 384.0
    g4 = z * ((((79.0 * z2 + 776.0) * z2 + 1482.0) * z2 - 1920.0) * z2 - 945.0) / 92160.0
    return z + (g1 + (g2 + (g3 + g4 / df) / df) / df) / df


def student_t_quantile(p: float, df: float) -> float:
    """Inverse CDF of Student's t distribution, accurate to about 1e-10 relative.

    The quantile is found for the smaller tail ``q = min(p, 1 - p)`` by Newton steps
    on ``P(T > t) = q``, each kept inside a bracket that bisection shrinks whenever
    a Newton step would leave it; the result is then mirrored for ``p < 0.5``.

    Args:
        p: probability in the open interval (0, 1).
        df: degrees of freedom, > 0; ``math.inf`` gives the normal quantile.

    Returns:
        ``t`` with ``P(T <= t) = p``.
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must lie in the open interval (0, 1), got {p}")
    _check_df(df)
    if p == 0.5:
        return 0.0
    if math.isinf(df):
        return NormalDist().inv_cdf(p)
    if df > _LARGE_DF:
        return _hill_quantile(p, df)
    q = min(p, 1.0 - p)
    sign = 1.0 if p > 0.5 else -1.0
    if df == 1.0:  # Cauchy: closed form, also a cheap guard on the heaviest tail.
        return sign * math.tan(math.pi * (0.5 - q))

    low, high = 0.0, max(1.0, NormalDist().inv_cdf(1.0 - q))
    while _t_upper_tail(high, df) > q:
        low, high = high, 2.0 * high
    t = 0.5 * (low + high)
    for _ in range(300):
        excess = _t_upper_tail(t, df) - q  # decreasing in t
        if excess > 0:
            low = t
        else:
            high = t
        density = student_t_pdf(t, df)
        step_t = t + excess / density if density > 0 else math.nan
        next_t = step_t if low < step_t < high else 0.5 * (low + high)
        if abs(next_t - t) <= _QUANTILE_RTOL * max(1.0, abs(t)):
            return sign * next_t
        t = next_t
    return sign * t


@dataclass(frozen=True)
class ConfidenceInterval:
    """A Student t confidence interval for a mean.

    Attributes:
        mean: sample mean of the values used (NaN when none remained).
        half_width: half the interval width, in the values' unit; ``inf`` when
            fewer than two values leave the spread unknown.
        low: ``mean - half_width``.
        high: ``mean + half_width``.
        n: number of values used (NaN values excluded).
        dropped: number of NaN values that were excluded.
        confidence: coverage probability the interval was built for.
    """

    mean: float
    half_width: float
    low: float
    high: float
    n: int
    dropped: int = 0
    confidence: float = 0.95

    @property
    def significant(self) -> bool:
        """Whether the interval excludes 0, e.g. a paired difference is real."""
        return bool(self.low > 0.0 or self.high < 0.0)

    def __str__(self) -> str:
        return f"{self.mean:.6g} ± {self.half_width:.3g} (n={self.n}, {self.confidence:.0%})"


def mean_ci(
    values: Sequence[float] | np.ndarray | pd.Series, confidence: float = 0.95
) -> ConfidenceInterval:
    """Student t confidence interval for the mean of independent replications.

    Args:
        values: one value per replication; NaN values are dropped and counted in
            :attr:`ConfidenceInterval.dropped`.
        confidence: coverage probability in (0, 1).

    Returns:
        The interval. With one value the half-width is infinite (no spread is
        known); with none the mean is NaN as well.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    data = np.asarray(values, dtype=float).ravel()
    finite = data[~np.isnan(data)]
    n = int(finite.size)
    dropped = int(data.size - n)
    if n == 0:
        return ConfidenceInterval(math.nan, math.inf, -math.inf, math.inf, 0, dropped, confidence)
    mean = float(finite.mean())
    if n == 1:
        return ConfidenceInterval(mean, math.inf, -math.inf, math.inf, 1, dropped, confidence)
    std_error = float(finite.std(ddof=1)) / math.sqrt(n)
    half = student_t_quantile(0.5 + confidence / 2.0, n - 1) * std_error
    return ConfidenceInterval(mean, half, mean - half, mean + half, n, dropped, confidence)


def paired_difference(
    a: Sequence[float] | np.ndarray | pd.Series,
    b: Sequence[float] | np.ndarray | pd.Series,
    confidence: float = 0.95,
) -> ConfidenceInterval:
    """Confidence interval for the mean of ``a[i] - b[i]`` over paired replications.

    Replication ``i`` of both sides must share its seed (common random numbers);
    pairs where either side is NaN are dropped and counted.

    Args:
        a: metric per replication of the first configuration.
        b: the same metric per replication of the second, in the same seed order.
        confidence: coverage probability in (0, 1).

    Returns:
        Interval on the mean difference ``a - b``; ``significant`` tells whether it
        excludes 0.
    """
    left = np.asarray(a, dtype=float).ravel()
    right = np.asarray(b, dtype=float).ravel()
    if left.size != right.size:
        raise ValueError(
            f"paired samples need equal lengths, got {left.size} and {right.size} replications"
        )
    return mean_ci(left - right, confidence)


def _default_metrics(summaries: pd.DataFrame, by: str) -> list[str]:
    return [
        column
        for column in summaries.columns
        if column != by
        and column not in _IDENTITY_COLUMNS
        and pd.api.types.is_numeric_dtype(summaries[column])
        and not pd.api.types.is_bool_dtype(summaries[column])
    ]


def summarize(
    summaries: pd.DataFrame,
    by: str = "scenario",
    metrics: Sequence[str] | None = None,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Mean and confidence interval of each metric over the replications of each group.

    Args:
        summaries: stacked :attr:`sim.Result.summary` rows, one per replication.
        by: column naming the group (scenario, sweep point, ...).
        metrics: columns to summarize; by default every numeric column except
            ``by`` and run identifiers such as ``seed``.
        confidence: coverage probability of the intervals.

    Returns:
        One row per group, in order of first appearance: ``by``, ``replications``
        and, per metric, ``{metric}`` (mean), ``{metric}_ci_low``, ``{metric}_ci_high``.
        Units are those of the input columns.
    """
    if by not in summaries.columns:
        raise ValueError(f"summaries have no column {by!r}; columns: {list(summaries.columns)}")
    chosen = list(metrics) if metrics is not None else _default_metrics(summaries, by)
    missing = [metric for metric in chosen if metric not in summaries.columns]
    if missing:
        raise ValueError(f"summaries have no metric column(s) {missing}")
    rows: list[dict[str, object]] = []
    for group, frame in summaries.groupby(by, sort=False, dropna=False):
        row: dict[str, object] = {by: group, "replications": len(frame)}
        for metric in chosen:
            interval = mean_ci(pd.to_numeric(frame[metric], errors="coerce"), confidence)
            row[metric] = interval.mean
            row[f"{metric}_ci_low"] = interval.low
            row[f"{metric}_ci_high"] = interval.high
        rows.append(row)
    columns = [by, "replications"] + [
        name for metric in chosen for name in (metric, f"{metric}_ci_low", f"{metric}_ci_high")
    ]
    return pd.DataFrame(rows, columns=columns)


def mser5_truncation(series: Sequence[float] | np.ndarray | pd.Series) -> int:
    """Warm-up length by the MSER-5 rule, as a number of leading observations to drop.

    The series is averaged in batches of 5; the truncation point ``d`` minimises
    the squared standard error of the remaining batch means, ``S^2(d) / (k - d)``
    over ``k`` batches, searching only the first half (a minimum later than that
    means the run is too short to have a steady state).

    Args:
        series: an output series in time order, e.g. one timeseries column.

    Returns:
        Number of leading observations to discard (a multiple of 5).
    """
    data = np.asarray(series, dtype=float).ravel()
    batches = data[: data.size - data.size % 5].reshape(-1, 5).mean(axis=1)
    k = batches.size
    if k < 2:
        return 0
    tail = batches[::-1]
    counts = np.arange(1, k + 1, dtype=float)
    tail_mean = np.cumsum(tail) / counts
    tail_sq = np.cumsum(tail * tail) / counts
    kept = counts[::-1]
    variance = (tail_sq - tail_mean * tail_mean)[::-1]
    statistic = variance / kept
    limit = max(1, k // 2)
    return int(np.argmin(statistic[:limit])) * 5
