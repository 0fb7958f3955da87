"""Run-wide counts have one route: a ``Count`` line on the Recorder reaches the result."""

from __future__ import annotations

import sim
from sim.core.metrics import COUNTS, Recorder


def test_every_run_wide_count_reaches_the_result() -> None:
    """A count declared on the Recorder is reported in meta["counters"] without
    being listed anywhere else (the one route for a new metric)."""
    rec = Recorder(1.0, 10.0, 0.0, 5.0)
    rec.write_errors += 3
    assert rec.counters()["write_errors"] == 3.0
    assert "write_errors" in COUNTS and "bytes_measured" not in COUNTS
    res = sim.run(
        "websocket_monolith",
        seed=1,
        overrides={"workload.users": 200, "run.duration_s": 60, "run.warmup_s": 10},
        progress=False,
    )
    assert set(COUNTS) <= set(res.meta["counters"])
    assert res.meta["counters"]["connect_attempts"] > 0
