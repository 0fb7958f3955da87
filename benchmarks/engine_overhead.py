"""Engine overhead and memory per idle user, as ratios against baselines measured in the same run.

1. Throughput on an M/M/1 queue (customers per wall-clock second):
   - baseline: an idiomatic hand-written SimPy model (a source process, one
     process per customer, a ``simpy.Resource``);
   - msgsim's ``Station`` alone, driven the same way;
   - the whole simulator (``sim.engine.simulate``) configured as an M/M/1 queue
     (``sim.validation.theory.queue_scenario``): users, clients, message
     service, checker and result frames included.
2. Memory per idle user at 1,000,000 users (a built model, nobody online),
   against the memory of one idle SimPy process per user (measured on 100,000).

Run: ``.venv/bin/python benchmarks/engine_overhead.py [--customers N]``.
The machine is shared and noisy: compare the ratios, not the absolute figures.
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc
from collections.abc import Generator
from typing import Any

import numpy as np
import simpy

from sim.components.station import Station
from sim.engine import Model, simulate
from sim.kernel import Kernel
from sim.loader import load_scenario
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
    kernel.env.run()
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
    args = parser.parse_args()

    baseline = idiomatic_simpy(args.customers)
    station = station_only(args.customers)
    full = full_simulator(args.customers)
    print(f"M/M/1 at rho={RHO}, {args.customers:,} customers (customers per wall-clock second)")
    print(f"  idiomatic SimPy (baseline)    {baseline:>12,.0f}")
    print(f"  msgsim Station                {station:>12,.0f}   ratio {station / baseline:.2f}")
    print(
        f"  msgsim full simulator         {full:>12,.0f}   ratio {full / baseline:.2f}"
        "  (goal >= 0.8)"
    )

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
