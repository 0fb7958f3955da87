"""The benchmark scripts run (on tiny parameters) and print what their docs promise.

Benchmarks are not tests: their figures are measured by hand on a quiet machine.
These tests only keep ``make bench`` working: each script runs to the end and
prints its ratios and goals in the documented shape.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _run(script: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_engine_overhead_prints_both_ratios_and_the_bytes_per_idle_user() -> None:
    out = _run("engine_overhead.py", "--customers", "3000", "--users", "20000", "--rounds", "1")
    assert re.search(r"msgsim Station\s+ratio to idiomatic SimPy: median \d+\.\d+", out)
    assert re.search(r"full simulator\s+ratio to idiomatic SimPy: median \d+\.\d+", out)
    assert re.search(r"msgsim idle user\s+\d+ B\s+ratio \d\.\d+\s+\(goal <= 200 B\)", out)


def test_full_path_prints_deliveries_per_second_and_peak_memory() -> None:
    out = _run("full_path.py", "--users", "10000", "--duration-s", "60")
    assert re.search(r"10,000 users, 60 simulated s: wall [\d.]+ s, [\d,]+ messages", out)
    assert re.search(r"[\d,]+ deliveries/s", out)
    assert re.search(r"peak memory \(max RSS\): [\d,]+ MB", out)


def test_where_time_goes_accounts_for_the_calls_of_a_run() -> None:
    out = _run("where_time_goes.py", "--users", "5000", "--duration-s", "60", "--top", "5")
    head = re.search(r"wall [\d.]+ s \((\d+)% in scheduled calls\), ([\d,]+) calls", out)
    assert head is not None and int(head[2].replace(",", "")) > 0
    shares = [float(s) for s in re.findall(r"^\s*(\d+\.\d)%\s", out, flags=re.M)]
    # the five biggest callbacks, biggest first, each a share of the calls' time
    assert len(shares) == 5 and shares == sorted(shares, reverse=True) and sum(shares) <= 100.0
    assert "Station._finish" in out
