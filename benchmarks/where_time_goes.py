"""Where a run's time goes: wall time per kind of scheduled call, as shares of the run.

Runs ``websocket_microservices`` (the same scaling as ``benchmarks/full_path.py``)
with the event loop timing each scheduled call, and prints, per callback, how
many calls ran, their share of the time spent in calls and the mean cost of one
call (everything it does synchronously included: a station completion runs the
next step of the path). The timing itself adds about a microsecond per call, so
read the shares and the relative costs, not the absolute figures.

Run: ``.venv/bin/python benchmarks/where_time_goes.py [--users N] [--duration-s S] [--top K]``.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from heapq import heappop
from typing import Any

from full_path import scenario_for

from sim.core.kernel import Environment
from sim.model.run import simulate


def timed_run(totals: dict[str, float], counts: dict[str, int]) -> Any:
    """An ``Environment.run`` that times every call it makes, by callback name."""
    plain_run = Environment.run

    def run(self: Environment, until: Any = None) -> Any:
        if until is None or not isinstance(until, int | float):
            return plain_run(self, until)
        queue = self._queue
        clock = time.perf_counter
        at = float(until)
        while queue and queue[0][0] < at:
            item = heappop(queue)
            self._now = item[0]
            start = clock()
            if len(item) == 5:
                fn = item[3]
                fn(item[4])
                name = getattr(fn, "__qualname__", type(fn).__name__)
            else:
                self._process(item[3])
                name = f"simpy {type(item[3]).__name__}"
            totals[name] += clock() - start
            counts[name] += 1
        self._now = at
        return None

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--duration-s", type=float, default=600.0)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    totals: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    plain_run = Environment.run
    Environment.run = timed_run(totals, counts)  # type: ignore[method-assign]
    try:
        start = time.perf_counter()
        result = simulate(scenario_for(args.users, args.duration_s), 1, progress=True)  # type: ignore[arg-type]
        wall = time.perf_counter() - start
    finally:
        Environment.run = plain_run  # type: ignore[method-assign]
    in_calls = sum(totals.values())
    displays, messages = len(result.deliveries), len(result.messages)
    print(
        f"{args.users:,} users, {args.duration_s:,.0f} simulated s: wall {wall:.1f} s "
        f"({in_calls / wall:.0%} in scheduled calls), {sum(counts.values()):,} calls, "
        f"{messages:,} messages, {displays:,} displays"
    )
    print(f"{'share':>6} {'calls':>10} {'us/call':>8}  callback")
    for name, spent in sorted(totals.items(), key=lambda kv: -kv[1])[: args.top]:
        share = spent / in_calls
        print(f"{share:6.1%} {counts[name]:10,} {1e6 * spent / counts[name]:8.2f}  {name}")


if __name__ == "__main__":
    main()
