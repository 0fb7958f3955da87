"""Figures of studies made of many runs: capacity searches and parameter sweeps.

The conventions of :mod:`sim.output.plots` hold here too: every function draws on a
:class:`matplotlib.figure.Figure` (never ``pyplot``), accepts axes to draw into
and returns the figure. Values keep the units of their result columns (seconds
for latencies, messages per second for throughput), and axis labels say so via
:func:`sim.output.plots.metric_label`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from sim.core.statistics import summarize
from sim.output.plots import PALETTE, _error_bars, _root_figure, metric_label
from sim.studies.capacity import CapacityResult, dimension_label, format_value

#: Values of a capacity dimension spanning more than this factor get a log axis:
#: user counts searched from 1,000 to 1,000,000 would otherwise crowd to the left.
_LOG_SPAN = 20.0

#: The knee of a latency-throughput curve: latency this many times the lowest-load one.
KNEE_FACTOR = 2.0

_MEETS_COLOUR = PALETTE[2]
_FAILS_COLOUR = PALETTE[3]


def _new_axes(width_in: float = 7.5, height_in: float = 4.5) -> Axes:
    return Figure(figsize=(width_in, height_in), layout="constrained").add_subplot()


def _require_columns(frame: pd.DataFrame, names: Sequence[str], what: str) -> None:
    missing = [name for name in dict.fromkeys(names) if name not in frame.columns]
    if missing:
        raise ValueError(f"{what} has no column(s) {missing}; columns: {list(frame.columns)}")


def compact_number(value: float) -> str:
    """A number in at most about four characters for a heatmap cell: ``0.123``,
    ``45.6``, ``1.2k``, ``3.4M``; ``-`` for a missing value."""
    if not math.isfinite(value):
        return "-"
    magnitude = abs(value)
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if magnitude >= scale:
            return f"{value / scale:.3g}{suffix}"
    if magnitude != 0 and magnitude < 1e-3:
        return f"{value:.1e}"
    return f"{value:.3g}"


def capacity_curve(
    result: CapacityResult, metric: str | None = None, ax: Axes | None = None
) -> Figure:
    """A constrained metric against the searched dimension, with the SLO and the answer.

    The search judges a value by the confidence interval of its mean, not the
    mean alone (see :mod:`sim.studies.slo`), so the interval is drawn as a band: a
    value whose band crosses the threshold fails even if its mean does not.

    Args:
        result: a capacity search.
        metric: one of the SLO's metrics; default the first condition's metric.
        ax: axes to draw into; a new figure when omitted.

    Returns:
        The figure: the mean as a line (``ax.lines``), the interval as a shaded
        band (a ``PolyCollection``), a dashed horizontal line per condition on the
        metric labelled with the condition, values that meet and that fail as two
        scatter groups, and a vertical line at the answer when there is one. The
        x axis is logarithmic when the values span more than a factor of 20.

    Raises:
        ValueError: naming the metric, if it is not constrained by the SLO.
    """
    chosen = metric if metric is not None else result.slo.conditions[0].metric
    if chosen not in result.slo.metrics:
        raise ValueError(
            f"metric {chosen!r} is not constrained by the SLO {result.slo}; "
            f"choose one of {list(result.slo.metrics)}"
        )
    points = result.points.sort_values("value", kind="stable")
    _require_columns(points, ["value", "met", chosen], "capacity points")
    if ax is None:
        ax = _new_axes()
    figure = _root_figure(ax)
    values = points["value"].to_numpy(float)
    means = points[chosen].to_numpy(float)
    low = points.get(f"{chosen}_ci_low", points[chosen]).to_numpy(float)
    high = points.get(f"{chosen}_ci_high", points[chosen]).to_numpy(float)
    # A single replication has an infinite interval: no band to draw there.
    low = np.where(np.isfinite(low), low, means)
    high = np.where(np.isfinite(high), high, means)
    met = points["met"].to_numpy(bool)

    ax.fill_between(values, low, high, color=PALETTE[0], alpha=0.2, linewidth=0, label="95% CI")
    ax.plot(values, means, color=PALETTE[0], linewidth=1.6, label=f"mean {chosen}")
    ax.scatter(values[met], means[met], color=_MEETS_COLOUR, zorder=3, label="meets SLO")
    ax.scatter(
        values[~met], means[~met], color=_FAILS_COLOUR, marker="X", zorder=3, label="fails SLO"
    )
    for condition in result.slo.conditions:
        if condition.metric == chosen:
            ax.axhline(
                condition.threshold,
                color="0.3",
                linestyle="--",
                linewidth=1.2,
                label=str(condition),
            )
    if result.answer is not None:
        ax.axvline(
            float(result.answer),
            color=_MEETS_COLOUR,
            linestyle=":",
            linewidth=1.6,
            label=f"answer: {format_value(result.answer)}",
        )
    positive = values[values > 0]
    if (
        positive.size > 1
        and positive.size == values.size
        and positive.max() > _LOG_SPAN * positive.min()
    ):
        ax.set_xscale("log")
    ax.set_xlabel(dimension_label(result.dimension))
    ax.set_ylabel(metric_label(chosen))
    ax.set_title(f"{result.scenario_name}: {result.mode.value.replace('_', ' ')} for {result.slo}")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    return figure


def sweep_heatmap(
    frame: pd.DataFrame, x: str, y: str, metric: str, ax: Axes | None = None
) -> Figure:
    """Mean of a metric over replications for every pair of two swept parameters.

    Args:
        frame: tidy sweep rows (:func:`sim.studies.sweep.sweep`), one per run.
        x: swept parameter column shown across, e.g. ``architecture.gateway.instances``.
        y: swept parameter column shown down, e.g. ``workload.users``.
        metric: summary column averaged in each cell, in its own unit.
        ax: axes to draw into; a new figure (with a colorbar axes) when omitted.

    Returns:
        The figure: one image whose cells are the means (rows are ``y`` values
        ascending from the bottom, columns ``x`` values ascending), each cell
        annotated compactly, and a colorbar labelled with the metric and unit.
        A pair never run is a blank cell.

    Raises:
        ValueError: naming the missing column(s) among ``x``, ``y`` and ``metric``.
    """
    _require_columns(frame, [x, y, metric], "sweep frame")
    numeric = frame.assign(**{metric: pd.to_numeric(frame[metric], errors="coerce")})
    table = numeric.pivot_table(index=y, columns=x, values=metric, aggfunc="mean", dropna=False)
    table = table.sort_index(axis=0).sort_index(axis=1)
    cells = table.to_numpy(float)
    if ax is None:
        ax = _new_axes(max(5.0, 0.9 * cells.shape[1] + 3.0), max(3.5, 0.6 * cells.shape[0] + 2.0))
    figure = _root_figure(ax)
    image = ax.imshow(cells, origin="lower", aspect="auto", cmap="viridis")
    finite = cells[np.isfinite(cells)]
    middle = float(finite.min() + finite.max()) / 2 if finite.size else 0.0
    for row in range(cells.shape[0]):
        for column in range(cells.shape[1]):
            value = float(cells[row, column])
            if not math.isfinite(value):
                continue
            ax.text(
                column,
                row,
                compact_number(value),
                ha="center",
                va="center",
                fontsize="small",
                color="black" if value > middle else "white",
            )
    ax.set_xticks(range(cells.shape[1]), [compact_number(float(v)) for v in table.columns])
    ax.set_yticks(range(cells.shape[0]), [compact_number(float(v)) for v in table.index])
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(f"mean {metric} over replications")
    figure.colorbar(image, ax=ax, label=metric_label(metric))
    return figure


def knee_index(latencies_by_load: Sequence[float] | np.ndarray) -> int | None:
    """Position of the knee in latencies ordered by increasing load.

    The rule: the first point whose latency exceeds :data:`KNEE_FACTOR` (2) times
    the latency at the lowest load. Doubling is where queueing has visibly taken
    over from service time: for an M/M/1 queue the mean time in system is
    ``1 / (mu - lambda)``, twice its light-load value at 50% utilisation.

    Returns:
        The index of that point, or None when no point exceeds it (or the
        lowest-load latency is missing).
    """
    data = np.asarray(latencies_by_load, dtype=float).ravel()
    if data.size == 0 or not math.isfinite(float(data[0])):
        return None
    above = np.flatnonzero(data > KNEE_FACTOR * data[0])
    return int(above[0]) if above.size else None


def latency_vs_throughput(
    frame: pd.DataFrame,
    load: str,
    throughput: str = "throughput",
    latency: str = "latency_p99",
    ax: Axes | None = None,
) -> Figure:
    """Latency against achieved throughput across a sweep over a load parameter.

    Each load value is one point: its mean throughput (messages per second) on x
    and mean latency (seconds) on y, with 95% confidence intervals over the
    replications as error bars, annotated with the load value. The knee is
    marked: the first point, in order of increasing load, whose mean latency
    exceeds twice the mean latency at the lowest load (:func:`knee_index`).
    Nothing is marked when no point does.

    Args:
        frame: tidy sweep rows (:func:`sim.studies.sweep.sweep`), one per run.
        load: the swept load column, e.g. ``workload.users``.
        throughput: the throughput column.
        latency: the latency column.
        ax: axes to draw into; a new figure when omitted.

    Returns:
        The figure: one errorbar line through the points, and when there is a
        knee a scatter labelled ``knee`` at it.

    Raises:
        ValueError: naming the missing column(s).
    """
    _require_columns(frame, [load, throughput, latency], "sweep frame")
    table = summarize(frame, by=load, metrics=[throughput, latency]).sort_values(load)
    table = table.reset_index(drop=True)
    if ax is None:
        ax = _new_axes()
    figure = _root_figure(ax)
    xs = table[throughput].to_numpy(float)
    ys = table[latency].to_numpy(float)
    ax.errorbar(
        xs,
        ys,
        xerr=_error_bars(table, throughput, xs, log_scale=False),
        yerr=_error_bars(table, latency, ys, log_scale=False),
        color=PALETTE[0],
        marker="o",
        capsize=3,
        linewidth=1.4,
    )
    for x_value, y_value, load_value in zip(xs, ys, table[load], strict=True):
        ax.annotate(
            compact_number(float(load_value)),
            (x_value, y_value),
            textcoords="offset points",
            xytext=(5, 5),
            fontsize="small",
        )
    knee = knee_index(ys)
    if knee is not None:
        ax.scatter(
            [xs[knee]],
            [ys[knee]],
            s=140,
            facecolors="none",
            edgecolors=_FAILS_COLOUR,
            linewidths=2,
            zorder=4,
            label=f"knee: {load} = {compact_number(float(table[load].iloc[knee]))} "
            f"(latency > {KNEE_FACTOR:g}x lowest load)",
        )
        ax.legend(loc="upper left", fontsize="small")
    ax.set_xlabel(metric_label(throughput))
    ax.set_ylabel(metric_label(latency))
    ax.set_title(f"{latency} against {throughput}, by {load}")
    ax.grid(True, alpha=0.3)
    return figure
