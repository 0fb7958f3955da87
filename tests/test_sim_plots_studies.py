"""Tests of sim.output.study_plots on synthetic capacity results and sweep frames."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection, PolyCollection
from matplotlib.container import ErrorbarContainer
from matplotlib.figure import Figure

from sim.core.statistics import mean_ci
from sim.output.plots import metric_label
from sim.output.study_plots import (
    capacity_curve,
    compact_number,
    knee_index,
    latency_vs_throughput,
    sweep_heatmap,
)
from sim.studies.capacity import CapacityResult, Mode, Status
from sim.studies.slo import SLO

THRESHOLD_S = 0.2


def _floats(values: object) -> np.ndarray:
    """Matplotlib's loosely typed data as a float array."""
    return np.asarray(values, dtype=float)


def _capacity_result(
    seed: int, values: list[float], *, slo: str = "latency_p99<=0.2", answer: float | None = None
) -> CapacityResult:
    """A max-load search whose latency grows with load, built as sim/studies/capacity.py builds it:
    three replications per value, the interval from mean_ci, ``met`` from the SLO."""
    rng = np.random.default_rng(seed)
    objective = SLO.parse(slo)
    rows = []
    for order, value in enumerate(values):
        replications = 0.05 + 0.25 * (value / max(values)) ** 2 + rng.normal(0, 0.005, 3)
        interval = mean_ci(replications)
        row = {
            "value": value,
            "met": objective.conditions[0].check(replications),
            "order": order,
            "replications": 3,
        }
        for metric in objective.metrics:
            row[metric] = interval.mean
            row[f"{metric}_ci_low"] = interval.low
            row[f"{metric}_ci_high"] = interval.high
        rows.append(row)
    # evaluated out of order, as a bisection does; the plot must sort them
    points = pd.DataFrame(rows).sample(frac=1.0, random_state=seed).reset_index(drop=True)
    met_values = [r["value"] for r in rows if r["met"]]
    return CapacityResult(
        scenario_name="synthetic",
        dimension="workload.users",
        mode=Mode.MAX_LOAD,
        slo=objective,
        low=min(values),
        high=max(values),
        status=Status.FOUND,
        answer=answer if answer is not None else max(met_values),
        failed_at=None,
        points=points,
        runs=pd.DataFrame(),
    )


def _sweep_frame(seed: int, replications: int = 4) -> pd.DataFrame:
    """Tidy sweep rows over a 3 x 2 grid of (instances, users)."""
    rng = np.random.default_rng(seed)
    rows = []
    point = 0
    for instances in (1, 2, 4):
        for users in (1000, 5000):
            for replication in range(replications):
                rows.append(
                    {
                        "point": point,
                        "replication": replication,
                        "architecture.gateway.instances": instances,
                        "workload.users": users,
                        "latency_p99": users / (1000 * instances) + rng.normal(0, 0.1),
                    }
                )
            point += 1
    return pd.DataFrame(rows)


def test_capacity_curve_draws_band_threshold_groups_and_answer() -> None:
    """One axes; the CI band is a PolyCollection spanning ci_low..ci_high of the sorted
    values; the threshold is a dashed line at 0.2 labelled with the condition; meeting
    and failing values are separate scatter groups; a vertical line marks the answer."""
    values = [100.0, 200.0, 300.0, 400.0, 500.0, 600.0, 700.0, 800.0]
    result = _capacity_result(1, values)
    figure = capacity_curve(result)
    assert isinstance(figure, Figure)
    (ax,) = figure.axes
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 1
    band_ys = _floats(bands[0].get_paths()[0].vertices)[:, 1]
    points = result.points.sort_values("value")
    assert band_ys.min() == pytest.approx(points["latency_p99_ci_low"].min())
    assert band_ys.max() == pytest.approx(points["latency_p99_ci_high"].max())

    mean_line = next(line for line in ax.lines if line.get_label() == "mean latency_p99")
    assert _floats(mean_line.get_xdata()).tolist() == sorted(values)

    threshold = [line for line in ax.lines if line.get_label() == "latency_p99<=0.2"]
    assert len(threshold) == 1
    assert threshold[0].get_linestyle() == "--"
    assert set(_floats(threshold[0].get_ydata()).tolist()) == {THRESHOLD_S}

    groups = {c.get_label(): c for c in ax.collections if isinstance(c, PathCollection)}
    meets = int(points["met"].sum())
    assert 0 < meets < len(values), "the synthetic search must have both outcomes"
    assert len(_floats(groups["meets SLO"].get_offsets())) == meets
    assert len(_floats(groups["fails SLO"].get_offsets())) == len(values) - meets
    meet_colour = _floats(groups["meets SLO"].get_facecolor())[0]
    fail_colour = _floats(groups["fails SLO"].get_facecolor())[0]
    assert meet_colour.tolist() != fail_colour.tolist()

    answer = [line for line in ax.lines if str(line.get_label()).startswith("answer")]
    assert len(answer) == 1
    assert set(_floats(answer[0].get_xdata()).tolist()) == {result.answer}
    assert ax.get_xscale() == "linear"  # 8x span
    assert ax.get_ylabel() == metric_label("latency_p99")


def test_capacity_curve_log_axis_beyond_20x_and_chosen_metric() -> None:
    """Values spanning 1,000x get a log x axis; a named metric of the SLO is plotted and
    only its own condition's threshold is drawn; a metric outside the SLO is refused."""
    result = _capacity_result(
        2, [1000.0, 10_000.0, 100_000.0, 1_000_000.0], slo="latency_p99<=0.2, latency_p50<=0.1"
    )
    ax = capacity_curve(result, metric="latency_p50").axes[0]
    assert ax.get_xscale() == "log"
    assert ax.get_ylabel() == metric_label("latency_p50")
    labels = [str(line.get_label()) for line in ax.lines]
    assert "latency_p50<=0.1" in labels and "latency_p99<=0.2" not in labels
    with pytest.raises(ValueError, match="'throughput'"):
        capacity_curve(result, metric="throughput")


