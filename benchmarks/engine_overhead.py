"""Engine overhead and memory per idle user, as ratios against baselines measured in the same run.

1. Throughput on an M/M/1 queue (customers per wall-clock second):
   - baseline: an idiomatic hand-written SimPy model (a source process, one
     process per customer, a ``simpy.Resource``);
   - msgsim's ``Station`` alone, driven the same way;
   - the whole simulator (``sim.model.run.simulate``) configured as an M/M/1 queue
     (``sim.validation.theory.queue_scenario``): users, clients, message
     service, checker and result frames included.
2. Memory per idle user at 1,000,000 users (a built model, nobody online),
   against the memory of one idle SimPy process per user (measured on 100,000).

Run: ``.venv/bin/python benchmarks/engine_overhead.py [--customers N] [--rounds R]``.
The machine is shared and noisy: compare the ratios, not the absolute figures.
Each round measures the baseline and msgsim back to back; the figure is the
median of the rounds' ratios, printed with their range.
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc
from collections.abc import Generator
from statistics import median
from typing import Any

import numpy as np
import simpy

from sim.components.station import Station
from sim.core.kernel import Kernel
from sim.model.run import Model, simulate
from sim.scenario.loader import load_scenario
from sim.validation.theory import queue_scenario

RHO = 0.9


def idiomatic_simpy(customers: int, seed: int = 1) -> float:
    """Customers per second of the textbook SimPy M/M/1."""
    rng = np.random.default_rng(seed)
    gaps = rng.exponential(1 / RHO, customers).tolist()
    services = rng.exponential(1.0, customers).tolist()
    env = simpy.Environment()
    server = simpy.Resource(env, capacity=1)

    def customer(env: simpy.Environment, i: int) -> Generator[Any, Any, None]:
        with server.request() as request:
            yield request
            yield env.timeout(services[i])

    def source(env: simpy.Environment) -> Generator[Any, Any, None]:
        for i in range(customers):
            yield env.timeout(gaps[i])
            env.process(customer(env, i))

    env.process(source(env))
    start = time.perf_counter()
    env.run()
    return customers / (time.perf_counter() - start)


def station_only(customers: int, seed: int = 1) -> float:
    """Customers per second of msgsim's Station under the same arrivals."""
    rng = np.random.default_rng(seed)
    gaps = rng.exponential(1 / RHO, customers).tolist()
    services = rng.exponential(1.0, customers).tolist()
    kernel = Kernel(seed)
    station = Station(kernel, "queue", 0, 1, 0.0)

    def done(_: Any) -> None:
        return None

    def arrive(i: int) -> None:
        station.submit(services[i], done, i)
        if i + 1 < customers:
            kernel.after(gaps[i + 1], arrive, i + 1)

    kernel.after(gaps[0], arrive, 0)
    start = time.perf_counter()
    kernel.run()
    return customers / (time.perf_counter() - start)


def full_simulator(customers: int, seed: int = 1) -> float:
    """Customers per second of the whole simulator configured as an M/M/1 queue."""
    rate = 100.0 * RHO
    scenario = queue_scenario(rate, {"dist": "exponential", "mean": 0.01}, 1, customers / rate, 1.0)
    start = time.perf_counter()
    result = simulate(scenario, seed, progress=False)
    wall = time.perf_counter() - start
    return len(result.messages) / wall


def bytes_per_idle_user(users: int) -> float:
    scenario = load_scenario(
        "websocket_microservices",
        {"workload.users": users, "workload.sessions.mean_online_s": 1e-9},
    )
    gc.collect()
    tracemalloc.start()
    model = Model(scenario, 1)
    current, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert model.sessions.online_count < users * 0.01
    return current / users


def bytes_per_simpy_process(count: int) -> float:
    env = simpy.Environment()

    def idle(env: simpy.Environment) -> Generator[Any, Any, None]:
        yield env.timeout(1e9)

    gc.collect()
    tracemalloc.start()
    processes = [env.process(idle(env)) for _ in range(count)]
    env.run(until=0.5)  # every process started and waiting on its timeout
    current, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del processes
    return current / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument(
        "--rounds", type=int, default=3, help="baseline and msgsim measured in turn, this often"
    )
    args = parser.parse_args()

    # the machine is shared: each round measures the baseline and msgsim back to back,
    # and the median of the rounds' ratios is the figure (the range shows the noise)
    rounds = []
    for _ in range(args.rounds):
        baseline = idiomatic_simpy(args.customers)
        rounds.append((baseline, station_only(args.customers), full_simulator(args.customers)))
    print(
        f"M/M/1 at rho={RHO}, {args.customers:,} customers, {args.rounds} rounds "
        "(customers per wall-clock second)"
    )
    for label, index, goal in (
        ("msgsim Station", 1, ""),
        ("msgsim full simulator", 2, "  (goal >= 0.8)"),
    ):
        ratios = sorted(r[index] / r[0] for r in rounds)
        print(
            f"  {label:<22} ratio to idiomatic SimPy: median {median(ratios):.2f}, "
            f"range {ratios[0]:.2f}-{ratios[-1]:.2f}{goal}"
        )
    for baseline, station, full in rounds:
        print(f"    round: SimPy {baseline:,.0f}, Station {station:,.0f}, full {full:,.0f}")

    per_process = bytes_per_simpy_process(100_000)
    per_user = bytes_per_idle_user(args.users)
    print(f"\nMemory per idle user at {args.users:,} users")
    print(f"  one idle SimPy process (baseline)  {per_process:>8,.0f} B")
    print(
        f"  msgsim idle user                   {per_user:>8,.0f} B   "
        f"ratio {per_user / per_process:.2f}  (goal <= 200 B)"
    )


if __name__ == "__main__":
    main()
