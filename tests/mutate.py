"""Planted bugs: does the test suite catch them?

Each *mutant* is one small, realistic bug, written as an exact replacement of
a few lines of the code. For each, the checkout is copied to a temporary
folder, the bug is planted in the copy, and the tests that should catch it run
there; the mutant is *caught* when they fail. A mutant whose lines are no
longer in the code is reported as *stale* (the code moved: write it again),
never silently skipped.

Run: ``make mutate``, or ``python tests/mutate.py [NAME ...] [--list]`` from the
checkout. Prints one row per mutant and exits 1 if any was missed or stale.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutant:
    """One planted bug: in ``path``, ``old`` (found exactly once) becomes ``new``."""

    name: str
    what: str
    path: str
    old: str
    new: str
    #: the test files (or node ids) that should catch it
    tests: tuple[str, ...]


MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "dedup_off",
        "the client displays a redelivered message again instead of dropping it",
        "sim/model/client/timeline.py",
        "            if seq <= current or (held is not None and seq in held):\n"
        "                rec.redelivered += 1\n"
        "                continue\n",
        "            if seq <= current or (held is not None and seq in held):\n"
        "                rec.display(msg, user, now, msg.send_s, path)\n"
        "                continue\n",
        ("tests/test_sim_vs_reference.py", "tests/test_sim_durability_path.py"),
    ),
    Mutant(
        "kafka_acks_all_at_the_leader",
        "Kafka acks=all acknowledges when the leader has appended, like acks=1",
        "sim/components/brokers/kafka_producer.py",
        "        if self._acks1:\n            for req in batch:\n",
        "        if self._acks1 or self._acks_all:\n            for req in batch:\n",
        ("tests/test_sim_kafka.py",),
    ),
    Mutant(
        "kafka_acks_1_at_the_high_watermark",
        "Kafka acks=1 waits for the high watermark, like acks=all",
        "sim/components/brokers/kafka_producer.py",
        "        if self._acks1:\n"
        "            for req in batch:\n"
        "                req.acked = True\n"
        "                req.ok(req.msg)\n"
        "        elif self._acks_all:\n",
        "        if False:\n"
        "            for req in batch:\n"
        "                req.acked = True\n"
        "                req.ok(req.msg)\n"
        "        elif self._acks_all or self._acks1:\n",
        ("tests/test_sim_kafka.py",),
    ),
    Mutant(
        "stations_2pct_slower",
        "every station serves 2 % slower than its service time says",
        "sim/components/station.py",
        "        self.jobs += 1\n        if self.factor != 1.0:\n",
        "        self.jobs += 1\n        cost_s *= 1.02\n        if self.factor != 1.0:\n",
        ("tests/test_sim_validation_theory.py",),
    ),
    Mutant(
        "token_bucket_without_its_burst_cap",
        "a user's token bucket fills beyond its burst while the user is idle",
        "sim/components/security/ratelimit.py",
        "            if tokens > self.burst:\n                tokens = self.burst\n",
        "",
        ("tests/test_sim_security.py",),
    ),
    Mutant(
        "fixed_window_detector",
        "the abuse detector counts the current fixed window only, not the sliding estimate",
        "sim/components/security/detector.py",
        "        estimate = state[2] * (1.0 - elapsed / window_s) + state[1]\n",
        "        estimate = state[1]\n",
        ("tests/test_sim_detector.py",),
    ),
    Mutant(
        "introspection_cache_25pct_too_long",
        "the gateway keeps introspection answers 25 % longer than cache_ttl_s",
        "sim/components/security/introspection.py",
        "            if cached_s is not None and now - cached_s < ttl:\n",
        "            if cached_s is not None and now - cached_s < ttl * 1.25:\n",
        ("tests/test_sim_security.py",),
    ),
    Mutant(
        "checker_ignores_duplicates",
        "the outcome checker never counts a message displayed twice to one member",
        "sim/model/checker.py",
        "    return displayed, np.bincount(pair, minlength=n) - displayed\n",
        "    return displayed, np.zeros(n, dtype=np.int64)\n",
        ("tests/test_sim_checker.py", "tests/test_sim_message_path.py"),
    ),
    Mutant(
        "checker_by_count",
        "the outcome checker counts distinct recipients, the sender and outsiders included,"
        " instead of members",
        "sim/model/checker.py",
        "        member &= ~own  # from here on only members' displays are judged\n",
        "        member[:] = True\n",
        ("tests/test_sim_checker.py",),
    ),
)


def _copy_checkout(into: Path) -> None:
    """The checkout's tracked and untracked (not ignored) files, as they are now."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for raw in listed:
        if not raw:
            continue
        rel = Path(raw.decode())
        source = ROOT / rel
        if source.is_file():
            target = into / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def _pytest(copy: Path, tests: tuple[str, ...]) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {**os.environ, "PYTHONPATH": str(copy), "MSGSIM_HYPOTHESIS_PROFILE": "ci"}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
    )
    return done, time.perf_counter() - start


def baseline_passes(mutants: list[Mutant]) -> bool:
    """The chosen mutants' tests pass on the unmutated copy (else a "catch" means nothing)."""
    tests = tuple(sorted({t for m in mutants for t in m.tests}))
    with tempfile.TemporaryDirectory(prefix="mutant-baseline-") as tmp:
        _copy_checkout(Path(tmp))
        done, _ = _pytest(Path(tmp), tests)
    if done.returncode != 0:
        print((done.stdout + done.stderr)[-2000:])
    return done.returncode == 0


def run_mutant(mutant: Mutant) -> tuple[str, float]:
    """``caught``, ``MISSED`` or ``STALE``, and the seconds the tests took."""
    with tempfile.TemporaryDirectory(prefix=f"mutant-{mutant.name}-") as tmp:
        copy = Path(tmp)
        _copy_checkout(copy)
        target = copy / mutant.path
        if not target.is_file():
            return "STALE", 0.0
        text = target.read_text()
        if text.count(mutant.old) != 1:
            return "STALE", 0.0
        target.write_text(text.replace(mutant.old, mutant.new))
        done, took = _pytest(copy, mutant.tests)
    if done.returncode == 1:
        return "caught", took
    if done.returncode == 0:
        return "MISSED", took
    tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
    raise RuntimeError(f"{mutant.name}: pytest exited {done.returncode}: {' | '.join(tail)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="mutants to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the mutants and stop")
    args = parser.parse_args(argv)
    known = {m.name: m for m in MUTANTS}
    unknown = [n for n in args.names if n not in known]
    if unknown:
        parser.error(f"unknown mutant(s) {', '.join(unknown)}; known: {', '.join(known)}")
    chosen = [known[n] for n in args.names] if args.names else list(MUTANTS)
    if args.list:
        for m in chosen:
            print(f"{m.name:38} {m.what}")
        return 0
    if not baseline_passes(chosen):
        print("the tests fail without any planted bug: fix them first")
        return 2
    bad = 0
    print(f"{'mutant':38} {'result':7} {'tests (s)':>9}  tests")
    for m in chosen:
        verdict, took = run_mutant(m)
        bad += verdict != "caught"
        print(f"{m.name:38} {verdict:7} {took:9.1f}  {' '.join(m.tests)}", flush=True)
    print(f"{len(chosen) - bad} of {len(chosen)} planted bugs caught")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
