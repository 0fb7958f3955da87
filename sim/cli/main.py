"""The ``msgsim`` command.

User errors (an unknown preset, a bad field or value) end with exit code 2 and
one message naming the field, the value and what is allowed: no traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from sim.cli.capacity import add_capacity_command
from sim.cli.sweep import add_sweep_command
from sim.scenario.loader import ScenarioError, list_presets, load_scenario, parse_assignment

EXIT_USER_ERROR = 2

UNSETTLED = (
    "msgsim: warning: the system had not settled at the end of the drain (requests still "
    "queued or users still waiting for messages): 'lost' includes that backlog; lengthen "
    "run.drain_s or add capacity"
)

#: summary columns shown on the terminal, with a human label and a format
SHOWN = (
    ("latency_p50", "online p50 (ms)", 1e3),
    ("latency_p99", "online p99 (ms)", 1e3),
    ("ack_p99", "ack p99 (ms)", 1e3),
    ("sync_p99", "sync p99 (ms)", 1e3),
    ("throughput", "throughput (msg/s)", 1.0),
    ("sent", "sent", 1.0),
    ("failed", "failed", 1.0),
    ("lost", "lost", 1.0),
    ("duplicated", "duplicated", 1.0),
    ("reordered", "reordered", 1.0),
    ("availability", "availability", 1.0),
    ("bytes_per_s", "client link (B/s)", 1.0),
    ("cost", "cost (instance-s)", 1.0),
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse's own usage errors are user errors too
        self.print_usage(sys.stderr)
        self.exit(EXIT_USER_ERROR, f"msgsim: error: {message}\n")


def _overrides(pairs: Sequence[str] | None) -> dict[str, Any]:
    return dict(parse_assignment(p) for p in pairs or ())


def _count(text: str) -> int:
    """An argument that counts something: a whole number, 0 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {value}")
    return value


def _table(frame: pd.DataFrame, by: str = "scenario") -> str:
    rows = {}
    for _, row in frame.iterrows():
        col = {}
        for key, label, scale in SHOWN:
            if key not in row:
                continue
            value = row[key]
            low, high = row.get(f"{key}_ci_low"), row.get(f"{key}_ci_high")
            text = _fmt(value * scale)
            if low is not None and high is not None and pd.notna(low) and pd.notna(high):
                half = (high - low) / 2 * scale
                if half > 0 and half != float("inf"):
                    text += f" ± {_fmt(half)}"
            col[label] = text
        rows[str(row[by])] = col
    return pd.DataFrame(rows).to_string()


