"""Exact steady-state results of classic queues, to validate the simulator against.

The simulator's components are checked by running them as textbook queues and
comparing the simulated mean wait and probability of waiting with the values here,
within confidence intervals over replications.

Each model is computed from its own textbook formula rather than as a special case
of a more general one (M/M/1 does not call M/M/c, M/D/1 does not call M/G/1), so the
tests can cross-check the models against each other. Networks of M/M/c stations
are in :mod:`sim.validation.jackson`.

Units: rates are per second, times are seconds, loads are Erlangs, queue lengths
are numbers of customers. Every public function validates its arguments
(:mod:`sim.validation.arguments`) and raises :class:`ValueError` naming the
parameter, the value given and what is allowed; a queue whose utilisation is not
below 1 has no steady state and is rejected too.

Sources:
    Kleinrock, *Queueing Systems, Vol. 1: Theory*, Wiley, 1975 (ch. 3: M/M/1,
    M/M/m and Erlang's formulas; ch. 5: M/G/1 and the Pollaczek–Khinchine formula).
    Gross, Shortle, Thompson & Harris, *Fundamentals of Queueing Theory*, 4th ed.,
    Wiley, 2008 (ch. 2: Markovian queues and their waiting-time distributions;
    ch. 5: M/G/1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sim.validation.arguments import check_stable, non_negative, positive, positive_int

__all__ = [
    "MMcMetrics",
    "QueueMetrics",
    "erlang_c",
    "md1",
    "mg1",
    "mm1",
    "mmc",
]


@dataclass(frozen=True)
class QueueMetrics:
    """Steady-state performance of one queue (one station).

    Attributes:
        arrival_rate_per_s: mean arrival rate λ, customers per second.
        service_rate_per_s: mean service rate μ of *one* server, per second.
        servers: number of identical servers c.
        utilisation: ρ = λ / (c μ), the fraction of time each server is busy.
        p_wait: probability that an arriving customer finds all servers busy and
            has to queue (by PASTA, equal to the time-average probability).
        mean_wait_s: Wq, mean time spent queueing before service starts, seconds.
        mean_sojourn_s: W = Wq + 1/μ, mean time from arrival to departure, seconds.
        mean_queue_length: Lq, mean number of customers waiting (not in service).
        mean_in_system: L, mean number of customers waiting or in service.
    """

    arrival_rate_per_s: float
    service_rate_per_s: float
    servers: int
    utilisation: float
    p_wait: float
    mean_wait_s: float
    mean_sojourn_s: float
    mean_queue_length: float
    mean_in_system: float


@dataclass(frozen=True)
class MMcMetrics(QueueMetrics):
    """Metrics of an M/M/c queue, whose waiting-time distribution is known exactly.

    Only the exponential-service queues get this type: for M/D/1 and M/G/1 the
    waiting-time tail has no simple closed form, so it is not offered.
    """

    def p_wait_exceeds(self, wait_s: float) -> float:
        """Probability that an arrival queues for longer than ``wait_s`` seconds.

        P(Wq > t) = C(c, a) · exp(-(cμ - λ) t) for FCFS service, where C is the
        Erlang C probability of waiting (Gross et al., *Fundamentals of Queueing
        Theory*, 4th ed., 2008, ch. 2). At t = 0 this is :attr:`p_wait`.

        Args:
            wait_s: the waiting-time threshold t, seconds, finite and >= 0.

        Returns:
            The probability, in [0, 1].

        Raises:
            ValueError: if ``wait_s`` is negative or not a finite number.
        """
        t = non_negative("wait_s", wait_s)
        drain_rate_per_s = self.servers * self.service_rate_per_s - self.arrival_rate_per_s
        return self.p_wait * math.exp(-drain_rate_per_s * t)


def erlang_c(servers: int, offered_load_erlangs: float) -> float:
    """Erlang's C formula: probability that an arrival to an M/M/c queue must wait.

    Computed from the Erlang B (loss) recursion
    B(0) = 1, B(k) = a·B(k-1) / (k + a·B(k-1)), then C = c·B / (c - a·(1 - B)).
    Every step stays in [0, 1], so this is stable for hundreds or thousands of
    servers where the textbook sum of a^k / k! overflows (Kleinrock, *Queueing
    Systems Vol. 1*, 1975, ch. 3; Gross et al., *Fundamentals of Queueing Theory*,
    4th ed., 2008, ch. 2).

    Args:
        servers: number of servers c, an integer >= 1.
        offered_load_erlangs: a = λ/μ, in Erlangs, > 0 and < ``servers``.

    Returns:
        The probability of waiting, in [0, 1].

    Raises:
        ValueError: if an argument is out of range, or a >= c (unstable queue).
    """
    c = positive_int("servers", servers)
    a = positive("offered_load_erlangs", offered_load_erlangs)
    check_stable(a / c, f"offered_load_erlangs={a!r}, servers={c!r}")
    return _erlang_c(c, a)


def mm1(arrival_rate_per_s: float, service_rate_per_s: float) -> MMcMetrics:
    """Exact steady state of the M/M/1 queue (FCFS).

    ρ = λ/μ, P(wait) = ρ, Wq = ρ / (μ - λ), Lq = ρ² / (1 - ρ), L = ρ / (1 - ρ)
    (Kleinrock, *Queueing Systems Vol. 1*, 1975, ch. 3; Gross et al.,
    *Fundamentals of Queueing Theory*, 4th ed., 2008, ch. 2).

    Args:
        arrival_rate_per_s: Poisson arrival rate λ, per second, > 0.
        service_rate_per_s: exponential service rate μ, per second, > λ.

    Returns:
        The metrics, with the exact waiting-time tail.

    Raises:
        ValueError: if a rate is not a finite number > 0, or λ >= μ (unstable).
    """
    lam = positive("arrival_rate_per_s", arrival_rate_per_s)
    mu = positive("service_rate_per_s", service_rate_per_s)
    rho = lam / mu
    check_stable(rho, f"arrival_rate_per_s={lam!r}, service_rate_per_s={mu!r}")
    return MMcMetrics(
        arrival_rate_per_s=lam,
        service_rate_per_s=mu,
        servers=1,
        utilisation=rho,
        p_wait=rho,
        mean_wait_s=rho / (mu - lam),
        mean_sojourn_s=1.0 / (mu - lam),
        mean_queue_length=rho * rho / (1.0 - rho),
        mean_in_system=rho / (1.0 - rho),
    )


def mmc(arrival_rate_per_s: float, service_rate_per_s: float, servers: int) -> MMcMetrics:
    """Exact steady state of the M/M/c queue (FCFS, one shared queue).

    With a = λ/μ, ρ = a/c and C the Erlang C probability (:func:`erlang_c`):
    Wq = C / (cμ - λ), Lq = C·ρ / (1 - ρ), W = Wq + 1/μ, L = Lq + a
    (Kleinrock, *Queueing Systems Vol. 1*, 1975, ch. 3; Gross et al.,
    *Fundamentals of Queueing Theory*, 4th ed., 2008, ch. 2).

    Args:
        arrival_rate_per_s: Poisson arrival rate λ, per second, > 0.
        service_rate_per_s: exponential service rate μ of one server, per second, > 0.
        servers: number of servers c, an integer >= 1, with λ < cμ.

    Returns:
        The metrics, with the exact waiting-time tail.

    Raises:
        ValueError: if an argument is out of range, or λ >= cμ (unstable).
    """
    lam = positive("arrival_rate_per_s", arrival_rate_per_s)
    mu = positive("service_rate_per_s", service_rate_per_s)
    c = positive_int("servers", servers)
    check_stable(
        lam / (c * mu),
        f"arrival_rate_per_s={lam!r}, service_rate_per_s={mu!r}, servers={c!r}",
    )
    return mmc_unchecked(lam, mu, c)


def md1(arrival_rate_per_s: float, service_time_s: float) -> QueueMetrics:
    """Exact steady state of the M/D/1 queue (constant service time, FCFS).

    With μ = 1/D and ρ = λD: P(wait) = ρ, Wq = ρ / (2μ(1 - ρ)),
    Lq = ρ² / (2(1 - ρ)), half the M/M/1 values at the same ρ (Kleinrock,
    *Queueing Systems Vol. 1*, 1975, ch. 5; Gross et al., *Fundamentals of
    Queueing Theory*, 4th ed., 2008, ch. 5).

    Args:
        arrival_rate_per_s: Poisson arrival rate λ, per second, > 0.
        service_time_s: the constant service time D, seconds, > 0 and < 1/λ.

    Returns:
        The metrics (no waiting-time tail: it has no simple closed form).

    Raises:
        ValueError: if an argument is not a finite number > 0, or λD >= 1 (unstable).
    """
    lam = positive("arrival_rate_per_s", arrival_rate_per_s)
    service_s = positive("service_time_s", service_time_s)
    rho = lam * service_s
    check_stable(rho, f"arrival_rate_per_s={lam!r}, service_time_s={service_s!r}")
    mean_wait_s = rho * service_s / (2.0 * (1.0 - rho))
    mean_queue_length = rho * rho / (2.0 * (1.0 - rho))
    return QueueMetrics(
        arrival_rate_per_s=lam,
        service_rate_per_s=1.0 / service_s,
        servers=1,
        utilisation=rho,
        p_wait=rho,
        mean_wait_s=mean_wait_s,
        mean_sojourn_s=mean_wait_s + service_s,
        mean_queue_length=mean_queue_length,
        mean_in_system=mean_queue_length + rho,
    )


def mg1(
    arrival_rate_per_s: float, mean_service_s: float, service_variance_s2: float
) -> QueueMetrics:
    """Exact mean steady state of the M/G/1 queue, by Pollaczek–Khinchine.

    With ρ = λ·E[S] and E[S²] = Var[S] + E[S]²:
    Wq = λ·E[S²] / (2(1 - ρ)), Lq = (ρ² + λ²·Var[S]) / (2(1 - ρ)), P(wait) = ρ
    (Kleinrock, *Queueing Systems Vol. 1*, 1975, ch. 5; Gross et al.,
    *Fundamentals of Queueing Theory*, 4th ed., 2008, ch. 5). Only the first two
    moments of service matter for these means, and the result holds for any
    work-conserving order that does not use service times (FCFS, LCFS, random).

    Args:
        arrival_rate_per_s: Poisson arrival rate λ, per second, > 0.
        mean_service_s: mean service time E[S], seconds, > 0 and < 1/λ.
        service_variance_s2: variance of the service time, seconds², >= 0.

    Returns:
        The metrics (no waiting-time tail: it depends on the whole distribution).

    Raises:
        ValueError: if an argument is out of range, or λ·E[S] >= 1 (unstable).
    """
    lam = positive("arrival_rate_per_s", arrival_rate_per_s)
    mean_s = positive("mean_service_s", mean_service_s)
    variance_s2 = non_negative("service_variance_s2", service_variance_s2)
    rho = lam * mean_s
    check_stable(rho, f"arrival_rate_per_s={lam!r}, mean_service_s={mean_s!r}")
    second_moment_s2 = variance_s2 + mean_s * mean_s
    mean_wait_s = lam * second_moment_s2 / (2.0 * (1.0 - rho))
    mean_queue_length = (rho * rho + lam * lam * variance_s2) / (2.0 * (1.0 - rho))
    return QueueMetrics(
        arrival_rate_per_s=lam,
        service_rate_per_s=1.0 / mean_s,
        servers=1,
        utilisation=rho,
        p_wait=rho,
        mean_wait_s=mean_wait_s,
        mean_sojourn_s=mean_wait_s + mean_s,
        mean_queue_length=mean_queue_length,
        mean_in_system=mean_queue_length + rho,
    )


def mmc_unchecked(lam: float, mu: float, c: int) -> MMcMetrics:
    """M/M/c metrics for trusted arguments with λ < cμ; λ = 0 gives an idle station.

    For callers that have checked the arguments already, as
    :mod:`sim.validation.jackson` does for each station of a network (where a
    station no traffic reaches is idle, which :func:`mmc` would reject).
    """
    offered_erlangs = lam / mu
    rho = offered_erlangs / c
    p_wait = _erlang_c(c, offered_erlangs)
    mean_wait_s = p_wait / (c * mu - lam)
    mean_queue_length = p_wait * rho / (1.0 - rho)
    return MMcMetrics(
        arrival_rate_per_s=lam,
        service_rate_per_s=mu,
        servers=c,
        utilisation=rho,
        p_wait=p_wait,
        mean_wait_s=mean_wait_s,
        mean_sojourn_s=mean_wait_s + 1.0 / mu,
        mean_queue_length=mean_queue_length,
        mean_in_system=mean_queue_length + offered_erlangs,
    )


def _erlang_c(c: int, a: float) -> float:
    """Erlang C for trusted arguments with 0 <= a < c (see :func:`erlang_c`)."""
    blocking = 1.0
    for k in range(1, c + 1):
        blocking = a * blocking / (k + a * blocking)
    return c * blocking / (c - a * (1.0 - blocking))
