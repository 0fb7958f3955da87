"""The ``msgsim capacity`` command: a capacity search from the command line.

Kept apart from ``sim.cli.main`` so that the search's options live next to their
help; ``sim.cli.main.build_parser`` registers it with :func:`add_capacity_command`.
Each evaluated value is printed as soon as its replications finish (a search at
a million users takes a while), then the answer in one sentence.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sim.scenario.loader import parse_assignment

if TYPE_CHECKING:
    from sim.studies.capacity import CapacityPoint


def _number(text: str) -> int | float:
    """A bound as the user wrote it: an integer when it is one (``1e6`` counts)."""
    try:
        return int(text.replace("_", ""))
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return int(value) if value.is_integer() else value


def _fmt(value: float) -> str:
    if math.isnan(value):
        return "-"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.4g}"


def format_point(point: CapacityPoint, dimension: str) -> str:
    """One evaluated value on one line: each SLO metric's mean [95% CI] and the verdict."""
    from sim.studies.capacity import dimension_label, format_value

    parts = [f"{dimension_label(dimension)} = {format_value(point.value):>10}"]
    for check in point.checks:
        ci = check.interval
        verdict = "ok" if check.met else "FAIL"
        parts.append(
            f"{check.condition.metric} {_fmt(ci.mean)} [{_fmt(ci.low)}, {_fmt(ci.high)}] {verdict}"
        )
    parts.append("meets" if point.met else "fails")
    return "  ".join(parts)


def cmd_capacity(args: argparse.Namespace) -> int:
    """Run the search; exit code 0 when some value in range meets the SLO, else 1."""
    from sim.scenario.loader import load_scenario
    from sim.studies.capacity import Mode, capacity, format_value
    from sim.studies.slo import SLO

    slo = SLO.parse(args.slo)
    overrides = dict(parse_assignment(p) for p in args.set or ())
    scenario = load_scenario(args.model, overrides)
    goal = "largest" if args.mode == Mode.MAX_LOAD.value else "smallest"
    print(
        f"{scenario.name}: {goal} {args.dimension} in [{format_value(args.low)}, "
        f"{format_value(args.high)}] meeting {slo} ({args.replications} replications per "
        f"value, 95% confidence intervals)",
        flush=True,
    )
    result = capacity(
        scenario,
        args.dimension,
        slo,
        mode=args.mode,
        low=args.low,
        high=args.high,
        replications=args.replications,
        seed=args.seed,
        backend=args.backend,
        tolerance=args.tolerance,
        progress=lambda point: print("  " + format_point(point, args.dimension), flush=True),
        show_runs=not args.quiet,
    )
    print(result.describe())
    if args.csv:
        path = Path(args.csv)
        path.parent.mkdir(parents=True, exist_ok=True)
        result.points.to_csv(path, index=False)
        print(f"wrote the evaluated points to {path}")
    return 0 if result.met else 1


def add_capacity_command(subparsers: argparse._SubParsersAction[Any]) -> argparse.ArgumentParser:
    """Add ``msgsim capacity`` to the ``msgsim`` subcommands and return its parser."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "capacity",
        help="find the largest load or smallest size that meets an SLO",
        description=(
            "Bisection over one numeric field, each value replicated with the same seeds. "
            "A value meets the SLO when every condition's 95% confidence interval lies on "
            "the allowed side of its threshold (== conditions: in every replication). "
            "Example: msgsim capacity websocket_microservices --set workload.users=1000000 "
            "--dimension architecture.gateway.instances --mode min_size --low 1 --high 64 "
            "--slo 'latency_p99<=0.2' --slo lost==0 (quote conditions with < or >)"
        ),
    )
    p.add_argument("model", help="preset name or path to a scenario YAML file")
    p.add_argument(
        "--dimension",
        required=True,
        metavar="PATH",
        help="dotted path of the numeric field to vary, e.g. workload.users",
    )
    p.add_argument(
        "--slo",
        action="append",
        required=True,
        metavar="COND",
        help="condition on a summary metric, e.g. latency_p99<=0.2 (seconds), lost==0, "
        "availability>=0.999; repeat for several",
    )
    p.add_argument(
        "--mode",
        choices=("max_load", "min_size"),
        default="max_load",
        help="max_load: largest value that meets (load); min_size: smallest (instances)",
    )
    p.add_argument("--low", type=_number, required=True, metavar="N", help="lower end")
    p.add_argument("--high", type=_number, required=True, metavar="N", help="upper end")
    p.add_argument("--replications", type=int, default=3, help="runs per value (default 3)")
    p.add_argument(
        "--tolerance",
        type=float,
        default=0.01,
        help="stop when the bracket is this fraction of the value wide (default 0.01; "
        "integer fields never finer than 1, 0 for exact integers)",
    )
    p.add_argument("--seed", type=int, default=None, help="root seed (default: run.seed)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a field")
    p.add_argument("--backend", choices=("serial", "processes"), default="processes")
    p.add_argument("--csv", metavar="FILE", help="also write the evaluated points to FILE")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(fn=cmd_capacity)
    return p


__all__ = ["add_capacity_command", "cmd_capacity", "format_point"]
