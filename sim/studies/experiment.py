"""Experiments: one run, replications, and comparisons of architectures.

Replication ``i`` of every scenario uses seed ``seed + i``: two architectures
compared at the same replication see the same users, conversations and
messages (common random numbers), so their differences come from the
architecture, not from the luck of the draw.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from sim.core.statistics import paired_difference, summarize
from sim.model.result import Result
from sim.model.run import simulate
from sim.scenario.loader import ScenarioError, load_scenario
from sim.scenario.schema import Scenario

ScenarioLike = Scenario | str | os.PathLike[str]
BACKENDS = ("serial", "processes")


def _as_scenario(scenario: ScenarioLike, overrides: Mapping[str, Any] | None = None) -> Scenario:
    if isinstance(scenario, Scenario):
        if overrides:
            from sim.scenario.loader import with_overrides

            return with_overrides(scenario, overrides)
        return scenario
    return load_scenario(scenario, overrides)


def run(
    scenario: ScenarioLike,
    seed: int | None = None,
    overrides: Mapping[str, Any] | None = None,
    progress: bool | None = None,
) -> Result:
    """Simulate one scenario once.

    Args:
        scenario: a :class:`Scenario`, a preset name or a path to a YAML file.
        seed: root seed; default ``scenario.run.seed``. Same scenario and seed,
            same result.
        overrides: dotted-path overrides, e.g. ``{"workload.users": 5000}``.
        progress: show a progress bar (default: only for runs longer than a few seconds).
    """
    return simulate(_as_scenario(scenario, overrides), seed, progress=progress)


def _run_job(job: tuple[Scenario, int]) -> Result:
    scenario, seed = job
    return simulate(scenario, seed, progress=False)


def _execute(
    jobs: list[tuple[Scenario, int]],
    backend: str,
    workers: int | None,
    progress: bool | None,
    desc: str,
) -> list[Result]:
    if backend not in BACKENDS:
        raise ScenarioError(f"backend {backend!r} is not known; allowed: {', '.join(BACKENDS)}")
    show = progress if progress is not None else len(jobs) > 1
    results: list[Result | None] = [None] * len(jobs)
    with tqdm(total=len(jobs), desc=desc, unit="run", disable=not show, leave=False) as bar:
        if backend == "serial" or len(jobs) == 1:
            for i, job in enumerate(jobs):
                results[i] = _run_job(job)
                bar.update()
        else:
            max_workers = workers or min(len(jobs), os.cpu_count() or 1)
            with ProcessPoolExecutor(max_workers=max_workers) as pool:
                futures = {pool.submit(_run_job, job): i for i, job in enumerate(jobs)}
                for future in as_completed(futures):
                    results[futures[future]] = future.result()
                    bar.update()
    return [r for r in results if r is not None]


def replicate(
    scenario: ScenarioLike,
    replications: int = 5,
    seed: int | None = None,
    overrides: Mapping[str, Any] | None = None,
    backend: str = "processes",
    workers: int | None = None,
    progress: bool | None = None,
) -> list[Result]:
    """Run ``replications`` independent runs with seeds ``seed, seed + 1, ...``."""
    if replications < 1:
        raise ScenarioError(f"replications must be >= 1, got {replications}")
    sc = _as_scenario(scenario, overrides)
    base = sc.run.seed if seed is None else seed
    jobs = [(sc, base + i) for i in range(replications)]
    return _execute(jobs, backend, workers, progress, sc.name)


def compare_runs(
    scenarios: Sequence[ScenarioLike],
    replications: int = 5,
    seed: int | None = None,
    overrides: Mapping[str, Any] | None = None,
    backend: str = "processes",
    workers: int | None = None,
    progress: bool | None = None,
) -> dict[str, list[Result]]:
    """Every scenario's replications, keyed by scenario name, all runs in one pool."""
    if replications < 1:
        raise ScenarioError(f"replications must be >= 1, got {replications}")
    loaded = [_as_scenario(s, overrides) for s in scenarios]
    names = [s.name for s in loaded]
    if len(set(names)) != len(names):
        raise ScenarioError(f"scenarios to compare must have distinct names, got {names}")
    jobs: list[tuple[Scenario, int]] = []
    for sc in loaded:
        base = sc.run.seed if seed is None else seed
        jobs.extend((sc, base + i) for i in range(replications))
    results = _execute(jobs, backend, workers, progress, "compare")
    grouped: dict[str, list[Result]] = {name: [] for name in names}
    for result in results:
        grouped[result.scenario_name].append(result)
    return grouped


def summaries(results: Mapping[str, Sequence[Result]]) -> pd.DataFrame:
    """All runs' summary rows stacked, with a ``replication`` column."""
    rows = []
    for runs in results.values():
        for i, res in enumerate(runs):
            row = res.summary.copy()
            row.insert(1, "replication", i)
            rows.append(row)
    return pd.concat(rows, ignore_index=True)


def compare(
    scenarios: Sequence[ScenarioLike],
    replications: int = 5,
    seed: int | None = None,
    overrides: Mapping[str, Any] | None = None,
    backend: str = "processes",
    workers: int | None = None,
    progress: bool | None = None,
) -> pd.DataFrame:
    """One row per scenario: each summary metric's mean and 95% confidence interval."""
    results = compare_runs(scenarios, replications, seed, overrides, backend, workers, progress)
    return summarize(summaries(results), by="scenario")


#: metrics whose paired differences ``differences`` reports by default
DIFFERENCE_METRICS: tuple[str, ...] = (
    "latency_p50",
    "latency_p99",
    "ack_p99",
    "sync_p99",
    "availability",
    "failed",
    "lost",
    "bytes_per_s",
    "cost",
)


def differences(
    results: Mapping[str, Sequence[Result]],
    baseline: str | None = None,
    metrics: Sequence[str] = DIFFERENCE_METRICS,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Paired differences of every scenario against a baseline, with their intervals.

    Replication ``i`` of each scenario ran with the same seed as replication ``i``
    of the baseline (common random numbers), so each difference is taken pair by
    pair: the interval is much narrower than comparing two independent means, and
    ``significant`` says whether it excludes zero.

    Args:
        results: replications per scenario, as :func:`compare_runs` returns them.
        baseline: the scenario the others are compared with (default: the first).
        metrics: summary columns to compare.
        confidence: coverage of each interval.

    Returns:
        One row per (scenario, metric): ``scenario, baseline, metric, difference,
        ci_low, ci_high, significant``; differences are ``scenario - baseline``.
    """
    names = list(results)
    if not names:
        raise ScenarioError("differences needs at least one scenario")
    base = names[0] if baseline is None else baseline
    if base not in results:
        raise ScenarioError(f"baseline {base!r} is not among the scenarios {names}")
    base_rows = pd.concat([r.summary for r in results[base]], ignore_index=True)
    base_seeds = base_rows["seed"].tolist()
    rows = []
    for name in names:
        if name == base:
            continue
        other = pd.concat([r.summary for r in results[name]], ignore_index=True)
        if other["seed"].tolist() != base_seeds:
            raise ScenarioError(
                f"{name!r} and {base!r} must share their seeds to be paired, got "
                f"{other['seed'].tolist()} and {base_seeds}"
            )
        for metric in metrics:
            ci = paired_difference(other[metric], base_rows[metric], confidence)
            rows.append(
                {
                    "scenario": name,
                    "baseline": base,
                    "metric": metric,
                    "difference": ci.mean,
                    "ci_low": ci.low,
                    "ci_high": ci.high,
                    "significant": ci.significant,
                }
            )
    return pd.DataFrame(rows)
