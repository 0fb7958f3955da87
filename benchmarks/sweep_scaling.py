"""Parallel efficiency of the ``processes`` sweep backend on this machine.

The same sweep runs twice in one invocation: once with ``backend="serial"`` and
once with ``backend="processes"`` on ``N`` workers. Speedup is the serial wall
time over the parallel one and efficiency is speedup / N; the goal is >= 0.85,
the rest being process start-up, imports in the workers and the unevenness of
the last runs. A run is a pure function of (scenario, seed), so the two tables
must be identical apart from ``finished_at``; the benchmark checks that too.

The design: WebSocket gateways from 1 to 8 instances (the overrides of
``models/sweeps/gateway_instances.yaml``), two replications each and 480 simulated seconds per run
(four times the sweep file's), so 16 runs of about a second or two each: long enough
that the fixed cost of starting the pool does not dominate.

Run: ``.venv/bin/python benchmarks/sweep_scaling.py [--workers N] [--replications R]``.
The machine is shared and noisy: compare the ratios, not the absolute seconds.
No assertion is made on speed.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Mapping
from typing import Any

import pandas as pd

from sim.studies.sweep import sweep

SCENARIO = "websocket_microservices"
OVERRIDES: Mapping[str, Any] = {
    "workload.users": 5000,
    "workload.messages_per_user_per_hour": 60,
    "run.duration_s": 480,
    "run.warmup_s": 20,
    "run.drain_s": 20,
}
GRID: Mapping[str, list[int]] = {"architecture.gateway.instances": list(range(1, 9))}
GOAL_EFFICIENCY = 0.85


def timed_sweep(backend: str, workers: int | None, replications: int) -> tuple[float, pd.DataFrame]:
    """Wall-clock seconds of the whole sweep, pool start-up included, and its table."""
    start = time.perf_counter()
    frame = sweep(
        SCENARIO,
        grid=GRID,
        replications=replications,
        seed=1,
        backend=backend,
        workers=workers,
        progress=False,
        overrides=OVERRIDES,
    )
    return time.perf_counter() - start, frame


def tables_identical(serial: pd.DataFrame, parallel: pd.DataFrame) -> bool:
    """Whether two sweep tables agree in every column but the wall-clock ``finished_at``."""
    drop = [c for c in ("finished_at",) if c in serial.columns or c in parallel.columns]
    left = serial.drop(columns=drop, errors="ignore").reset_index(drop=True)
    right = parallel.drop(columns=drop, errors="ignore").reset_index(drop=True)
    try:
        pd.testing.assert_frame_equal(left, right, check_exact=True)
    except AssertionError as exc:
        print(f"tables differ: {exc}")
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--replications", type=int, default=2)
    args = parser.parse_args()
    workers: int = args.workers
    runs = len(GRID["architecture.gateway.instances"]) * args.replications

    serial_s, serial = timed_sweep("serial", None, args.replications)
    parallel_s, parallel = timed_sweep("processes", workers, args.replications)
    speedup = serial_s / parallel_s
    efficiency = speedup / workers

    print(f"sweep: {runs} runs ({SCENARIO}, gateway instances 1..8 x {args.replications})")
    print(f"serial:               {serial_s:8.2f} s  ({serial_s / runs:.2f} s per run)")
    print(f"processes, {workers:2d} workers: {parallel_s:8.2f} s")
    print(f"speedup:              {speedup:8.2f}x")
    verdict = "meets" if efficiency >= GOAL_EFFICIENCY else "below"
    print(f"efficiency:           {efficiency:8.2f}  ({verdict} the goal {GOAL_EFFICIENCY})")
    same = tables_identical(serial, parallel)
    print(f"tables identical (ignoring finished_at): {same}")


if __name__ == "__main__":
    main()
