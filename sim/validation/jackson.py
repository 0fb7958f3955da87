"""Exact steady state of open Jackson networks of M/M/c stations, and of stations in series.

By Jackson's theorem each station of an open network of M/M/c stations with
Poisson arrivals from outside behaves, in steady state, as an independent M/M/c
queue at the total arrival rate the traffic equations give it; Burke's theorem
is the special case of stations in series. The stations' metrics therefore come
from :mod:`sim.validation.queueing`. The simulator's tiers in series are
validated against :func:`jackson_tandem`.

Units: rates are per second, times are seconds, queue lengths are numbers of
customers. Every public function validates its arguments
(:mod:`sim.validation.arguments`) and raises :class:`ValueError` naming the
parameter, the value given and what is allowed; a network with a station whose
utilisation is not below 1 has no steady state and is rejected too.

Sources:
    Gross, Shortle, Thompson & Harris, *Fundamentals of Queueing Theory*, 4th ed.,
    Wiley, 2008 (ch. 4: series queues and open Jackson networks).
    Burke, "The output of a queuing system", Operations Research 4(6), 1956.
    Jackson, "Networks of waiting lines", Operations Research 5(4), 1957.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sim.validation.arguments import check_stable, non_negative, positive, positive_int
from sim.validation.queueing import MMcMetrics, mmc_unchecked

__all__ = ["NetworkMetrics", "jackson_network", "jackson_tandem"]

# Row sums of a routing matrix may exceed 1 by this much (rounding in user input).
_ROW_SUM_TOLERANCE = 1e-9


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
    lam = positive("arrival_rate_per_s", arrival_rate_per_s)
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
        service_rates_per_s.append(positive(f"stations[{index}] service_rate_per_s", station[0]))
        servers.append(positive_int(f"stations[{index}] servers", station[1]))
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
        non_negative(f"external_rates_per_s[{i}]", rate)
        for i, rate in enumerate(_as_list("external_rates_per_s", external_rates_per_s))
    ]
    count = len(external)
    if count == 0:
        raise ValueError("external_rates_per_s must hold at least one station, got []")
    if sum(external) <= 0.0:
        raise ValueError(f"external_rates_per_s must have at least one rate > 0, got {external!r}")
    rates = _as_list("service_rates_per_s", service_rates_per_s)
    _check_length("service_rates_per_s", rates, count)
    mu = [positive(f"service_rates_per_s[{i}]", rate) for i, rate in enumerate(rates)]
    server_counts = _as_list("servers", servers)
    _check_length("servers", server_counts, count)
    c = [positive_int(f"servers[{i}]", value) for i, value in enumerate(server_counts)]
    routing = _routing(routing_matrix, count)
    return _jackson(np.array(external), routing, np.array(mu), c)


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
        check_stable(
            lam / (c * mu),
            f"station {index}: arrival_rate_per_s={lam!r} from the traffic equations, "
            f"service_rate_per_s={mu!r}, servers={c!r}",
        )
        stations.append(mmc_unchecked(lam, mu, c))
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
