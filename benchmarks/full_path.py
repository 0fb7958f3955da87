"""The whole message path at scale: websocket_microservices with 1,000,000 users.

Prints simulated deliveries per wall-clock second, the wall time of one
simulated hour and the peak memory of the process. Goals: >= 40,000 deliveries
per second on one core; one simulated hour of 1,000,000 users within 5 minutes
and 2 GB. A smaller run of the same model is measured first as the baseline
of the same machine state, so the ratio shows how the cost scales with users.

Run: ``.venv/bin/python benchmarks/full_path.py [--users N] [--duration-s S]``.
"""

from __future__ import annotations

import argparse
import resource
import time

from sim.model.run import simulate
from sim.scenario.loader import load_scenario

PRESET = "websocket_microservices"


def scenario_for(users: int, duration_s: float) -> object:
    # tiers sized for the population: ~25% online, each gateway holding ~16k connections
    gateways = max(4, users // 62_500)
    return load_scenario(
        PRESET,
        {
            "workload.users": users,
            "architecture.gateway.instances": gateways,
            "architecture.service.instances": max(4, gateways // 2),
            "run.duration_s": duration_s,
            "run.warmup_s": min(300.0, duration_s / 10),
            "run.drain_s": 300.0,
            "run.interval_s": 60.0,
        },
    )


def measure(users: int, duration_s: float) -> dict[str, float]:
    scenario = scenario_for(users, duration_s)
    start = time.perf_counter()
    result = simulate(scenario, 1, progress=True)  # type: ignore[arg-type]
    wall = time.perf_counter() - start
    deliveries = len(result.deliveries)
    return {
        "users": users,
        "wall_s": wall,
        "messages": len(result.messages),
        "deliveries": deliveries,
        "deliveries_per_s": deliveries / wall,
        "events": result.meta["events"],
        "lost": int(result.summary.iloc[0]["lost"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--duration-s", type=float, default=3600.0)
    args = parser.parse_args()
    small = measure(max(10_000, args.users // 100), args.duration_s)
    big = measure(args.users, args.duration_s)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for row in (small, big):
        print(
            f"{row['users']:>10,} users, {args.duration_s:,.0f} simulated s: "
            f"wall {row['wall_s']:,.1f} s, {row['messages']:,} messages, "
            f"{row['deliveries']:,} deliveries, {row['deliveries_per_s']:,.0f} deliveries/s, "
            f"{row['events'] / row['wall_s']:,.0f} scheduled events/s, lost {row['lost']}"
        )
    ratio = big["deliveries_per_s"] / small["deliveries_per_s"]
    print(f"deliveries/s at {args.users:,} users vs {small['users']:,}: ratio {ratio:.2f}")
    print(f"peak memory (max RSS): {peak_mb:,.0f} MB (goal <= 2,048 MB)")
    print(f"one simulated hour: goal <= 300 s wall; measured {big['wall_s']:.0f} s")


if __name__ == "__main__":
    main()
