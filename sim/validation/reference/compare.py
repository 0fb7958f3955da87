"""The comparison: seeded scripts through both systems, their outcomes compared.

:func:`validate_reference` (``msgsim validate``) runs each seeded script through
the reference once and through the simulator twice, with instant links and with
timed ones (:data:`~sim.validation.reference.simulator.LINKS`); a script is equal
when both simulated outcomes equal the reference's. A :class:`Mismatch` keeps the
script and the differences; a :class:`ReferenceSummary` counts what was compared.
:data:`KNOWN_DIFFERENCES` names the semantic differences found between the two
implementations (none at present).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sim.validation.reference.driver import run_reference
from sim.validation.reference.script import Script, seeded_scripts
from sim.validation.reference.simulator import LINKS, run_simulator

KNOWN_DIFFERENCES: dict[str, str] = {}
"""Semantic differences found between the two implementations, kept out of the
generated scripts and pinned by tests/test_sim_vs_reference.py."""


@dataclass(frozen=True)
class Mismatch:
    """A script whose outcomes differ, and how (``links``: the simulator's variant)."""

    index: int
    script: Script
    differences: list[str]
    links: str = "instant"


@dataclass(frozen=True)
class ReferenceSummary:
    """What :func:`validate_reference` compared."""

    scripts: int
    equal: int
    mismatches: list[Mismatch]
    operations: int
    sends: int
    wall_s: float

    @property
    def passed(self) -> bool:
        return self.equal == self.scripts

    def line(self) -> str:
        return (
            f"simulator vs reference: {self.scripts} scripts, {self.equal} equal outcomes "
            "(each run with instant links and with timed ones)"
        )


def validate_reference(examples: int = 100, seed: int = 1) -> ReferenceSummary:
    """Run ``examples`` seeded scripts through both systems and compare the outcomes;
    the simulator runs each script twice, with instant links and with timed ones
    (:data:`LINKS`), and a script is equal when both runs equal the reference's."""
    started = time.perf_counter()
    mismatches = []
    operations = sends = 0
    for i, script in enumerate(seeded_scripts(examples, seed)):
        operations += len(script.ops)
        sends += script.sends
        reference = run_reference(script, seed)
        for links in LINKS:
            simulated = run_simulator(script, seed, timed=links == "timed")
            diff = simulated.differences(reference)
            if diff:
                mismatches.append(Mismatch(i, script, diff, links))
                break
    return ReferenceSummary(
        scripts=examples,
        equal=examples - len(mismatches),
        mismatches=mismatches,
        operations=operations,
        sends=sends,
        wall_s=time.perf_counter() - started,
    )


__all__ = ["KNOWN_DIFFERENCES", "Mismatch", "ReferenceSummary", "validate_reference"]