def _fmt(value: float) -> str:
    if pd.isna(value):
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def cmd_models(args: argparse.Namespace) -> int:
    presets = list_presets()
    width = max(len(p.name) for p in presets) if presets else 0
    for p in presets:
        first = p.description.split(". ")[0].rstrip(".")
        print(f"{p.name:<{width}}  {first}.")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from sim.scenario.schema import json_schema

    text = json.dumps(json_schema(), indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
        print(f"wrote {args.out}")
    else:
        print(text)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from sim.model.run import simulate
    from sim.output.report import write_report

    scenario = load_scenario(args.model, _overrides(args.set))
    result = simulate(scenario, args.seed, progress=None if not args.quiet else False)
    print(_table(result.summary))
    if not result.meta["settled"]:
        print(UNSETTLED, file=sys.stderr)
    given = scenario.run.warmup_s
    if given is None:
        print(
            f"msgsim: warm-up detected by MSER-5 on the ack latencies: statistics from "
            f"{result.meta['warmup_s']:g} s (set run.warmup_s to choose it)",
            file=sys.stderr,
        )
    elif result.meta["mser5_warmup_s"] > given:
        print(
            f"msgsim: note: MSER-5 on the ack latencies suggests a warm-up of "
            f"{result.meta['mser5_warmup_s']:.0f} s, longer than run.warmup_s = "
            f"{given:g} s",
            file=sys.stderr,
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result.summary.to_csv(out / "summary.csv", index=False)
    result.timeseries.to_csv(out / "timeseries.csv", index=False)
    result.stations.to_csv(out / "stations.csv", index=False)
    result.faults.to_csv(out / "faults.csv", index=False)
    result.deliveries.to_parquet(out / "deliveries.parquet", index=False)
    if not result.faults.empty:
        print("\nfaults and what the systems did:")
        shown = result.faults.head(20).to_string(index=False, float_format=lambda v: f"{v:.1f}")
        print(shown)
        if len(result.faults) > 20:
            print(f"... {len(result.faults) - 20} more rows in faults.csv")
    report = write_report(
        out,
        {scenario.name: [result]},
        title=f"msgsim run: {scenario.name}",
        descriptions={scenario.name: scenario.description},
    )
    print(f"\nwrote {report} and the run's frames in {out}/")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from sim.core.statistics import summarize
    from sim.output.report import write_report
    from sim.studies.experiment import compare_runs, differences, summaries

    overrides = _overrides(args.set)
    scenarios = [load_scenario(m, overrides) for m in args.models]
    results = compare_runs(
        scenarios,
        replications=args.replications,
        seed=args.seed,
        backend=args.backend,
        progress=not args.quiet,
    )
    table = summarize(summaries(results), by="scenario")
    print(_table(table))
    unsettled = sorted(
        {r.scenario_name for rs in results.values() for r in rs if not r.meta["settled"]}
    )
    if unsettled:
        print(f"{UNSETTLED} ({', '.join(unsettled)})", file=sys.stderr)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summaries(results).to_csv(out / "runs.csv", index=False)
    if len(results) > 1 and args.replications > 1:
        diffs = differences(results)
        diffs.to_csv(out / "differences.csv", index=False)
        significant = diffs[diffs["significant"]]
        base = diffs["baseline"].iloc[0]
        print(f"\nSignificant paired differences against {base} (95% CI, same seeds):")
        if significant.empty:
            print("  none")
        for _, row in significant.iterrows():
            print(
                f"  {row['scenario']}: {row['metric']} {row['difference']:+.4g} "
                f"[{row['ci_low']:+.4g}, {row['ci_high']:+.4g}]"
            )
    report = write_report(
        out,
        results,
        title="msgsim comparison: " + ", ".join(s.name for s in scenarios),
        descriptions={s.name: s.description for s in scenarios},
        table=table,
    )
    print(f"\nwrote {report}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from sim.validation.theory import validate_theory

    table = validate_theory(
        replications=args.replications, scale=args.scale, progress=not args.quiet
    )
    shown = table.assign(
        simulated=table.apply(
            lambda r: f"{r['simulated']:.5g}  [{r['ci_low']:.5g}, {r['ci_high']:.5g}]", axis=1
        ),
        theory=table["theory"].map(lambda v: f"{v:.5g}"),
        result=table["pass"].map({True: "pass", False: "FAIL"}),
    )[["case", "metric", "theory", "simulated", "result"]]
    shown = shown.rename(columns={"simulated": "simulated mean [95% CI]"})
    print("Simulator vs queueing theory (confidence intervals over replications)\n")
    print(shown.to_string(index=False))
    passed = int(table["pass"].sum())
    print(
        f"\n{passed} of {len(table)} checks pass. A check passes when the theory lies in its"
        f"\nBonferroni-corrected interval ({len(table)} checks, family-wise 95%), wider than"
        "\nthe 95% interval shown: a dozen 95% intervals miss once about half the time by chance."
    )
    ok = passed == len(table)
    if args.scripts > 0:
        from sim.validation.reference.compare import validate_reference

        ref = validate_reference(args.scripts, seed=1)
        print(f"\n{ref.line()}")
        print(
            f"({ref.operations} scripted operations, {ref.sends} sends, equal acked/failed, "
            f"displays and displayed order per recipient; {ref.wall_s:.1f} s)"
        )
        for m in ref.mismatches[:3]:
            print(
                f"\nscript {m.index} differs ({m.links} links):\n{m.script}\n  "
                + "\n  ".join(m.differences)
            )
        ok = ok and ref.passed
    return 0 if ok else 1


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="msgsim",
        description="Design and stress-test real-time messaging architectures.",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("models", help="list the presets with one-line descriptions")
    p.set_defaults(fn=cmd_models)

    p = sub.add_parser("run", help="simulate one scenario and write its report")
    p.add_argument("model", help="preset name or path to a scenario YAML file")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a field")
    p.add_argument("--seed", type=int, default=None, help="root seed (default: run.seed)")
    p.add_argument("--out", default="out", help="output folder (default: out)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(fn=cmd_run)

    p = sub.add_parser("compare", help="compare scenarios over replications; write report.html")
    p.add_argument("models", nargs="+", help="preset names or paths")
    p.add_argument("--replications", type=int, default=3)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override in every model")
    p.add_argument("--backend", choices=("serial", "processes"), default="processes")
    p.add_argument("--out", default="out")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(fn=cmd_compare)

    p = sub.add_parser(
        "validate", help="check the simulator against queueing theory and the reference"
    )
    p.add_argument("--replications", type=int, default=10)
    p.add_argument(
        "--scale", type=float, default=0.5, help="run length factor (default 0.5, about 2 min)"
    )
    p.add_argument(
        "--scripts",
        type=_count,
        default=100,
        help=(
            "scripted scenarios compared with the reference implementation, each with"
            " instant and with timed links (default 100; 0: none)"
        ),
    )
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(fn=cmd_validate)

    p = sub.add_parser("schema", help="print the JSON schema of the scenario format")
    p.add_argument("--out", help="write it to this file instead")
    p.set_defaults(fn=cmd_schema)

    add_sweep_command(sub)
    add_capacity_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.fn(args)
    except ScenarioError as exc:
        print(f"msgsim: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("msgsim: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
