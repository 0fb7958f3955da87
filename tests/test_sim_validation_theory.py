"""The simulator, configured as textbook queues, agrees with queueing theory.

Each case runs 10 independent replications; the test asserts that the
confidence interval of the simulated mean covers the exact value, at low and
high loads (rho up to 0.95). A test fails for a wrong model or a wrong formula,
not for the luck of one seed: the interval accounts for that. With a dozen
cases, 95% intervals would miss one case about half the time by chance alone,
so the test uses Bonferroni-corrected intervals (family-wise 95%); a separate
test shows that this is still sharp enough to catch a queue 25% off.
"""

from __future__ import annotations

import pandas as pd
import pytest

from sim.validation import queueing
from sim.validation.theory import Case, run_case, standard_cases, validate_theory

#: shorter runs than ``msgsim validate`` (which uses scale 1): wider but honest intervals
SCALE = 0.25
CASES = standard_cases(SCALE)
CONFIDENCE = 1 - 0.05 / len(CASES)


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    """Every case, 10 replications each (scenarios with two metrics run once)."""
    return validate_theory(replications=10, scale=SCALE)


@pytest.mark.parametrize("index", range(len(CASES)), ids=[f"{c.name}:{c.metric}" for c in CASES])
def test_simulated_mean_has_the_theoretical_value_inside_its_bonferroni_interval(
    table: pd.DataFrame, index: int
) -> None:
    """Each case's Bonferroni-corrected interval (``pass_low``/``pass_high``, at
    1 - 0.05 / cases each: family-wise 95%) covers the exact value."""
    row = table.iloc[index]
    assert row["case"] == CASES[index].name and row["metric"] == CASES[index].metric
    assert row["pass"] and row["pass_low"] <= row["theory"] <= row["pass_high"], row.to_dict()
    # the interval must also be informative: narrower than the value it brackets
    assert row["pass_high"] - row["pass_low"] < max(row["theory"], 1e-3)


def test_erlang_c_reference_value_of_the_issue() -> None:
    """M/M/c with c = 14 at 10 Erlangs waits with probability 0.1741."""
    assert queueing.mmc(1000.0, 100.0, 14).p_wait == pytest.approx(0.1741, abs=5e-5)
    case = next(c for c in CASES if c.name.startswith("M/M/14") and c.metric == "p_wait")
    assert case.truth == pytest.approx(0.1741, abs=5e-5)


def test_a_high_load_case_is_included() -> None:
    assert any("0.95" in c.name or "0.9" in c.name for c in CASES)


def test_a_theory_value_25pct_below_the_true_mean_is_caught() -> None:
    """The comparison can fail: when the value claimed is the true mean wait / 1.25
    (the queue waits 25% longer than claimed), the case's Bonferroni-corrected
    interval excludes it."""
    case = next(c for c in CASES if c.name == "M/M/1 rho=0.5" and c.metric == "mean_wait_s")
    slower = Case(case.name, case.metric, case.scenario, case.measure, case.truth / 1.25)
    result = run_case(slower, replications=10, confidence=CONFIDENCE)
    assert not (result.ci_low <= slower.truth <= result.ci_high)
