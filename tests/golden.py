"""Digests of every library scenario's result frames, to prove a change kept behaviour.

``python tests/golden.py`` (from the checkout) records ``tests/data/golden_digests.json``
from the code as it stands; ``tests/test_golden.py`` recomputes the digests and
compares. Floats are rounded to 9 decimals before hashing, so a change in the last
bit of a sum's order does not count, anything a user could see does.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

import sim

#: the frames a refactoring must leave identical
FRAMES = ("summary", "deliveries", "timeseries", "faults")
SEEDS = (1, 2, 3)
DATA = Path(__file__).parent / "data" / "golden_digests.json"


def library_scenarios() -> list[str]:
    """Every preset and failure-library scenario, by name."""
    return sorted(p.name for p in sim.list_presets() if p.kind in ("presets", "failures"))


def frame_digest(frame: pd.DataFrame) -> str:
    """sha256 of a frame's columns, dtypes, index and values (floats to 9 decimals)."""
    h = hashlib.sha256()
    h.update(repr(list(frame.columns)).encode())
    h.update(repr([str(t) for t in frame.dtypes]).encode())
    h.update(str(len(frame)).encode())
    for name in frame.columns:
        col = frame[name]
        if col.dtype.kind == "f":
            values = np.round(col.to_numpy(dtype="float64"), 9)
            values[values == 0.0] = 0.0  # -0.0 and 0.0 alike
            h.update(values.tobytes())
        else:
            h.update(pd.util.hash_pandas_object(col, index=False).to_numpy().tobytes())
    h.update(pd.util.hash_pandas_object(frame.index.to_frame(), index=False).to_numpy().tobytes())
    return h.hexdigest()


def digests(name: str, seed: int) -> dict[str, str]:
    res = sim.run(sim.load_scenario(name), seed=seed, progress=False)
    return {frame: frame_digest(getattr(res, frame)) for frame in FRAMES}


def main() -> int:
    names = sys.argv[1:] or library_scenarios()
    out: dict[str, dict[str, str]] = {}
    for name in names:
        for seed in SEEDS:
            start = time.perf_counter()
            out[f"{name}@{seed}"] = digests(name, seed)
            print(f"{name} seed {seed}: {time.perf_counter() - start:.1f} s", flush=True)
    if DATA.exists() and sys.argv[1:]:
        out = {**json.loads(DATA.read_text()), **out}
    DATA.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
