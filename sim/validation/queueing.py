"""Exact steady-state results of classic queues, to validate the simulator against.

The simulator's components are checked by running them as textbook queues and
comparing the simulated mean wait and probability of waiting with the values here,
within confidence intervals over replications.

Each model is computed from its own textbook formula rather than as a special case
of a more general one (M/M/1 does not call M/M/c, M/D/1 does not call M/G/1), so the
tests can cross-check the models against each other.

Units: rates are per second, times are seconds, loads are Erlangs, queue lengths
are numbers of customers. Every public function validates its arguments and raises
:class:`ValueError` naming the parameter, the value given and what is allowed; a
queue whose utilisation is not below 1 has no steady state and is rejected too.

Sources:
    Kleinrock, *Queueing Systems, Vol. 1: Theory*, Wiley, 1975 (ch. 3: M/M/1,
    M/M/m and Erlang's formulas; ch. 5: M/G/1 and the Pollaczek–Khinchine formula).
    Gross, Shortle, Thompson & Harris, *Fundamentals of Queueing Theory*, 4th ed.,
    Wiley, 2008 (ch. 2: Markovian queues and their waiting-time distributions;
    ch. 4: series queues and open Jackson networks; ch. 5: M/G/1).
    Burke, "The output of a queuing system", Operations Research 4(6), 1956.
    Jackson, "Networks of waiting lines", Operations Research 5(4), 1957.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
import numpy.typing as npt

__all__ = [
    "MMcMetrics",
    "NetworkMetrics",
    "QueueMetrics",
    "erlang_c",
    "jackson_network",
    "jackson_tandem",
    "md1",
    "mg1",
    "mm1",
    "mmc",
]

# Row sums of a routing matrix may exceed 1 by this much (rounding in user input).
_ROW_SUM_TOLERANCE = 1e-9


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
        t = _non_negative("wait_s", wait_s)
        drain_rate_per_s = self.servers * self.service_rate_per_s - self.arrival_rate_per_s
        return self.p_wait * math.exp(-drain_rate_per_s * t)


@dataclass(frozen=True)
class NetworkMetrics:
    """Steady-state performance of an open Jackson network of M/M/c stations.

    Attributes:
        stations: per-station metrics, in station order; each station's
            ``arrival_rate_per_s`` is its total arrival rate from the traffic
            equations (external plus routed traffic).
        external_arrival_rate_per_s: total rate of customers entering the network
            from outside, per second (equal to the rate leaving it).
        mean_in_system: mean number of customers anywhere in the network.
        mean_sojourn_s: mean time from entering to leaving the network, seconds,
            by Little's law: ``mean_in_system / external_arrival_rate_per_s``.
    """

    stations: tuple[MMcMetrics, ...]
    external_arrival_rate_per_s: float
    mean_in_system: float
    mean_sojourn_s: float


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
    c = _positive_int("servers", servers)
    a = _positive("offered_load_erlangs", offered_load_erlangs)
    _check_stable(a / c, f"offered_load_erlangs={a!r}, servers={c!r}")
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
    lam = _positive("arrival_rate_per_s", arrival_rate_per_s)
    mu = _positive("service_rate_per_s", service_rate_per_s)
    rho = lam / mu
    _check_stable(rho, f"arrival_rate_per_s={lam!r}, service_rate_per_s={mu!r}")
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
    lam = _positive("arrival_rate_per_s", arrival_rate_per_s)
    mu = _positive("service_rate_per_s", service_rate_per_s)
    c = _positive_int("servers", servers)
    _check_stable(
        lam / (c * mu),
        f"arrival_rate_per_s={lam!r}, service_rate_per_s={mu!r}, servers={c!r}",
    )
    return _mmc(lam, mu, c)


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
    lam = _positive("arrival_rate_per_s", arrival_rate_per_s)
    service_s = _positive("service_time_s", service_time_s)
    rho = lam * service_s
    _check_stable(rho, f"arrival_rate_per_s={lam!r}, service_time_s={service_s!r}")
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
    lam = _positive("arrival_rate_per_s", arrival_rate_per_s)
    mean_s = _positive("mean_service_s", mean_service_s)
    variance_s2 = _non_negative("service_variance_s2", service_variance_s2)
    rho = lam * mean_s
    _check_stable(rho, f"arrival_rate_per_s={lam!r}, mean_service_s={mean_s!r}")
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


def jackson_tandem(
    arrival_rate_per_s: float, stations: Sequence[tuple[float, int]]
) -> NetworkMetrics:
    """Exact steady state of M/M/c stations in series, fed by one Poisson stream.

    By Burke's theorem the departures of a stable M/M/c queue are Poisson at the
    arrival rate, so each station behaves as an independent M/M/c queue with the
    external arrival rate, and the end-to-end mean sojourn is the sum of the
    stations' (Burke, 1956; Gross et al., *Fundamentals of Queueing Theory*, 4th
    ed., 2008, ch. 4). Computed as the Jackson network whose routing sends all
    of station i's output to station i + 1.

    Args:
        arrival_rate_per_s: Poisson arrival rate into the first station, per second, > 0.
        stations: one ``(service_rate_per_s, servers)`` pair per station, in the
            order customers visit them; at least one, each rate > 0, each
            ``servers`` an integer >= 1.

    Returns:
        Per-station metrics and the end-to-end mean sojourn.

    Raises:
        ValueError: if an argument is out of range, or a station is unstable.
    """
    lam = _positive("arrival_rate_per_s", arrival_rate_per_s)
    if isinstance(stations, str | bytes) or not isinstance(stations, Sequence):
        raise ValueError(
            f"stations must be a sequence of (service_rate_per_s, servers) pairs, got {stations!r}"
        )
    if len(stations) == 0:
        raise ValueError("stations must hold at least one station, got []")
    service_rates_per_s: list[float] = []
    servers: list[int] = []
    for index, station in enumerate(stations):
        if (
            isinstance(station, str | bytes)
            or not isinstance(station, Sequence)
            or len(station) != 2
        ):
            raise ValueError(
                f"stations[{index}] must be a (service_rate_per_s, servers) pair, got {station!r}"
            )
        service_rates_per_s.append(_positive(f"stations[{index}] service_rate_per_s", station[0]))
        servers.append(_positive_int(f"stations[{index}] servers", station[1]))
    count = len(stations)
    external_per_s = np.zeros(count)
    external_per_s[0] = lam
    routing = np.eye(count, k=1)
    return _jackson(external_per_s, routing, np.array(service_rates_per_s), servers)


def jackson_network(
    external_rates_per_s: Sequence[float],
    routing_matrix: npt.ArrayLike,
    service_rates_per_s: Sequence[float],
    servers: Sequence[int],
) -> NetworkMetrics:
    """Exact steady state of an open Jackson network of M/M/c stations.

    The total arrival rates solve the traffic equations λ = γ + Pᵀλ; Jackson's
    theorem then makes each station an M/M/c queue at rate λᵢ, independent of the
    others in steady state, and the network's mean sojourn is ΣLᵢ / Σγᵢ by Little's
    law (Jackson, 1957; Gross et al., *Fundamentals of Queueing Theory*, 4th ed.,
    2008, ch. 4). Stations that no traffic reaches are reported idle.

    Args:
        external_rates_per_s: γᵢ, Poisson arrival rate from outside into each
            station, per second; each >= 0, at least one > 0.
        routing_matrix: n × n matrix P, P[i][j] the probability that a customer
            leaving station i goes next to station j; entries in [0, 1], row sums
            <= 1 (the remainder leaves the network), and every customer must
            eventually leave (spectral radius of P < 1).
        service_rates_per_s: μᵢ, exponential service rate of one server at each
            station, per second, > 0.
        servers: cᵢ, number of servers at each station, integers >= 1.

    Returns:
        Per-station metrics and the end-to-end mean sojourn.

    Raises:
        ValueError: if an argument is out of range or the wrong shape, the routing
            is not open, or a station is unstable (λᵢ >= cᵢμᵢ).
    """
    external = [
        _non_negative(f"external_rates_per_s[{i}]", rate)
        for i, rate in enumerate(_as_list("external_rates_per_s", external_rates_per_s))
    ]
    count = len(external)
    if count == 0:
        raise ValueError("external_rates_per_s must hold at least one station, got []")
    if sum(external) <= 0.0:
        raise ValueError(f"external_rates_per_s must have at least one rate > 0, got {external!r}")
    rates = _as_list("service_rates_per_s", service_rates_per_s)
    _check_length("service_rates_per_s", rates, count)
    mu = [_positive(f"service_rates_per_s[{i}]", rate) for i, rate in enumerate(rates)]
    server_counts = _as_list("servers", servers)
    _check_length("servers", server_counts, count)
    c = [_positive_int(f"servers[{i}]", value) for i, value in enumerate(server_counts)]
    routing = _routing(routing_matrix, count)
    return _jackson(np.array(external), routing, np.array(mu), c)


def _mmc(lam: float, mu: float, c: int) -> MMcMetrics:
    """M/M/c metrics for trusted arguments with λ < cμ; λ = 0 gives an idle station."""
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


def _jackson(
    external_per_s: npt.NDArray[np.float64],
    routing: npt.NDArray[np.float64],
    service_rates_per_s: npt.NDArray[np.float64],
    servers: Sequence[int],
) -> NetworkMetrics:
    """Solve the traffic equations of a validated open network and each station."""
    count = len(servers)
    arrival_per_s = np.linalg.solve(np.eye(count) - routing.T, external_per_s)
    # (I - Pᵀ)⁻¹ = Σ (Pᵀ)ᵏ is non-negative; clip rounding below zero.
    arrival_per_s = np.maximum(arrival_per_s, 0.0)
    stations: list[MMcMetrics] = []
    for index in range(count):
        lam = float(arrival_per_s[index])
        mu = float(service_rates_per_s[index])
        c = servers[index]
        _check_stable(
            lam / (c * mu),
            f"station {index}: arrival_rate_per_s={lam!r} from the traffic equations, "
            f"service_rate_per_s={mu!r}, servers={c!r}",
        )
        stations.append(_mmc(lam, mu, c))
    total_external_per_s = float(np.sum(external_per_s))
    mean_in_system = sum(station.mean_in_system for station in stations)
    return NetworkMetrics(
        stations=tuple(stations),
        external_arrival_rate_per_s=total_external_per_s,
        mean_in_system=mean_in_system,
        mean_sojourn_s=mean_in_system / total_external_per_s,
    )


def _routing(routing_matrix: npt.ArrayLike, count: int) -> npt.NDArray[np.float64]:
    """Validate a routing matrix for ``count`` stations and return it as floats."""
    try:
        routing = np.asarray(routing_matrix, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"routing_matrix must be a {count} x {count} matrix of probabilities, "
            f"got {routing_matrix!r}"
        ) from None
    if routing.shape != (count, count):
        raise ValueError(
            f"routing_matrix must be {count} x {count} (one row and column per station), "
            f"got shape {routing.shape}"
        )
    if not np.all(np.isfinite(routing)) or np.any(routing < 0.0) or np.any(routing > 1.0):
        raise ValueError(
            f"routing_matrix entries must be probabilities in [0, 1], got {routing.tolist()!r}"
        )
    row_sums = routing.sum(axis=1)
    if np.any(row_sums > 1.0 + _ROW_SUM_TOLERANCE):
        raise ValueError(
            f"routing_matrix row sums must be <= 1 (the rest leaves the network), "
            f"got {row_sums.tolist()!r}"
        )
    spectral_radius = float(np.max(np.abs(np.linalg.eigvals(routing))))
    if spectral_radius >= 1.0 - _ROW_SUM_TOLERANCE:
        raise ValueError(
            "routing_matrix must be open: every customer must eventually leave the "
            f"network, i.e. spectral radius < 1, got {spectral_radius!r}"
        )
    return routing


def _check_stable(rho: float, given: str) -> None:
    """Reject a utilisation at or above 1: such a queue grows without bound."""
    if rho >= 1.0:
        raise ValueError(
            f"queue is unstable: utilisation rho = {rho!r} must be < 1 "
            f"(no steady state exists); given {given}"
        )


def _as_list(name: str, values: object) -> list[object]:
    """Accept any non-string sequence or 1-d array as a list of per-station values."""
    if isinstance(values, np.ndarray) and values.ndim == 1:
        return list(values.tolist())
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise ValueError(f"{name} must be a sequence with one value per station, got {values!r}")
    return list(values)


def _check_length(name: str, values: Sequence[object], count: int) -> None:
    if len(values) != count:
        raise ValueError(
            f"{name} must have one entry per station ({count}), got {len(values)}: {values!r}"
        )


def _real(name: str, value: object, allowed: str) -> float:
    """``value`` as a float if it is a finite real number (not a bool), else ValueError."""
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number {allowed}, got {value!r}")
    return float(value)


def _positive(name: str, value: object) -> float:
    number = _real(name, value, "> 0")
    if number <= 0.0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return number


def _non_negative(name: str, value: object) -> float:
    number = _real(name, value, ">= 0")
    if number < 0.0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return number


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)
