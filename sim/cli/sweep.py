"""``msgsim sweep SWEEP.yaml``: run a sweep file, print each point's means and intervals.

Every finished run goes to the output directory at once, so an interrupted
sweep (Ctrl+C, or SIGTERM from a batch scheduler) is finished later with
``--resume``. ``python -m sim.cli.sweep SWEEP.yaml ...`` runs the same command.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import pandas as pd

from sim.model.result import SUMMARY_COLUMNS
from sim.scenario.loader import ScenarioError
from sim.studies.sweep import (
    ID_COLUMNS,
    PROVENANCE_COLUMNS,
    Backend,
    SweepSpec,
    load_sweep,
    run_sweep,
)

#: metrics shown per point: column, label, scale to the unit in the label
SHOWN: tuple[tuple[str, str, float], ...] = (
    ("latency_p99", "online p99 (ms)", 1e3),
    ("ack_p99", "ack p99 (ms)", 1e3),
    ("throughput", "throughput (msg/s)", 1.0),
    ("failed", "failed", 1.0),
    ("lost", "lost", 1.0),
    ("cost", "cost (instance-s)", 1.0),
)
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def add_sweep_command(subparsers: argparse._SubParsersAction[Any]) -> argparse.ArgumentParser:
    """Add ``sweep`` to the ``msgsim`` subcommands; the handler is set as ``fn``."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "sweep",
        help="run a parameter sweep file; write one Parquet file per run",
        description="Run every point of a sweep file with its replications. Each finished "
        "run is written at once to the output directory; --resume skips finished runs.",
    )
    p.add_argument("sweep", help="sweep YAML file, or a name in models/sweeps/")
    p.add_argument(
        "--backend",
        choices=[b.value for b in Backend],
        default=None,
        help="where runs execute (default: the file's backend, else processes)",
    )
    p.add_argument(
        "--scheduler", metavar="ADDR", help="Dask scheduler address, e.g. tcp://host:8786"
    )
    p.add_argument("--workers", type=int, metavar="N", help="worker processes")
    p.add_argument(
        "--out",
        metavar="DIR.parquet",
        help="output directory of Parquet parts (default: out/NAME.parquet)",
    )
    p.add_argument("--resume", action="store_true", help="skip runs already in --out")
    p.add_argument(
        "--report",
        metavar="DIR",
        help="where to write report.html with the sweep's figures (default: beside --out, "
        "NAME-report/; 'none' for no report)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(fn=cmd_sweep)
    return p


def with_command_line(
    spec: SweepSpec, backend: str | None, scheduler: str | None, workers: int | None
) -> SweepSpec:
    """The spec with the command line's choices; ``--scheduler`` alone implies ``dask``."""
    update: dict[str, Any] = {}
    if scheduler is not None:
        update["scheduler"] = scheduler
        update["backend"] = backend or Backend.DASK.value
    elif backend is not None:
        update["backend"] = backend
        if backend != Backend.DASK.value:
            update["scheduler"] = None
    if workers is not None:
        if workers < 1:
            raise ScenarioError(f"--workers must be >= 1, got {workers}")
        update["workers"] = workers
    if not update:
        return spec
    merged = spec.model_dump() | update
    if merged["scheduler"] is not None and merged["backend"] != Backend.DASK.value:
        raise ScenarioError(f"--scheduler needs --backend dask, got --backend {backend}")
    return SweepSpec.model_validate(merged)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM stops the sweep as Ctrl+C does: pools shut down, finished runs are kept."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _cell(mean: float, low: float, high: float, scale: float) -> str:
    if pd.isna(mean):
        return "-"
    text = _number(mean * scale)
    half = (high - low) / 2 * scale
    if pd.notna(half) and 0 < half < float("inf"):
        text += f" ± {_number(half)}"
    return text


def _number(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def _short_names(paths: Sequence[str]) -> dict[str, str]:
    """``architecture.gateway.instances`` shows as ``gateway.instances`` when that is unique."""
    short = {path: ".".join(path.split(".")[-2:]) for path in paths}
    if len(set(short.values())) < len(short):
        return {path: path for path in paths}
    return short


def point_table(frame: pd.DataFrame, params: Sequence[str]) -> pd.DataFrame:
    """One row per point: its parameters, then each shown metric's mean ± 95% CI half-width."""
    from sim.core.statistics import summarize

    metrics = [key for key, _, _ in SHOWN if key in frame.columns]
    stats = summarize(frame, by="point", metrics=metrics)
    first = frame.drop_duplicates("point").set_index("point")
    names = _short_names(params)
    rows = []
    for _, row in stats.iterrows():
        shown: dict[str, Any] = {"point": int(row["point"])}
        for path in params:
            shown[names[path]] = first.at[row["point"], path]
        shown["runs"] = int(row["replications"])
        for key, label, scale in SHOWN:
            if key in metrics:
                shown[label] = _cell(row[key], row[f"{key}_ci_low"], row[f"{key}_ci_high"], scale)
        rows.append(shown)
    return pd.DataFrame(rows)


def cmd_sweep(args: argparse.Namespace) -> int:
    """Run the sweep, print the per-point table and where the Parquet parts are."""
    spec = with_command_line(load_sweep(args.sweep), args.backend, args.scheduler, args.workers)
    out = Path(args.out) if args.out else Path("out") / f"{spec.name}.parquet"
    try:
        with _sigterm_as_interrupt():
            frame = run_sweep(spec, out=out, resume=args.resume, progress=not args.quiet)
    except KeyboardInterrupt:
        print(
            f"msgsim: sweep interrupted; finished runs are kept in {out}/; "
            "run the same command with --resume to finish it",
            file=sys.stderr,
        )
        raise
    known = {*ID_COLUMNS, *PROVENANCE_COLUMNS, *SUMMARY_COLUMNS}
    params = [c for c in frame.columns if c not in known]
    points = point_table(frame, params)
    print(f"{spec.name}: {frame['point'].nunique()} points, mean ± 95% CI over replications\n")
    print(points.to_string(index=False))
    print(f"\n{len(frame)} runs in {out}/  (read with pandas.read_parquet({str(out)!r}))")
    if args.report != "none":
        from sim.output.report import write_sweep_report

        report_dir = Path(args.report) if args.report else out.with_name(f"{out.stem}-report")
        report = write_sweep_report(
            report_dir, frame, params, title=f"msgsim sweep: {spec.name}", points=points
        )
        print(f"wrote {report}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m sim.cli.sweep``: the ``msgsim sweep`` command on its own."""
    parser = argparse.ArgumentParser(prog="msgsim")
    add_sweep_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["sweep", *(sys.argv[1:] if argv is None else argv)])
    try:
        code: int = args.fn(args)
    except ScenarioError as exc:
        print(f"msgsim: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("msgsim: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return code


if __name__ == "__main__":
    sys.exit(main())
