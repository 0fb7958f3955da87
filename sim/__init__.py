"""msgsim: design and stress-test real-time messaging architectures before building them.

Use it through ``import sim`` and the names below, and nothing else: the folders
inside the package (``sim.core``, ``sim.model``, ...) are its internals and move
as it grows. Times are seconds, sizes bytes, rates per second, cost
instance-seconds; ``docs/api.md`` gives each name with its units::

    import sim
    sc = sim.load_scenario("websocket_microservices", overrides={"workload.users": 10_000})
    res = sim.run(sc, seed=1)
    res.summary, res.deliveries, res.timeseries, res.faults
    table = sim.compare(["http_polling_monolith", "websocket_microservices"], replications=5)
    frame = sim.sweep(sc, grid={"architecture.gateway.instances": [1, 2, 4]}, replications=3)
    sim.plots.timeline(res)

Scenarios:
    Scenario: a validated scenario (architecture, workload, faults, run settings).
    ScenarioError: a user error, naming the field, the value given and what is allowed.
    load_scenario: a preset name, a YAML path or a mapping, with dotted overrides.
    list_presets: every installed scenario (name, path, description, kind).
    parse_assignment: ``"key=value"`` as the command line's ``--set`` reads it.

Runs and comparisons (replication ``i`` uses seed ``seed + i``):
    Result: one run's frames (summary, messages, deliveries, timeseries, stations, faults).
    run: one scenario once.
    replicate: one scenario, several seeds.
    compare: scenarios side by side, one row each: means and 95% intervals.
    compare_runs: the same runs as ``compare``, every ``Result`` kept, by scenario.
    summaries: the summary rows of ``compare_runs``' results, stacked.
    differences: paired differences against a baseline, with intervals.
    check_outcomes: the delivery checker, from a run's messages and displays.
    write_report: an HTML report of compared runs, with its figures (loads matplotlib).

Studies:
    sweep: a design (grid, points, Latin hypercube) run with replications, tidy rows.
    load_sweep: read a sweep file of ``models/sweeps/``.
    run_sweep: run a sweep file read by ``load_sweep``.
    capacity: the largest load or smallest size that meets an SLO, by bisection.
    SLO: a service-level objective, e.g. ``SLO.parse("latency_p99<=0.2 and lost==0")``.
    CapacityResult: what ``capacity`` returns: the answer and every value evaluated.

Namespaces:
    plots: figures of runs and studies (loads matplotlib).
    stats: confidence intervals, summaries and paired differences over replications.
    theory: closed forms of textbook queues and the simulator's checks against them.
    calibration: the measured per-operation costs and frame sizes the defaults rest on.

Version:
    __version__: the installed version of msgsim.

``import sim`` only imports: the namespaces, and ``write_report``, are made on first
use by the module's ``__getattr__`` (PEP 562), so no plotting library is loaded
until ``sim.plots`` or ``sim.write_report`` is touched. They are attributes, not
submodules: write ``sim.plots.timeline(res)``, not ``import sim.plots``.

Every import of an internal module is in this file: when a module moves, the
line that imports it here changes and the public names stay.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

from sim._version import __version__
from sim.model.checker import check as check_outcomes
from sim.model.result import Result
from sim.scenario.loader import ScenarioError, list_presets, load_scenario, parse_assignment
from sim.scenario.schema import Scenario
from sim.studies.capacity import CapacityResult, capacity
from sim.studies.experiment import compare, compare_runs, differences, replicate, run, summaries
from sim.studies.slo import SLO
from sim.studies.sweep import run_sweep, sweep
from sim.studies.sweep_spec import load_sweep


def _namespace(name: str, doc: str | None, **members: object) -> types.ModuleType:
    """A module object ``sim.NAME`` holding ``members``, listed in its ``__all__``."""
    namespace = types.ModuleType(f"sim.{name}", doc)
    namespace.__dict__.update(members, __all__=sorted(members))
    return namespace


def _plots() -> types.ModuleType:
    """Figures of runs and studies, on matplotlib ``Figure`` objects (never pyplot).

    Every function returns the figure and takes ``ax=`` to draw into axes of yours.
    Times are seconds on every axis, sizes bytes, rates per second.

    PALETTE: ten colours, told apart under the common colour-vision deficiencies.
    LatencyKind: which latency a CDF shows: ``online``, ``sync`` or ``ack``.
    metric_label: an axis label with its unit, e.g. ``latency p99 (s)``.
    latency_cdf: delivery (or sync, or ack) latency CDFs, a line per scenario.
    compare_bars: one bar panel per metric of a summary table, 95% intervals as error bars.
    timeline: a run over simulated time, a panel per metric, faults shaded.
    timeline_metrics: the panels ``timeline`` draws by default for a run.
    latency_vs_throughput: a load sweep as p99 latency against throughput, knee circled.
    sweep_heatmap: the mean of a metric over a grid of two swept parameters.
    capacity_curve: a capacity search: the metric, its band, the SLO and the answer.
    """
    from sim.output.plots import PALETTE, LatencyKind, compare_bars, latency_cdf, metric_label
    from sim.output.study_plots import capacity_curve, latency_vs_throughput, sweep_heatmap
    from sim.output.timeline_plot import timeline, timeline_metrics

    return _namespace(
        "plots",
        _plots.__doc__,
        PALETTE=PALETTE,
        LatencyKind=LatencyKind,
        metric_label=metric_label,
        latency_cdf=latency_cdf,
        compare_bars=compare_bars,
        timeline=timeline,
        timeline_metrics=timeline_metrics,
        latency_vs_throughput=latency_vs_throughput,
        sweep_heatmap=sweep_heatmap,
        capacity_curve=capacity_curve,
    )


def _stats() -> types.ModuleType:
    """Statistics over replications: one run is one sample, claims need intervals.

    summarize: one row per group: each metric's mean, ``_ci_low`` and ``_ci_high``.
    mean_ci: the Student-t interval of a mean over independent replications.
    paired_difference: the interval of ``a[i] - b[i]`` over replications sharing seeds.
    ConfidenceInterval: what ``mean_ci`` returns: mean, half_width, low, high, n.
    """
    from sim.core.statistics import ConfidenceInterval, mean_ci, paired_difference, summarize

    return _namespace(
        "stats",
        _stats.__doc__,
        summarize=summarize,
        mean_ci=mean_ci,
        paired_difference=paired_difference,
        ConfidenceInterval=ConfidenceInterval,
    )


def _theory() -> types.ModuleType:
    """Queueing theory, and the simulator configured as textbook queues checked against it.

    Rates are per second, times seconds, loads Erlangs.

    mm1: the M/M/1 queue: mean wait, P(wait), mean sojourn, utilisation.
    mmc: the M/M/c queue (Erlang C).
    md1: the M/D/1 queue (constant service time).
    mg1: the M/G/1 queue (Pollaczek-Khinchine), from the service time's mean and variance.
    erlang_c: the probability that an arrival to an M/M/c queue waits.
    jackson_tandem: M/M/c stations in series: mean sojourn through all of them.
    jackson_network: an open Jackson network of M/M/c stations.
    queue_scenario: a scenario whose message service is one M/G/c queue (or a tandem).
    standard_cases: the cases ``msgsim validate`` runs, each with its closed form.
    validate: every standard case replicated; a row per check, with pass or fail.
    """
    from sim.validation.jackson import jackson_network, jackson_tandem
    from sim.validation.queueing import erlang_c, md1, mg1, mm1, mmc
    from sim.validation.theory import queue_scenario, standard_cases, validate_theory

    return _namespace(
        "theory",
        _theory.__doc__,
        mm1=mm1,
        mmc=mmc,
        md1=md1,
        mg1=mg1,
        erlang_c=erlang_c,
        jackson_tandem=jackson_tandem,
        jackson_network=jackson_network,
        queue_scenario=queue_scenario,
        standard_cases=standard_cases,
        validate=validate_theory,
    )


def _calibration() -> types.ModuleType:
    """The per-operation costs and sizes the simulator's defaults rest on.

    Measured on ``reference_impl`` by ``benchmarks/reference_costs.py`` (``make bench``)
    into ``models/calibration/reference_costs.yaml``; CPU in seconds, sizes in bytes.

    load: the calibration in force (measured values where the file has them).
    path: the file the measured values are read from, or None.
    Calibration: codec, token, TLS and end-to-end encryption costs and frame sizes.
    CodecCost: one codec's frame envelope, payload factor, encode and decode CPU.
    websocket_header_bytes: a WebSocket frame's header size (RFC 6455), in bytes.
    """
    from sim.model.transport import websocket_header_bytes
    from sim.scenario.calibration import Calibration, CodecCost, calibration_file, load_calibration

    return _namespace(
        "calibration",
        _calibration.__doc__,
        load=load_calibration,
        path=calibration_file,
        Calibration=Calibration,
        CodecCost=CodecCost,
        websocket_header_bytes=websocket_header_bytes,
    )


def _write_report() -> Callable[..., Any]:
    """The HTML report writer; importing it loads matplotlib."""
    from sim.output.report import write_report

    return write_report


#: names made on first use, and what makes each
_ON_FIRST_USE: dict[str, Callable[[], Any]] = {
    "plots": _plots,
    "stats": _stats,
    "theory": _theory,
    "calibration": _calibration,
    "write_report": _write_report,
}


def __getattr__(name: str) -> Any:
    """Make a namespace, or load ``write_report``, on first use (PEP 562); later
    lookups find it in the module and do not come here."""
    make = _ON_FIRST_USE.get(name)
    if make is None:
        raise AttributeError(f"module 'sim' has no attribute {name!r}")
    value = globals()[name] = make()
    return value


def __dir__() -> list[str]:
    """The public names (and the module's dunders): what completion offers in a notebook."""
    return sorted({*__all__, *(name for name in globals() if name.startswith("__"))})


__all__ = [
    "SLO",
    "CapacityResult",
    "Result",
    "Scenario",
    "ScenarioError",
    "__version__",
    "calibration",
    "capacity",
    "check_outcomes",
    "compare",
    "compare_runs",
    "differences",
    "list_presets",
    "load_scenario",
    "load_sweep",
    "parse_assignment",
    "plots",
    "replicate",
    "run",
    "run_sweep",
    "stats",
    "summaries",
    "sweep",
    "theory",
    "write_report",
]
