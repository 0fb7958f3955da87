"""Capacity search: the largest load or the smallest size that meets a service-level objective.

An architect's question, "how many gateway instances for a million users at p99
< 200 ms?", becomes a bisection over one numeric scenario field (the
*dimension*) in which every probed value is a replicated experiment. A value
*meets* the :class:`~sim.studies.slo.SLO` when every condition holds over its
replications, judged conservatively by confidence intervals
(:mod:`sim.studies.slo`), so the answer is one the evidence supports, not one
the luck of three seeds allowed.

Every value uses the same seeds ``seed, seed + 1, ...`` (common random numbers),
so two neighbouring values see the same users and messages and their difference
comes from the dimension alone. The search assumes that meeting the SLO is
monotone in the dimension (more load never helps, more instances never hurt);
see ``docs/capacity.md``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import pandas as pd

from sim.scenario.loader import ScenarioError, apply_overrides, load_scenario, with_overrides
from sim.scenario.schema import Scenario
from sim.studies.experiment import BACKENDS, replicate
from sim.studies.slo import SLO, ConditionCheck

Number = int | float

#: Upper bound on bisection steps, a guard for float dimensions with a tiny tolerance.
_MAX_STEPS = 200


class Mode(StrEnum):
    """What is searched: the largest load that meets the SLO, or the smallest size."""

    MAX_LOAD = "max_load"
    MIN_SIZE = "min_size"


class Status(StrEnum):
    """How a search ended.

    ``FOUND``: the answer meets the SLO and a neighbouring evaluated value fails.
    ``BOUND_MEETS``: the far bound already meets (``high`` for ``max_load``, ``low``
    for ``min_size``), so the true limit may lie beyond the searched range.
    ``BOUND_FAILS``: even the easiest bound fails, so no value in range meets.
    """

    FOUND = "found"
    BOUND_MEETS = "bound_meets"
    BOUND_FAILS = "bound_fails"


@dataclass(frozen=True)
class CapacityPoint:
    """One evaluated value of the dimension.

    Attributes:
        order: 0 for the first value evaluated, then 1, 2, ...
        value: the dimension's value.
        met: whether every condition holds.
        checks: each condition with the interval of its metric.
        replications: runs behind the intervals.
    """

    order: int
    value: Number
    met: bool
    checks: tuple[ConditionCheck, ...]
    replications: int


@dataclass(frozen=True)
class Bracket:
    """Where a bisection ended: the answer and the nearest evaluated value that fails."""

    status: Status
    answer: Number | None
    failed_at: Number | None


def bisect(
    low: Number,
    high: Number,
    meets: Callable[[Number], bool],
    *,
    mode: Mode,
    integer: bool,
    tolerance: float,
) -> Bracket:
    """Bisection for the boundary of a monotone predicate on ``[low, high]``.

    For ``MAX_LOAD`` values up to the boundary meet; for ``MIN_SIZE`` values from
    the boundary up meet. The bound that should meet is evaluated first and a
    failure there ends the search; then the other bound, whose success ends it
    too. Otherwise the bracket ``(meets, fails)`` is halved until it is at most
    ``tolerance`` times its larger end wide (never below 1 for integers), so
    about ``2 + log2((high - low) / resolution)`` values are evaluated.

    Args:
        low: smallest value searched.
        high: largest value searched, > ``low``.
        meets: evaluates one value; called once per value, never twice.
        mode: which side of the boundary meets.
        integer: whether only integers are valid values.
        tolerance: relative width of the final bracket, >= 0 (> 0 for floats).

    Returns:
        The answer (the best evaluated value that meets) and the nearest value
        that failed beyond it.
    """
    good, bad = (low, high) if mode is Mode.MAX_LOAD else (high, low)
    if not meets(good):
        return Bracket(Status.BOUND_FAILS, None, good)
    if meets(bad):
        return Bracket(Status.BOUND_MEETS, bad, None)
    for _ in range(_MAX_STEPS):
        gap = abs(bad - good)
        if gap <= tolerance * max(abs(good), abs(bad)) or (integer and gap <= 1):
            break
        a, b = min(good, bad), max(good, bad)
        mid: Number = (a + b) // 2 if integer else (a + b) / 2
        if mid in (a, b):  # float resolution exhausted
            break
        if meets(mid):
            good = mid
        else:
            bad = mid
    return Bracket(Status.FOUND, good, bad)


@dataclass(frozen=True)
class CapacityResult:
    """The outcome of a capacity search.

    Attributes:
        scenario_name: the scenario searched.
        dimension: dotted path of the field varied, e.g. ``workload.users``.
        mode: largest load or smallest size.
        slo: the objective.
        low: lower end of the searched range.
        high: upper end of the searched range.
        status: found, or stopped at a bound (see :class:`Status`).
        answer: the largest load (``max_load``) or smallest size (``min_size``)
            that meets the SLO; None when no value in range meets it.
        failed_at: the evaluated value nearest to the answer, beyond it, that
            fails (for ``BOUND_FAILS`` the bound that failed); None if none did.
        points: one row per evaluated value, sorted by value, for a capacity
            curve: ``value, met, order, replications`` and, per SLO metric,
            ``{metric}`` (mean), ``{metric}_ci_low``, ``{metric}_ci_high``.
        runs: every run's summary row with ``value`` and ``replication`` columns.
    """

    scenario_name: str
    dimension: str
    mode: Mode
    slo: SLO
    low: Number
    high: Number
    status: Status
    answer: Number | None
    failed_at: Number | None
    points: pd.DataFrame
    runs: pd.DataFrame

    @property
    def met(self) -> bool:
        """Whether some value in the range meets the SLO."""
        return self.status is not Status.BOUND_FAILS

    def describe(self) -> str:
        """The answer in one sentence, e.g. "websocket_microservices meets
        latency_p99<=0.2 and lost==0 with 6 gateway instances (5 fail)"."""

        def amount(value: Number | None) -> str:
            assert value is not None
            return f"{format_value(value)} {dimension_label(self.dimension, value)}"

        name, slo = self.scenario_name, self.slo
        if self.status is Status.BOUND_FAILS:
            where = "with" if self.mode is Mode.MIN_SIZE else "at"
            end = "upper" if self.mode is Mode.MIN_SIZE else "lower"
            return (
                f"{name} does not meet {slo} even {where} {amount(self.failed_at)}, "
                f"the {end} end of the search"
            )
        if self.status is Status.BOUND_MEETS:
            if self.mode is Mode.MIN_SIZE:
                where = f"already with {amount(self.answer)}, the lower end of the search"
            else:
                where = f"even at {amount(self.answer)}, the upper end of the search"
            return f"{name} meets {slo} {where}"
        failed = format_value(self.failed_at) if self.failed_at is not None else "-"
        if self.mode is Mode.MIN_SIZE:
            return f"{name} meets {slo} with {amount(self.answer)} ({failed} fail)"
        return f"{name} meets {slo} up to {amount(self.answer)} ({failed} fail)"


