"""The simulator against queueing theory.

Each case configures the full simulator so that one tier is a textbook queue:
every user always online (so the aggregate of their Poisson sends is Poisson),
1:1 conversations, zero network delay, every other tier instantaneous (a
constant-0 service time takes no worker), one send attempt and no timeout.
The tier under test then sees Poisson arrivals and the chosen service
distribution, and its mean wait and probability of waiting are compared with
:mod:`sim.validation.queueing` through a confidence interval over independent replications.
The Jackson case makes gateway, message service and store three exponential
stations in tandem and compares the sender's mean ack latency, which is then
exactly the sojourn time through the tandem (:mod:`sim.validation.jackson`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from sim.core.statistics import mean_ci
from sim.model.result import Result
from sim.model.run import simulate
from sim.scenario.loader import load_scenario
from sim.scenario.schema import Scenario
from sim.validation import jackson, queueing

#: users in every validation scenario; each sends at rate / USERS
USERS = 200


def queue_scenario(
    arrival_rate_per_s: float,
    service_time_s: dict[str, Any] | float,
    servers: int,
    duration_s: float,
    warmup_s: float,
    *,
    tandem: Sequence[tuple[dict[str, Any] | float, int]] | None = None,
    name: str = "validation",
) -> Scenario:
    """A scenario in which the message service is one M/G/c queue (or a tandem)."""
    zero = {"dist": "constant", "value": 0}
    gateway: dict[str, Any] = {
        "instances": 1,
        "workers": 1,
        "service_time_s": zero,
        "push_time_s": zero,
    }
    service: dict[str, Any] = {"instances": 1, "workers": servers, "service_time_s": service_time_s}
    store: dict[str, Any] = {"workers": 1, "write_s": zero, "read_s": zero}
    if tandem is not None:
        (g_s, g_c), (s_s, s_c), (st_s, st_c) = tandem
        gateway = {"instances": 1, "workers": g_c, "service_time_s": g_s, "push_time_s": zero}
        service = {"instances": 1, "workers": s_c, "service_time_s": s_s}
        store = {"workers": st_c, "write_s": st_s, "read_s": zero}
    raw = {
        "name": name,
        "description": "queueing-theory validation case",
        "architecture": {
            "style": "microservices",
            "transport": {"kind": "websocket"},
            "auth": {"kind": "none"},
            "encryption": {"kind": "none"},
            "gateway": gateway,
            "service": service,
            "store": store,
            "resilience": {"timeout_s": 1e9, "retry": {"max_attempts": 1}},
            "network": {"client_rtt_s": 0, "internal_rtt_s": 0},
        },
        "workload": {
            "users": USERS,
            "sessions": {"mean_online_s": 1e9, "mean_offline_s": 0},
            "messages_per_user_per_hour": arrival_rate_per_s * 3600.0 / USERS,
            "conversations": {"group_fraction": 0.0},
        },
        "run": {
            "duration_s": duration_s,
            "warmup_s": warmup_s,
            "drain_s": 0.0,
            "interval_s": max(1.0, duration_s / 50),
        },
    }
    return load_scenario(raw)


@dataclass(frozen=True)
class Case:
    """One validation case: a scenario, a measure taken from each run, and the truth."""

    name: str
    metric: str
    scenario: Scenario
    measure: Callable[[Result], float]
    truth: float


@dataclass(frozen=True)
class CaseResult:
    name: str
    metric: str
    theory: float
    mean: float
    ci_low: float
    ci_high: float
    replications: int

    @property
    def passed(self) -> bool:
        return self.ci_low <= self.theory <= self.ci_high


def _service_row(result: Result) -> pd.Series:
    rows = result.stations[result.stations["tier"] == "service"]
    return rows.iloc[0]


def mean_wait(result: Result) -> float:
    return float(_service_row(result)["mean_wait_s"])


def p_wait(result: Result) -> float:
    return float(_service_row(result)["p_wait"])


def mean_ack_latency(result: Result) -> float:
    msgs = result.messages
    run_window = (
        (msgs["send_time_s"] >= result.meta["warmup_s"])
        & (msgs["send_time_s"] < result.meta["duration_s"])
        & msgs["acked"]
    )
    sel = msgs[run_window]
    return float((sel["ack_time_s"] - sel["send_time_s"]).mean())


def standard_cases(scale: float = 1.0) -> list[Case]:
    """The cases ``msgsim validate`` runs; ``scale`` shortens runs for quick checks.

    Service times are 10 ms (rate 100/s per server) unless said otherwise, so a
    run of ``duration_s`` serves about ``100 * rho * c * duration_s`` customers.
    """
    cases: list[Case] = []

    def exp(mean: float) -> dict[str, Any]:
        return {"dist": "exponential", "mean": mean}

    d = 600.0 * scale
    w = 60.0 * scale
    for rho in (0.5, 0.9):
        lam = rho * 100.0
        sc = queue_scenario(
            lam, exp(0.01), 1, d * (2 if rho > 0.8 else 1), w, name=f"M/M/1 rho={rho}"
        )
        q = queueing.mm1(lam, 100.0)
        cases.append(Case(sc.name, "mean_wait_s", sc, mean_wait, q.mean_wait_s))
        cases.append(Case(sc.name, "p_wait", sc, p_wait, q.p_wait))
    # M/M/c with c = 14 at 10 Erlangs: P(wait) = 0.1741
    sc = queue_scenario(1000.0, exp(0.01), 14, d / 4, w / 4, name="M/M/14 at 10 Erlangs")
    q14 = queueing.mmc(1000.0, 100.0, 14)
    cases.append(Case(sc.name, "p_wait", sc, p_wait, q14.p_wait))
    cases.append(Case(sc.name, "mean_wait_s", sc, mean_wait, q14.mean_wait_s))
    sc = queue_scenario(4 * 0.95 * 100.0, exp(0.01), 4, d, w, name="M/M/4 rho=0.95")
    q4 = queueing.mmc(380.0, 100.0, 4)
    cases.append(Case(sc.name, "mean_wait_s", sc, mean_wait, q4.mean_wait_s))
    cases.append(Case(sc.name, "p_wait", sc, p_wait, q4.p_wait))
    sc = queue_scenario(80.0, 0.01, 1, d, w, name="M/D/1 rho=0.8")
    cases.append(Case(sc.name, "mean_wait_s", sc, mean_wait, queueing.md1(80.0, 0.01).mean_wait_s))
    gamma = {"dist": "gamma", "mean": 0.01, "cv": 0.5}
    sc = queue_scenario(70.0, gamma, 1, d, w, name="M/G/1 gamma cv=0.5 rho=0.7")
    mg1 = queueing.mg1(70.0, 0.01, (0.01 * 0.5) ** 2)
    cases.append(Case(sc.name, "mean_wait_s", sc, mean_wait, mg1.mean_wait_s))
    lognormal = {"dist": "lognormal", "mean": 0.01, "cv": 1.5}
    sc = queue_scenario(60.0, lognormal, 1, d * 2, w, name="M/G/1 lognormal cv=1.5 rho=0.6")
    mg1b = queueing.mg1(60.0, 0.01, (0.01 * 1.5) ** 2)
    cases.append(Case(sc.name, "mean_wait_s", sc, mean_wait, mg1b.mean_wait_s))
    tandem = [(exp(0.01), 1), (exp(0.004), 2), (exp(0.005), 1)]
    sc = queue_scenario(
        70.0, 0, 1, d, w, tandem=tandem, name="Jackson tandem gateway-service-store"
    )
    net = jackson.jackson_tandem(70.0, [(100.0, 1), (250.0, 2), (200.0, 1)])
    cases.append(Case(sc.name, "mean_sojourn_s", sc, mean_ack_latency, net.mean_sojourn_s))
    return cases


def _replicate(case: Case, replications: int, seed: int) -> list[Result]:
    return [simulate(case.scenario, seed + i, progress=False) for i in range(replications)]


def run_case(
    case: Case, replications: int = 10, seed: int = 1, confidence: float = 0.95
) -> CaseResult:
    """Replicate a case and put a confidence interval around the measured mean."""
    values = [case.measure(r) for r in _replicate(case, replications, seed)]
    ci = mean_ci(np.asarray(values), confidence)
    return CaseResult(case.name, case.metric, case.truth, ci.mean, ci.low, ci.high, replications)


def validate_theory(
    replications: int = 10,
    scale: float = 1.0,
    seed: int = 1,
    progress: bool = False,
    confidence: float = 0.95,
    family: bool = True,
) -> pd.DataFrame:
    """Run every standard case; one row per case and metric, with pass/fail.

    ``ci_low``/``ci_high`` are the ``confidence`` interval of each check. With
    ``family`` (the default), a check passes when the theory lies inside its
    Bonferroni-corrected interval (``pass_low``/``pass_high``), so that the whole
    table passes with probability ``confidence`` when the simulator is right;
    judging a dozen checks by their own 95% intervals would fail one of them
    about half the time by chance alone.
    """
    from tqdm.auto import tqdm

    cases = standard_cases(scale)
    judged = 1 - (1 - confidence) / len(cases) if family else confidence
    cache: dict[str, list[Result]] = {}
    rows = []
    for case in tqdm(cases, desc="theory", disable=not progress, leave=False):
        runs = cache.get(case.name)
        if runs is None:
            runs = _replicate(case, replications, seed)
            cache[case.name] = runs
        values = np.asarray([case.measure(r) for r in runs])
        ci = mean_ci(values, confidence)
        wide = mean_ci(values, judged)
        rows.append(
            {
                "case": case.name,
                "metric": case.metric,
                "theory": case.truth,
                "simulated": ci.mean,
                "ci_low": ci.low,
                "ci_high": ci.high,
                "pass_low": wide.low,
                "pass_high": wide.high,
                "replications": replications,
                "pass": bool(wide.low <= case.truth <= wide.high),
            }
        )
    return pd.DataFrame(rows)