def test_capacity_curve_draws_into_given_axes() -> None:
    """Given axes are used, not a new figure."""
    figure = Figure()
    left, right = figure.subplots(1, 2)
    assert capacity_curve(_capacity_result(3, [1.0, 2.0, 3.0]), ax=right) is figure
    assert right.lines and not left.lines


def test_sweep_heatmap_cells_are_replication_means() -> None:
    """Every cell equals the mean over replications of its (x, y) pair, rows ascending
    in y and columns in x, each annotated; the colorbar carries the metric label."""
    frame = _sweep_frame(4)
    x, y = "architecture.gateway.instances", "workload.users"
    figure = sweep_heatmap(frame, x, y, "latency_p99")
    assert len(figure.axes) == 2  # heatmap + colorbar
    ax, colorbar = figure.axes
    cells = np.asarray(ax.images[0].get_array())
    expected = frame.groupby([y, x])["latency_p99"].mean().unstack(x).sort_index()
    np.testing.assert_allclose(cells, expected.to_numpy(), rtol=1e-12)
    texts = [t.get_text() for t in ax.texts]
    assert texts == [compact_number(v) for v in expected.to_numpy().ravel()]
    assert colorbar.get_ylabel() == metric_label("latency_p99")


@pytest.mark.parametrize("missing", ["architecture.gateway.instances", "workload.users", "cost"])
def test_sweep_heatmap_names_missing_column(missing: str) -> None:
    """A column absent from the frame is named in the error."""
    frame = _sweep_frame(5).rename(columns={"latency_p99": "cost"})
    frame = frame.drop(columns=[missing])
    with pytest.raises(ValueError, match=repr(missing).replace(".", r"\.")):
        sweep_heatmap(frame, "architecture.gateway.instances", "workload.users", "cost")


def _load_sweep(seed: int, latencies_s: list[float], replications: int = 5) -> pd.DataFrame:
    """Rows of a sweep over workload.users whose mean latencies are ``latencies_s``."""
    rng = np.random.default_rng(seed)
    loads = [1000 * (i + 1) for i in range(len(latencies_s))]
    rows = []
    # rows in shuffled load order: the plot must order the points by load itself
    for point in rng.permutation(len(loads)):
        for replication in range(replications):
            rows.append(
                {
                    "point": int(point),
                    "replication": replication,
                    "workload.users": loads[point],
                    "throughput": loads[point] / 60 + rng.normal(0, 0.5),
                    "latency_p99": latencies_s[point] * (1 + rng.normal(0, 0.01)),
                }
            )
    return pd.DataFrame(rows)


def test_knee_rule_is_first_latency_above_twice_the_lowest_load() -> None:
    """The knee is the first point exceeding 2x the lowest-load latency, not the largest
    jump and not a later point; exactly 2x does not count; no such point, no knee."""
    assert knee_index([0.1, 0.15, 0.19, 0.21, 0.5, 1.0]) == 3
    assert knee_index([0.1, 0.2, 0.2, 0.3]) == 3
    assert knee_index([0.1, 0.12, 0.15]) is None
    assert knee_index([]) is None
    assert knee_index([float("nan"), 1.0]) is None


def test_latency_vs_throughput_marks_the_knee_with_error_bars_and_labels() -> None:
    """Points ordered by load with CI error bars on both axes and a load label each; the
    knee marker sits on the first load whose latency exceeds twice the lowest load's."""
    latencies_s = [0.05, 0.06, 0.08, 0.11, 0.3, 0.9]
    frame = _load_sweep(6, latencies_s)
    figure = latency_vs_throughput(frame, "workload.users")
    (ax,) = figure.axes
    assert [t.get_text() for t in ax.texts] == ["1k", "2k", "3k", "4k", "5k", "6k"]
    line = ax.lines[0]
    np.testing.assert_allclose(_floats(line.get_ydata()), _floats(latencies_s), rtol=0.02)
    bars = ax.containers[0]
    assert isinstance(bars, ErrorbarContainer)
    assert len(bars.lines[2]) == 2  # x and y error bars
    knees = [c for c in ax.collections if str(c.get_label()).startswith("knee")]
    assert len(knees) == 1
    knee_x, knee_y = _floats(knees[0].get_offsets())[0]
    assert knee_y == pytest.approx(0.11, rel=0.02)
    assert knee_x == pytest.approx(4000 / 60, rel=0.02)
    assert "4k" in str(knees[0].get_label())
    assert ax.get_xlabel() == metric_label("throughput")
    assert ax.get_ylabel() == metric_label("latency_p99")


def test_latency_vs_throughput_without_knee_marks_nothing() -> None:
    """A flat curve has no knee and no marker."""
    ax = latency_vs_throughput(_load_sweep(7, [0.05, 0.06, 0.07]), "workload.users").axes[0]
    assert not [c for c in ax.collections if str(c.get_label()).startswith("knee")]


def test_latency_vs_throughput_names_missing_column() -> None:
    """The missing latency column is named in the error."""
    frame = _load_sweep(8, [0.05, 0.06]).drop(columns=["latency_p99"])
    with pytest.raises(ValueError, match="'latency_p99'"):
        latency_vs_throughput(frame, "workload.users")
