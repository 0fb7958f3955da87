"""A run over simulated time: stacked timeseries panels with the faults shaded.

Each panel shows one column of ``Result.timeseries``; the windows of injected
faults are shaded on every panel and the systems' reactions (an ejection, an
election, a breaker opening) are dotted lines, so the effect of a crash on
throughput and latency lines up by eye; the warm-up (not measured) and the
drain are shaded grey. The conventions of
:mod:`sim.output.plots` hold: the figure is built on
:class:`matplotlib.figure.Figure` without ``pyplot``, axes may be passed in, and
times are seconds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from sim.model.result import Result
from sim.output.plots import PALETTE, _root_figure, metric_label

__all__ = ["timeline", "timeline_metrics"]


def _fault_windows(faults: pd.DataFrame, end_s: float) -> list[tuple[float, float, str]]:
    """Injected faults as windows; reactions (instants: ``until_s == at_s``) are left out."""
    windows: list[tuple[float, float, str]] = []
    for row in faults.itertuples(index=False):
        start = float(getattr(row, "at_s", math.nan))
        until = float(getattr(row, "until_s", math.nan))
        if math.isnan(start) or until == start:
            continue
        if math.isnan(until):  # never recovered within the run
            until = max(end_s, start)
        label = f"{getattr(row, 'kind', 'fault')} {getattr(row, 'target', '')}".strip()
        windows.append((start, until, label))
    return windows


def _fault_instants(faults: pd.DataFrame) -> list[tuple[float, str]]:
    """What the systems did in reaction (an ejection, an election): instants."""
    instants: list[tuple[float, str]] = []
    for row in faults.itertuples(index=False):
        start = float(getattr(row, "at_s", math.nan))
        if math.isnan(start) or float(getattr(row, "until_s", math.nan)) != start:
            continue
        instants.append((start, str(getattr(row, "kind", "event"))))
    return instants


def _run_phases(meta: Mapping[str, object], end_s: float) -> list[tuple[float, float, str]]:
    """The warm-up (excluded from statistics) and the drain, when the run recorded them."""
    warmup, duration = meta.get("warmup_s"), meta.get("duration_s")
    if not isinstance(warmup, int | float) or not isinstance(duration, int | float):
        return []
    phases = []
    if warmup > 0:
        phases.append((0.0, float(warmup), "warm-up (not measured)"))
    if end_s > duration:
        phases.append((float(duration), end_s, "drain (no new sends)"))
    return phases


def timeline_metrics(result: Result) -> tuple[str, ...]:
    """The panels worth looking at for a run: throughput, p99 latency and connected
    users always; errors and retries when there were any or a fault was injected;
    the broker's backlog when it built up."""
    series = result.timeseries
    chosen = ["throughput", "latency_p99"]
    eventful = not result.faults.empty
    for column in ("errors_per_s", "retries_per_s"):
        if column in series.columns and (eventful or float(series[column].max()) > 0):
            chosen.append(column)
    if "connects_per_s" in series.columns and eventful:
        connects = series["connects_per_s"]
        if float(connects.max()) > 3.0 * max(float(connects.median()), 1e-9):
            chosen.append("connects_per_s")  # a reconnect storm
    if "broker_backlog" in series.columns and float(series["broker_backlog"].max()) > 10:
        chosen.append("broker_backlog")
    chosen.append("connected_users" if "connected_users" in series.columns else "online_users")
    return tuple(chosen)


def timeline(
    result: Result,
    metrics: Sequence[str] | None = None,
    ax: Sequence[Axes] | None = None,
) -> Figure:
    """Stacked panels of timeseries columns over simulated time, faults shaded.

    Every fault window ``at_s``..``until_s`` of ``result.faults`` is shaded on every
    panel, so the effect of a crash on throughput and latency lines up by eye.

    Args:
        result: one run.
        metrics: columns of ``result.timeseries`` to plot, one panel each; by default
            :func:`timeline_metrics` chooses them.
        ax: one axes per metric to draw into (share their x axis for alignment);
            a new figure when omitted.

    Returns:
        The figure, one axes per metric; one shaded patch per fault on each.
    """
    if metrics is None:
        metrics = timeline_metrics(result) if not result.timeseries.empty else ("throughput",)
    if not metrics:
        raise ValueError("timeline needs at least one metric")
    series = result.timeseries
    if not series.empty:
        missing = [metric for metric in ("t_s", *metrics) if metric not in series.columns]
        if missing:
            raise ValueError(
                f"timeseries has no column(s) {missing}; columns: {list(series.columns)}"
            )
    if ax is None:
        figure = Figure(figsize=(9.0, 1.9 * len(metrics) + 1.0), layout="constrained")
        axes = list(figure.subplots(len(metrics), 1, sharex=True, squeeze=False)[:, 0])
    else:
        axes = list(ax)
        if len(axes) != len(metrics):
            raise ValueError(f"got {len(axes)} axes for {len(metrics)} metrics")
        figure = _root_figure(axes[0])
    times = series["t_s"].to_numpy(float) if not series.empty else np.empty(0)
    # A fault still active at the end is shaded to the end of the last interval.
    step_s = float(np.median(np.diff(times))) if times.size > 1 else 0.0
    end_s = float(times.max()) + step_s if times.size else 0.0
    windows = _fault_windows(result.faults, end_s)
    instants = _fault_instants(result.faults)
    phases = _run_phases(result.meta, end_s)
    for index, (axis, metric) in enumerate(zip(axes, metrics, strict=True)):
        for phase, (start, until, label) in enumerate(phases):
            axis.axvspan(
                start,
                until,
                facecolor="0.88",
                edgecolor="0.6",
                hatch="" if phase == 0 else "//",
                linewidth=0,
                label=label if index == 0 else None,
            )
        for fault_index, (start, until, label) in enumerate(windows):
            axis.axvspan(
                start,
                until,
                color=PALETTE[(3 + fault_index) % len(PALETTE)],
                alpha=0.18,
                linewidth=0,
                label=label if index == 0 else None,
            )
        labelled: set[str] = set()
        for at_s, kind in instants:
            first = index == 0 and kind not in labelled
            labelled.add(kind)
            axis.axvline(
                at_s,
                color="0.35",
                linestyle=":",
                linewidth=1.0,
                label=f"{kind} (reaction)" if first else None,
            )
        if times.size:
            # each value covers its interval [t_s, t_s + interval): drawn as steps
            values = series[metric].to_numpy(float)
            axis.step(
                np.append(times, end_s),
                np.append(values, values[-1]),
                where="post",
                color=PALETTE[0],
                linewidth=1.4,
            )
        else:
            axis.text(0.5, 0.5, "no timeseries recorded", transform=axis.transAxes, ha="center")
        axis.set_ylabel(metric_label(metric))
        axis.grid(True, alpha=0.3)
    axes[-1].set_xlabel("simulated time (s)")
    axes[0].set_title(f"{result.scenario_name} (seed {result.seed})")
    if windows or instants:
        axes[0].legend(loc="upper right", fontsize="small", title="faults")
    elif phases:
        axes[0].legend(loc="upper right", fontsize="small")
    return figure
