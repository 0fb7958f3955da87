"""Service-level objectives: conditions on summary metrics, judged over replications.

An SLO such as ``latency_p99<=0.2 and lost==0`` is a conjunction of conditions
(:class:`Condition`), each a bound on one column of :attr:`sim.Result.summary`.
It is judged over the replications of one scenario, conservatively: an
inequality holds when the whole confidence interval (95% by default) of the
metric's mean lies on the allowed side of the threshold (``latency_p99<=0.2`` needs the
interval's upper bound <= 0.2), and an ``==`` condition holds in every single
replication. A mean just under the threshold whose interval straddles it does
not count, so a verdict is one the evidence supports, not one the luck of a few
seeds allowed. The capacity search (:mod:`sim.studies.capacity`) judges every
value it tries this way; see ``docs/capacity.md``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pandas as pd

from sim.core.statistics import ConfidenceInterval, mean_ci
from sim.model.result import SUMMARY_COLUMNS
from sim.scenario.loader import ScenarioError

__all__ = ["SLO", "SLO_METRICS", "Condition", "ConditionCheck", "Operator"]

#: Summary columns an SLO may constrain: every measured column of :data:`SUMMARY_COLUMNS`.
SLO_METRICS: tuple[str, ...] = tuple(c for c in SUMMARY_COLUMNS if c not in ("scenario", "seed"))


class Operator(StrEnum):
    """Comparison of a metric with its threshold, written as in the SLO text."""

    LE = "<="
    LT = "<"
    GE = ">="
    GT = ">"
    EQ = "=="


_CONDITION = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|==|<|>)\s*([^\s<>=]+)\s*$")


def _format_threshold(value: float) -> str:
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


@dataclass(frozen=True)
class Condition:
    """A bound on one summary metric, such as ``latency_p99<=0.2`` (seconds).

    Attributes:
        metric: a column of :attr:`sim.Result.summary` (see :data:`SLO_METRICS`).
        operator: how the metric compares with the threshold.
        threshold: in the metric's unit: seconds for latencies, counts for
            ``lost`` or ``failed``, a fraction for ``availability``.
    """

    metric: str
    operator: Operator
    threshold: float

    @classmethod
    def parse(cls, text: str) -> Condition:
        """Read ``METRIC OP NUMBER``, e.g. ``"latency_p99<=0.2"`` or ``"lost == 0"``.

        Raises:
            ScenarioError: naming the text and what is allowed, if the form, the
                operator, the metric or the number is wrong.
        """
        allowed_ops = ", ".join(op.value for op in Operator)
        match = _CONDITION.match(text)
        if match is None:
            raise ScenarioError(
                f"SLO condition {text!r} is not METRIC OP NUMBER; operators: {allowed_ops} "
                f"(for example latency_p99<=0.2, lost==0, availability>=0.999)"
            )
        metric, operator, number = match.groups()
        if metric not in SLO_METRICS:
            raise ScenarioError(
                f"SLO condition {text!r}: unknown metric {metric!r}; allowed: "
                f"{', '.join(SLO_METRICS)}"
            )
        try:
            threshold = float(number)
        except ValueError:
            threshold = math.nan
        if not math.isfinite(threshold):
            raise ScenarioError(
                f"SLO condition {text!r}: threshold {number!r} is not a finite number"
            )
        return cls(metric, Operator(operator), threshold)

    def check(self, values: Sequence[float] | np.ndarray, confidence: float = 0.95) -> bool:
        """Whether the replications' values satisfy the condition, conservatively.

        An inequality needs the whole confidence interval of the mean on the
        allowed side; ``==`` needs every replication equal to the threshold. A
        missing value (NaN, e.g. no delivery was measured) fails: the evidence
        cannot vouch for it.
        """
        data = np.asarray(values, dtype=float).ravel()
        if data.size == 0 or bool(np.isnan(data).any()):
            return False
        if self.operator is Operator.EQ:
            return bool((data == self.threshold).all())
        interval = mean_ci(data, confidence)
        if self.operator is Operator.LE:
            return interval.high <= self.threshold
        if self.operator is Operator.LT:
            return interval.high < self.threshold
        if self.operator is Operator.GE:
            return interval.low >= self.threshold
        return interval.low > self.threshold

    def __str__(self) -> str:
        return f"{self.metric}{self.operator.value}{_format_threshold(self.threshold)}"


@dataclass(frozen=True)
class ConditionCheck:
    """One condition evaluated over the replications of one value.

    Attributes:
        condition: the condition checked.
        interval: confidence interval of the metric's mean, in the metric's unit.
        met: whether the condition holds in the conservative sense of the module.
    """

    condition: Condition
    interval: ConfidenceInterval
    met: bool


@dataclass(frozen=True)
class SLO:
    """A service-level objective: conditions that must all hold.

    Attributes:
        conditions: at least one, in the order given.
    """

    conditions: tuple[Condition, ...]

    def __post_init__(self) -> None:
        if not self.conditions:
            raise ScenarioError("an SLO needs at least one condition, e.g. latency_p99<=0.2")

    @classmethod
    def parse(cls, texts: str | Sequence[str]) -> SLO:
        """Parse conditions given one per string; a string may join several with
        commas or ``and`` (``"latency_p99<=0.2 and lost==0"``)."""
        items = [texts] if isinstance(texts, str) else list(texts)
        parts = [p for item in items for p in re.split(r",|\band\b", item) if p.strip()]
        return cls(tuple(Condition.parse(p) for p in parts))

    @property
    def metrics(self) -> tuple[str, ...]:
        """The metrics constrained, each once, in order of first mention."""
        return tuple(dict.fromkeys(c.metric for c in self.conditions))

    @property
    def needs_interval(self) -> bool:
        """Whether some condition is an inequality, judged by a confidence interval."""
        return any(c.operator is not Operator.EQ for c in self.conditions)

    def check(
        self, summaries: pd.DataFrame, confidence: float = 0.95
    ) -> tuple[ConditionCheck, ...]:
        """Every condition against stacked summary rows (one per replication)."""
        checks = []
        for condition in self.conditions:
            values = pd.to_numeric(summaries[condition.metric], errors="coerce").to_numpy(float)
            checks.append(
                ConditionCheck(
                    condition, mean_ci(values, confidence), condition.check(values, confidence)
                )
            )
        return tuple(checks)

    def __str__(self) -> str:
        return " and ".join(str(c) for c in self.conditions)
