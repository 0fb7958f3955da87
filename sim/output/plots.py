"""Figures comparing scenarios: latency CDFs and metric bars, and the conventions of every figure.

Every function builds on :class:`matplotlib.figure.Figure` directly and never
touches ``pyplot``, so plots can be drawn in worker processes, notebooks and
headless CI alike without a display or a shared figure registry. Each function
returns the figure and accepts axes to draw into, so callers can compose them.
Times are seconds on every axis, sizes bytes, rates per second. These rules, the
palette and the axis labels with units (:func:`metric_label`) hold for the
other figures too (:mod:`sim.output.timeline_plot`, :mod:`sim.output.study_plots`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from enum import StrEnum

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure, SubFigure

from sim.model.result import Result

#: Tableau 10: distinguishable under the common colour-vision deficiencies.
PALETTE: tuple[str, ...] = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)

#: An empirical CDF keeps this many evenly spaced points plus as many in the tail;
#: millions of deliveries would otherwise make slow, huge figures.
_CDF_POINTS = 1000

_UNITS: dict[str, str] = {
    "cost": "instance-s",
    "throughput": "msg/s",
    "online_users": "count",
    "connected_users": "count",
    "broker_backlog": "messages",
    "errors_per_s": "errors/s",
    "retries_per_s": "retries/s",
    "connects_per_s": "connects/s",
    "users": "count",
    "bytes": "B",
    "bytes_per_s": "B/s",
    "requests_per_s": "req/s",
    "requests": "requests",
    "availability": "fraction",
    "sent": "messages",
    "acked": "messages",
    "failed": "messages",
    "delivered": "deliveries",
    "lost": "messages",
    "duplicated": "displays",
    "reordered": "displays",
    "misdelivered": "displays",
    "redelivered": "deliveries",
    "empty_polls": "polls",
}


class LatencyKind(StrEnum):
    """Which latency a CDF shows (see DESIGN section 2, *Latency*)."""

    ONLINE = "online"
    """Display minus send time, recipients online at send time."""
    SYNC = "sync"
    """Display minus reconnect time, messages that waited in an inbox."""
    ACK = "ack"
    """Ack minus send time, as the sender sees it."""


def _words(metric: str) -> str:
    return metric.replace("_per_s", " per second").replace("_", " ")


def metric_label(metric: str) -> str:
    """Axis label of a result column with its unit, e.g. ``latency p99 (s)``."""
    words = _words(metric)
    if metric in _UNITS:
        unit = _UNITS[metric]
    elif metric.startswith(("latency_", "ack_", "sync_")):
        unit = "s"
    elif metric.endswith("_per_s"):
        unit = "1/s"
    elif metric.endswith("_s"):
        words, unit = _words(metric[: -len("_s")]), "s"
    elif metric.endswith("_utilisation"):
        unit = "0–1"
    elif metric.endswith("_queue"):
        unit = "queued jobs"
    else:
        unit = ""
    return f"{words} ({unit})" if unit else words


def _root_figure(ax: Axes) -> Figure:
    figure = ax.figure
    while isinstance(figure, SubFigure):
        figure = figure.figure
    if not isinstance(figure, Figure):
        raise ValueError("the axes do not belong to a figure")
    return figure


def _as_list(runs: Result | Sequence[Result]) -> list[Result]:
    return [runs] if isinstance(runs, Result) else list(runs)


def latency_values(runs: Result | Sequence[Result], kind: LatencyKind | str) -> np.ndarray:
    """Pooled latencies in seconds of one scenario's replications, NaN-free.

    Args:
        runs: one result or its replications.
        kind: ``online`` or ``sync`` deliveries (``latency_s`` of rows with that
            ``path``), or ``ack`` (``ack_time_s - send_time_s`` of acked messages).
    """
    kind = LatencyKind(kind)
    parts: list[np.ndarray] = []
    for result in _as_list(runs):
        if kind is LatencyKind.ACK:
            frame = result.messages
            if frame.empty or "ack_time_s" not in frame or "send_time_s" not in frame:
                continue
            if "acked" in frame:
                frame = frame[frame["acked"].astype(bool)]
            values = frame["ack_time_s"].to_numpy(float) - frame["send_time_s"].to_numpy(float)
        else:
            frame = result.deliveries
            if frame.empty or "path" not in frame or "latency_s" not in frame:
                continue
            values = frame.loc[frame["path"] == kind.value, "latency_s"].to_numpy(float)
        parts.append(values[~np.isnan(values)])
    return np.concatenate(parts) if parts else np.empty(0)


def _thin_ecdf(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted values and their ECDF heights, thinned but keeping tail detail."""
    ordered = np.sort(values)
    n = ordered.size
    heights = np.arange(1, n + 1, dtype=float) / n
    if n <= 2 * _CDF_POINTS:
        return ordered, heights
    even = np.linspace(0, n - 1, _CDF_POINTS)
    tail = n - np.geomspace(1, n, _CDF_POINTS)
    index = np.unique(np.concatenate([even, tail]).round().astype(int).clip(0, n - 1))
    return ordered[index], heights[index]