def format_value(value: Number) -> str:
    """A dimension value for people: ``1,000,000`` or ``34.56``."""
    if isinstance(value, int) or (abs(value) >= 1000 and float(value).is_integer()):
        return f"{int(value):,}"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def dimension_label(dimension: str, value: Number = 2) -> str:
    """Words for a dotted path: ``architecture.gateway.instances`` -> ``gateway instances``
    (singular for a value of 1)."""
    parts = dimension.split(".")
    if len(parts) > 1 and parts[0] in ("architecture", "workload", "run"):
        parts = parts[1:]
    words = " ".join(parts).replace("_", " ")
    if value == 1 and words.endswith("s") and len(words.rsplit(" ", 1)[-1]) > 2:
        words = words[:-1]
    return words


def _numeric_field(scenario: Scenario, dimension: str) -> bool:
    """Check that ``dimension`` is a numeric field; True when it holds integers."""
    apply_overrides({}, {dimension: 0})  # unknown paths: one message with a suggestion
    node: Any = scenario.model_dump(mode="json")
    for part in dimension.split("."):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            node = None
            break
    if isinstance(node, bool) or not isinstance(node, int | float):
        raise ScenarioError(
            f"dimension {dimension!r} is not a number (its value is {node!r}); give a numeric "
            f"field such as workload.users or architecture.gateway.instances"
        )
    return isinstance(node, int)


def _points_frame(points: list[CapacityPoint], slo: SLO) -> pd.DataFrame:
    rows = []
    for point in points:
        row: dict[str, Any] = {
            "value": point.value,
            "met": point.met,
            "order": point.order,
            "replications": point.replications,
        }
        for check in point.checks:
            metric = check.condition.metric
            row[metric] = check.interval.mean
            row[f"{metric}_ci_low"] = check.interval.low
            row[f"{metric}_ci_high"] = check.interval.high
        rows.append(row)
    columns = ["value", "met", "order", "replications"] + [
        name for m in slo.metrics for name in (m, f"{m}_ci_low", f"{m}_ci_high")
    ]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values("value", kind="stable").reset_index(drop=True)


