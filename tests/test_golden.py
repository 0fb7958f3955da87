"""Every library scenario, seeds 1-3, gives the frames it gave when the digests were
recorded (``python tests/golden.py`` records them again after an intended change of
behaviour; a refactoring must leave them as they are)."""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor

import pytest
from golden import DATA, FRAMES, SEEDS, digests, library_scenarios

RECORDED: dict[str, dict[str, str]] = json.loads(DATA.read_text())


def _job(key: str) -> tuple[str, dict[str, str]]:
    name, seed = key.split("@")
    return key, digests(name, int(seed))


@pytest.fixture(scope="module")
def computed() -> dict[str, dict[str, str]]:
    keys = [f"{name}@{seed}" for name in library_scenarios() for seed in SEEDS]
    # the slow polling runs first, so the two workers finish together
    keys.sort(key=lambda k: not k.startswith("http_polling"))
    with ProcessPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(_job, keys))


def test_every_library_scenario_has_recorded_digests() -> None:
    expected = {f"{name}@{seed}" for name in library_scenarios() for seed in SEEDS}
    assert set(RECORDED) == expected


@pytest.mark.parametrize("key", sorted(RECORDED))
def test_frames_equal_the_recorded_ones(key: str, computed: dict[str, dict[str, str]]) -> None:
    differ = [f for f in FRAMES if computed[key][f] != RECORDED[key][f]]
    assert not differ, f"{key}: {', '.join(differ)} differ from the recorded digests"