def _format_seconds(value_s: float) -> str:
    if value_s < 1.0:
        return f"{value_s * 1e3:.3g} ms"
    return f"{value_s:.3g} s"


def latency_cdf(
    results: Mapping[str, Result | Sequence[Result]],
    kind: LatencyKind | str = LatencyKind.ONLINE,
    log_x: bool = True,
    ax: Axes | None = None,
) -> Figure:
    """Empirical CDFs of one latency, a line per scenario, replications pooled.

    A circle marks each line's median and a diamond its p99, the percentiles the
    summary table reports, so the figure and the table can be read together.

    Args:
        results: scenario name -> its result or replications.
        kind: ``online``, ``sync`` or ``ack`` (see :class:`LatencyKind`).
        log_x: logarithmic latency axis, since latencies span orders of magnitude;
            latencies of exactly zero cannot sit on it and are left out.
        ax: axes to draw into; a new figure when omitted.

    Returns:
        The figure; one line in ``ax.lines`` per scenario that has data. Without
        any data the axes say so instead of failing.
    """
    kind = LatencyKind(kind)
    if ax is None:
        ax = Figure(figsize=(7.5, 4.5), layout="constrained").add_subplot()
    figure = _root_figure(ax)
    what = {
        LatencyKind.ONLINE: "Delivery latency, recipients online",
        LatencyKind.SYNC: "Sync latency after reconnect",
        LatencyKind.ACK: "Ack latency at the sender",
    }[kind]
    plotted = 0
    for index, (name, runs) in enumerate(results.items()):
        values = latency_values(runs, kind)
        if log_x:
            values = values[values > 0]
        if values.size == 0:
            continue
        colour = PALETTE[index % len(PALETTE)]
        p50, p99 = np.quantile(values, [0.5, 0.99])
        xs, ys = _thin_ecdf(values)
        label = (
            f"{name}: p50 {_format_seconds(p50)}, p99 {_format_seconds(p99)} (n={values.size:,})"
        )
        ax.plot(xs, ys, drawstyle="steps-post", color=colour, linewidth=1.8, label=label)
        ax.scatter([p50], [0.5], marker="o", color=colour, zorder=3, s=30)
        ax.scatter([p99], [0.99], marker="D", color=colour, zorder=3, s=30)
        plotted += 1
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(f"{kind.value} latency (s)")
    ax.set_ylabel("fraction ≤ latency")
    ax.set_ylim(0.0, 1.02)
    ax.set_title(what)
    ax.grid(True, which="major", alpha=0.3)
    if plotted:
        ax.legend(
            loc="upper center",
            bbox_to_anchor=(0.5, -0.16),
            fontsize="small",
            title="● p50  ◆ p99",
            frameon=False,
        )
    else:
        if log_x:
            ax.set_xlim(1e-3, 10.0)
        ax.text(
            0.5,
            0.5,
            f"no {kind.value} latencies recorded",
            transform=ax.transAxes,
            ha="center",
            va="center",
            color="0.4",
        )
    return figure