def capacity(
    scenario: Scenario | str | os.PathLike[str],
    dimension: str,
    slo: SLO | str | Sequence[str],
    *,
    mode: Mode | str = Mode.MAX_LOAD,
    low: Number,
    high: Number,
    replications: int = 3,
    seed: int | None = None,
    backend: str = "processes",
    tolerance: float = 0.01,
    overrides: Mapping[str, Any] | None = None,
    progress: Callable[[CapacityPoint], None] | None = None,
    confidence: float = 0.95,
    show_runs: bool = False,
) -> CapacityResult:
    """Find the largest load or the smallest size in ``[low, high]`` that meets an SLO.

    Args:
        scenario: a :class:`Scenario`, a preset name or a path to a YAML file.
        dimension: dotted path of the numeric field to vary, e.g. ``workload.users``
            (``max_load``) or ``architecture.gateway.instances`` (``min_size``).
        slo: an :class:`SLO` or its conditions as text, e.g.
            ``["latency_p99<=0.2", "lost==0"]``.
        mode: ``max_load`` (meeting holds below a limit) or ``min_size`` (above one).
        low: smallest value searched, in the field's unit.
        high: largest value searched, > ``low``.
        replications: runs per value, >= 2 when a condition is an inequality
            (one run has no confidence interval).
        seed: root seed; default ``run.seed``. Every value uses the same seeds.
        backend: ``serial`` or ``processes`` (the replications of one value in parallel).
        tolerance: relative resolution: the search stops when the bracket between
            a meeting and a failing value is at most this fraction of its larger
            end. Integer fields never go below a bracket of 1, so instance counts
            below 100 are found exactly at the default 0.01; pass 0 for exact
            integers at any size.
        overrides: dotted-path overrides applied to the scenario first.
        progress: called with each evaluated point as soon as it is known.
        confidence: coverage of the intervals that decide inequality conditions.
        show_runs: show a progress bar over the runs of each value.

    Returns:
        The answer with every evaluated point.

    Raises:
        ScenarioError: a bad SLO, dimension, bound, mode or backend, before any run.
    """
    conditions = slo if isinstance(slo, SLO) else SLO.parse(slo)
    try:
        search_mode = Mode(mode)
    except ValueError:
        allowed = ", ".join(m.value for m in Mode)
        raise ScenarioError(f"mode {mode!r} is not known; allowed: {allowed}") from None
    if replications < 1:
        raise ScenarioError(f"replications must be >= 1, got {replications}")
    if conditions.needs_interval and replications < 2:
        raise ScenarioError(
            f"replications must be >= 2 to put a confidence interval on {conditions}, "
            f"got {replications}"
        )
    if backend not in BACKENDS:
        raise ScenarioError(f"backend {backend!r} is not known; allowed: {', '.join(BACKENDS)}")
    if isinstance(scenario, Scenario):
        base = with_overrides(scenario, overrides) if overrides else scenario
    else:
        base = load_scenario(scenario, overrides)
    integer = _numeric_field(base, dimension)
    if not 0 <= tolerance < 1 or (not integer and tolerance == 0):
        allowed = "[0, 1)" if integer else "(0, 1) for a non-integer field"
        raise ScenarioError(f"tolerance must be in {allowed}, got {tolerance}")
    if integer:
        if not (float(low).is_integer() and float(high).is_integer()):
            raise ScenarioError(f"{dimension!r} holds integers; got low={low!r}, high={high!r}")
        low, high = int(low), int(high)
    else:
        low, high = float(low), float(high)
    if not low < high:
        raise ScenarioError(f"low must be < high, got low={low!r}, high={high!r}")
    for bound in (low, high):  # field constraints checked before any run
        with_overrides(base, {dimension: bound})
    root_seed = base.run.seed if seed is None else seed

    points: list[CapacityPoint] = []
    summaries: list[pd.DataFrame] = []

    def meets(value: Number) -> bool:
        scenario_at = with_overrides(base, {dimension: value})
        results = replicate(
            scenario_at, replications, root_seed, backend=backend, progress=show_runs
        )
        rows = pd.concat([r.summary for r in results], ignore_index=True)
        checks = conditions.check(rows, confidence)
        point = CapacityPoint(len(points), value, all(c.met for c in checks), checks, replications)
        points.append(point)
        rows.insert(0, "value", value)
        rows.insert(1, "replication", range(len(rows)))
        summaries.append(rows)
        if progress is not None:
            progress(point)
        return point.met

    bracket = bisect(low, high, meets, mode=search_mode, integer=integer, tolerance=tolerance)
    return CapacityResult(
        scenario_name=base.name,
        dimension=dimension,
        mode=search_mode,
        slo=conditions,
        low=low,
        high=high,
        status=bracket.status,
        answer=bracket.answer,
        failed_at=bracket.failed_at,
        points=_points_frame(points, conditions),
        runs=pd.concat(summaries, ignore_index=True),
    )


__all__ = [
    "Bracket",
    "CapacityPoint",
    "CapacityResult",
    "Mode",
    "Status",
    "bisect",
    "capacity",
    "dimension_label",
    "format_value",
]