def _error_bars(
    table: pd.DataFrame, metric: str, means: np.ndarray, log_scale: bool
) -> np.ndarray | None:
    low_col, high_col = f"{metric}_ci_low", f"{metric}_ci_high"
    if low_col not in table or high_col not in table:
        return None
    low = table[low_col].to_numpy(float)
    high = table[high_col].to_numpy(float)
    below = means - low
    above = high - means
    if log_scale:  # a log axis cannot show a lower limit at or below zero: omit it
        below = np.where(low > 0, below, 0.0)
    # Infinite intervals (a single replication) have no bar to draw.
    below = np.where(np.isfinite(below), below, 0.0)
    above = np.where(np.isfinite(above), above, 0.0)
    return np.vstack([below, above])


def _spans_decades(values: np.ndarray) -> bool:
    positive = values[np.isfinite(values) & (values > 0)]
    return positive.size > 1 and float(positive.max() / positive.min()) > 10.0


def _log_metrics(
    table: pd.DataFrame, metrics: Sequence[str], log_scale: bool | Collection[str] | None
) -> set[str]:
    if log_scale is None:
        return {
            metric
            for metric in metrics
            if "bytes" in metric and _spans_decades(table[metric].to_numpy(float))
        }
    if isinstance(log_scale, bool):
        return set(metrics) if log_scale else set()
    return set(log_scale)


def compare_bars(
    table: pd.DataFrame,
    metrics: Sequence[str],
    by: str = "scenario",
    log_scale: bool | Collection[str] | None = None,
    ax: Axes | Sequence[Axes] | None = None,
) -> Figure:
    """Small multiples: one bar chart per metric, a bar per group, CI error bars.

    Args:
        table: one row per group, e.g. the output of :func:`sim.core.statistics.summarize`;
            ``{metric}_ci_low`` / ``{metric}_ci_high`` columns become error bars.
        metrics: columns to show, one panel each.
        by: column naming the groups.
        log_scale: which panels get a logarithmic value axis: ``None`` for the
            byte metrics whose values span more than a factor of 10 (polling and
            push transports differ by orders of magnitude),
            ``True``/``False`` for all/none, or a collection of metric names. A
            lower CI limit at or below zero has no place on a log axis and is
            left out.
        ax: one axes per metric to draw into; a new figure when omitted.

    Returns:
        The figure, one axes per metric with one bar per group.
    """
    if not metrics:
        raise ValueError("compare_bars needs at least one metric")
    missing = [name for name in (by, *metrics) if name not in table.columns]
    if missing:
        raise ValueError(f"table has no column(s) {missing}; columns: {list(table.columns)}")
    if ax is None:
        width_in = max(4.0, 0.6 * len(table) + 2.0) * len(metrics)
        figure = Figure(figsize=(min(width_in, 16.0), 4.2), layout="constrained")
        axes = list(np.atleast_1d(figure.subplots(1, len(metrics), squeeze=False)[0]))
    else:
        axes = [ax] if isinstance(ax, Axes) else list(ax)
        if len(axes) != len(metrics):
            raise ValueError(f"got {len(axes)} axes for {len(metrics)} metrics")
        figure = _root_figure(axes[0])
    logged = _log_metrics(table, metrics, log_scale)
    groups = [str(group) for group in table[by]]
    colours = [PALETTE[index % len(PALETTE)] for index in range(len(groups))]
    positions = np.arange(len(groups))
    for axis, metric in zip(axes, metrics, strict=True):
        means = table[metric].to_numpy(float)
        is_log = metric in logged and bool(np.any(means > 0))
        errors = _error_bars(table, metric, means, is_log)
        axis.bar(positions, np.nan_to_num(means), color=colours, edgecolor="0.2", linewidth=0.5)
        if errors is not None:
            axis.errorbar(
                positions, means, yerr=errors, fmt="none", ecolor="0.1", capsize=4, linewidth=1
            )
        if is_log:
            axis.set_yscale("log")
        axis.set_xticks(positions, groups, rotation=30 if len(groups) > 2 else 0, ha="right")
        axis.set_ylabel(metric_label(metric))
        axis.set_title(_words(metric))
        axis.grid(True, axis="y", alpha=0.3)
    if any(f"{metric}_ci_low" in table for metric in metrics) and "replications" in table:
        counts = sorted({int(n) for n in table["replications"]})
        figure.suptitle(
            f"mean and confidence interval over {'/'.join(map(str, counts))} replication(s)",
            fontsize="medium",
        )
    return figure
