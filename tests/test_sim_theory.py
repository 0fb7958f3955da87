"""Tests of :mod:`sim.validation.queueing` and :mod:`sim.validation.jackson`, the exact
results the simulator is validated against.

Reference values come from published tables or hand calculation; the models are
cross-checked against each other (each is computed from its own formula), and
Little's law and monotonicity are checked as properties with Hypothesis.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sim.validation.jackson import jackson_network, jackson_tandem
from sim.validation.queueing import MMcMetrics, QueueMetrics, erlang_c, md1, mg1, mm1, mmc

# Utilisations strictly inside (0, 1), away from 1 where means blow up.
utilisations = st.floats(min_value=0.01, max_value=0.98)
service_rates_per_s = st.floats(min_value=0.1, max_value=1000.0)
server_counts = st.integers(min_value=1, max_value=200)


@st.composite
def queue_metrics(draw: st.DrawFn) -> QueueMetrics:
    """Any of the single-queue models at a stable utilisation."""
    rho = draw(utilisations)
    mu = draw(service_rates_per_s)
    model = draw(st.sampled_from(["mm1", "mmc", "md1", "mg1"]))
    if model == "mm1":
        return mm1(rho * mu, mu)
    if model == "mmc":
        c = draw(server_counts)
        return mmc(rho * c * mu, mu, c)
    if model == "md1":
        return md1(rho * mu, 1.0 / mu)
    squared_cv = draw(st.floats(min_value=0.0, max_value=25.0))
    return mg1(rho * mu, 1.0 / mu, squared_cv / mu**2)


def _erlang_c_log_space(servers: int, offered_load_erlangs: float) -> float:
    """Erlang C from its defining sum, in log space: an independent reference.

    C = T / (Σ_{k<c} a^k/k! + T) with T = a^c/c! · c/(c - a).
    """
    a, c = offered_load_erlangs, servers
    log_terms = [k * math.log(a) - math.lgamma(k + 1) for k in range(c)]
    log_tail = c * math.log(a) - math.lgamma(c + 1) + math.log(c / (c - a))
    peak = max([*log_terms, log_tail])
    total = sum(math.exp(t - peak) for t in log_terms) + math.exp(log_tail - peak)
    return math.exp(log_tail - peak) / total


def _assert_same_metrics(actual: QueueMetrics, expected: QueueMetrics) -> None:
    for field in (
        "arrival_rate_per_s",
        "service_rate_per_s",
        "servers",
        "utilisation",
        "p_wait",
        "mean_wait_s",
        "mean_sojourn_s",
        "mean_queue_length",
        "mean_in_system",
    ):
        assert getattr(actual, field) == pytest.approx(getattr(expected, field), rel=1e-12), field


# --- Erlang C and M/M/c ------------------------------------------------------------


def test_erlang_c_for_14_servers_at_10_erlangs_matches_the_published_table() -> None:
    """The classic call-centre table value: c = 14, a = 10 E gives P(wait) = 0.1741."""
    assert round(erlang_c(14, 10.0), 4) == 0.1741
    assert round(mmc(10.0, 1.0, 14).p_wait, 4) == 0.1741


def test_erlang_c_for_two_servers_matches_the_closed_form() -> None:
    """For c = 2, C = 2ρ² / (1 + ρ); at a = 1 E (ρ = 1/2) that is exactly 1/3."""
    assert erlang_c(2, 1.0) == pytest.approx(1.0 / 3.0, rel=1e-12)


@pytest.mark.parametrize("rho", [0.01, 0.3, 0.5, 0.9, 0.999])
def test_erlang_c_with_one_server_equals_utilisation(rho: float) -> None:
    """With one server an arrival waits exactly when the server is busy: C(1, ρ) = ρ."""
    assert erlang_c(1, rho) == pytest.approx(rho, rel=1e-12)


@pytest.mark.parametrize(
    ("servers", "offered_load_erlangs"), [(300, 280.0), (500, 499.0), (1000, 900.0)]
)
def test_erlang_c_with_hundreds_of_servers_is_finite_and_exact(
    servers: int, offered_load_erlangs: float
) -> None:
    """The Erlang B recursion stays finite where a^c / c! overflows, and is still exact."""
    p_wait = erlang_c(servers, offered_load_erlangs)
    assert math.isfinite(p_wait)
    assert 0.0 <= p_wait <= 1.0
    assert p_wait == pytest.approx(_erlang_c_log_space(servers, offered_load_erlangs), rel=1e-9)
    metrics = mmc(offered_load_erlangs, 1.0, servers)
    assert all(math.isfinite(v) for v in (metrics.mean_wait_s, metrics.mean_queue_length))


@given(c=st.integers(min_value=1, max_value=60), rho=st.floats(min_value=0.05, max_value=0.95))
def test_erlang_c_matches_its_defining_sum(c: int, rho: float) -> None:
    """The stable recursion agrees with the textbook sum over the state probabilities."""
    assert erlang_c(c, rho * c) == pytest.approx(_erlang_c_log_space(c, rho * c), rel=1e-9)


@given(
    c=st.integers(min_value=1, max_value=100),
    rho_low=st.floats(min_value=0.05, max_value=0.97),
    step=st.floats(min_value=0.01, max_value=0.5),
    mu=service_rates_per_s,
)
def test_p_wait_and_mean_wait_increase_with_load(
    c: int, rho_low: float, step: float, mu: float
) -> None:
    """At a fixed number of servers, more load means more waiting."""
    rho_high = min(rho_low + step, 0.99)
    low = mmc(rho_low * c * mu, mu, c)
    high = mmc(rho_high * c * mu, mu, c)
    assert low.p_wait < high.p_wait
    assert low.mean_wait_s < high.mean_wait_s


@given(
    c=st.integers(min_value=1, max_value=100),
    extra=st.integers(min_value=1, max_value=20),
    rho=st.floats(min_value=0.05, max_value=0.98),
)
def test_p_wait_decreases_with_more_servers_at_the_same_offered_load(
    c: int, extra: int, rho: float
) -> None:
    """Adding servers for the same offered load (Erlangs) can only reduce waiting."""
    offered_erlangs = rho * c
    assert erlang_c(c + extra, offered_erlangs) < erlang_c(c, offered_erlangs)


def test_mmc_with_one_server_equals_mm1() -> None:
    """M/M/c at c = 1 is M/M/1: the general formula reduces to the special one."""
    _assert_same_metrics(mmc(3.0, 4.0, 1), mm1(3.0, 4.0))


def test_mmc_waiting_time_tail_at_zero_equals_p_wait() -> None:
    """P(Wq > 0) is the probability of having to wait at all."""
    metrics = mmc(10.0, 1.0, 14)
    assert metrics.p_wait_exceeds(0.0) == metrics.p_wait


def test_mmc_waiting_time_tail_integrates_to_the_mean_wait() -> None:
    """E[Wq] = ∫ P(Wq > t) dt, so the tail and the mean wait must agree."""
    metrics = mmc(10.0, 1.0, 14)
    drain_rate_per_s = 14 * 1.0 - 10.0
    t_s = np.linspace(0.0, 40.0 / drain_rate_per_s, 20001)
    tail = np.array([metrics.p_wait_exceeds(float(t)) for t in t_s])
    assert float(np.trapezoid(tail, t_s)) == pytest.approx(metrics.mean_wait_s, rel=1e-6)


def test_mmc_waiting_time_tail_halves_every_ln2_over_drain_rate() -> None:
    """The tail decays at rate cμ − λ: after ln 2 / (cμ − λ) seconds it has halved."""
    metrics = mmc(10.0, 1.0, 14)
    half_life_s = math.log(2.0) / (14 * 1.0 - 10.0)
    assert metrics.p_wait_exceeds(half_life_s) == pytest.approx(metrics.p_wait / 2.0, rel=1e-12)


def test_only_exponential_service_offers_the_waiting_time_tail() -> None:
    """The tail is exact only for M/M/c; M/D/1 and M/G/1 do not offer it."""
    assert isinstance(mm1(1.0, 2.0), MMcMetrics)
    assert isinstance(mmc(1.0, 2.0, 3), MMcMetrics)
    assert not hasattr(md1(1.0, 0.5), "p_wait_exceeds")
    assert not hasattr(mg1(1.0, 0.5, 0.1), "p_wait_exceeds")


# --- Single-server queues ----------------------------------------------------------


def test_mm1_mean_wait_is_rho_over_mu_minus_lambda() -> None:
    """M/M/1: Wq = ρ / (μ − λ); at λ = 3/s, μ = 4/s that is 0.75 s, and W = 1 s."""
    metrics = mm1(3.0, 4.0)
    assert metrics.utilisation == pytest.approx(0.75)
    assert metrics.p_wait == pytest.approx(0.75)
    assert metrics.mean_wait_s == pytest.approx(0.75 / (4.0 - 3.0))
    assert metrics.mean_sojourn_s == pytest.approx(1.0)
    assert metrics.mean_queue_length == pytest.approx(2.25)


@pytest.mark.parametrize("rho", [0.1, 0.5, 0.8, 0.95])
def test_md1_mean_wait_is_half_of_mm1_at_the_same_utilisation(rho: float) -> None:
    """Removing service variability halves the queueing delay (P-K with Var[S] = 0)."""
    mu = 5.0
    deterministic = md1(rho * mu, 1.0 / mu)
    exponential = mm1(rho * mu, mu)
    assert deterministic.mean_wait_s == pytest.approx(exponential.mean_wait_s / 2.0, rel=1e-12)
    assert deterministic.mean_queue_length == pytest.approx(
        exponential.mean_queue_length / 2.0, rel=1e-12
    )


@pytest.mark.parametrize("rho", [0.1, 0.5, 0.8, 0.95])
def test_mg1_with_exponential_variance_reduces_to_mm1(rho: float) -> None:
    """Pollaczek–Khinchine with Var[S] = E[S]² gives the M/M/1 means."""
    mu = 5.0
    _assert_same_metrics(mg1(rho * mu, 1.0 / mu, 1.0 / mu**2), mm1(rho * mu, mu))


@pytest.mark.parametrize("rho", [0.1, 0.5, 0.8, 0.95])
def test_mg1_with_zero_variance_reduces_to_md1(rho: float) -> None:
    """Pollaczek–Khinchine with Var[S] = 0 gives the M/D/1 means."""
    mu = 5.0
    _assert_same_metrics(mg1(rho * mu, 1.0 / mu, 0.0), md1(rho * mu, 1.0 / mu))


# --- Properties of every model -----------------------------------------------------


@given(queue_metrics())
def test_littles_law_holds_for_every_model(metrics: QueueMetrics) -> None:
    """L = λW and Lq = λWq, and W = Wq + 1/μ, whatever the model."""
    lam = metrics.arrival_rate_per_s
    assert metrics.mean_in_system == pytest.approx(lam * metrics.mean_sojourn_s, rel=1e-9)
    assert metrics.mean_queue_length == pytest.approx(lam * metrics.mean_wait_s, rel=1e-9)
    assert metrics.mean_sojourn_s == pytest.approx(
        metrics.mean_wait_s + 1.0 / metrics.service_rate_per_s, rel=1e-9
    )


@given(queue_metrics())
def test_every_model_reports_probabilities_and_non_negative_means(metrics: QueueMetrics) -> None:
    """P(wait) and utilisation are in [0, 1); means are finite and non-negative."""
    assert 0.0 <= metrics.p_wait < 1.0
    assert 0.0 < metrics.utilisation < 1.0
    for value in (
        metrics.mean_wait_s,
        metrics.mean_sojourn_s,
        metrics.mean_queue_length,
        metrics.mean_in_system,
    ):
        assert math.isfinite(value)
        assert value >= 0.0


@given(
    rho_low=st.floats(min_value=0.01, max_value=0.97),
    step=st.floats(min_value=0.01, max_value=0.5),
    squared_cv=st.floats(min_value=0.0, max_value=25.0),
)
def test_mg1_mean_wait_increases_with_load(rho_low: float, step: float, squared_cv: float) -> None:
    """At a fixed service distribution, more load means a longer mean wait."""
    rho_high = min(rho_low + step, 0.99)
    mean_s, variance_s2 = 1.0, squared_cv
    assert (
        mg1(rho_low, mean_s, variance_s2).mean_wait_s
        < mg1(rho_high, mean_s, variance_s2).mean_wait_s
    )


# --- Jackson networks --------------------------------------------------------------


def test_jackson_tandem_sojourn_equals_the_sum_of_the_stations() -> None:
    """End to end, a customer spends the sum of the stations' mean sojourns."""
    network = jackson_tandem(8.0, [(10.0, 1), (3.0, 4), (100.0, 1)])
    assert network.mean_sojourn_s == pytest.approx(
        sum(station.mean_sojourn_s for station in network.stations), rel=1e-12
    )


def test_jackson_tandem_stations_are_independent_mmc_queues() -> None:
    """Burke: each station sees the external Poisson rate and is a plain M/M/c queue."""
    stations = [(10.0, 1), (3.0, 4), (100.0, 1)]
    network = jackson_tandem(8.0, stations)
    assert len(network.stations) == 3
    for station, (mu, c) in zip(network.stations, stations, strict=True):
        _assert_same_metrics(station, mmc(8.0, mu, c))


def test_jackson_network_with_tandem_routing_equals_jackson_tandem() -> None:
    """A general network whose routing is a chain is the tandem."""
    tandem = jackson_tandem(2.0, [(3.0, 1), (1.5, 2)])
    network = jackson_network([2.0, 0.0], [[0.0, 1.0], [0.0, 0.0]], [3.0, 1.5], [1, 2])
    assert network.mean_sojourn_s == pytest.approx(tandem.mean_sojourn_s, rel=1e-12)
    for general, chain in zip(network.stations, tandem.stations, strict=True):
        _assert_same_metrics(general, chain)


def test_jackson_network_with_feedback_inflates_the_arrival_rate() -> None:
    """Feeding back a fraction p of departures gives λ = γ / (1 − p) at the station."""
    network = jackson_network([1.0], [[0.5]], [3.0], [1])
    _assert_same_metrics(network.stations[0], mm1(2.0, 3.0))
    # Each customer visits twice on average, and Little's law gives the sojourn.
    assert network.mean_sojourn_s == pytest.approx(2.0 * 1.0, rel=1e-12)


def test_jackson_network_solves_the_traffic_equations_with_branching() -> None:
    """Station 0 splits 30/70 to stations 1 and 2; station 2 returns half to station 0.

    By hand: λ0 = γ + λ2/2, λ1 = 0.3 λ0, λ2 = 0.7 λ0, so λ0 = γ / 0.65.
    """
    gamma = 1.3
    routing = [[0.0, 0.3, 0.7], [0.0, 0.0, 0.0], [0.5, 0.0, 0.0]]
    network = jackson_network([gamma, 0.0, 0.0], routing, [5.0, 1.0, 2.0], [1, 1, 2])
    lam0 = gamma / 0.65
    rates = [station.arrival_rate_per_s for station in network.stations]
    assert rates == pytest.approx([lam0, 0.3 * lam0, 0.7 * lam0], rel=1e-12)
    assert network.mean_in_system == pytest.approx(gamma * network.mean_sojourn_s, rel=1e-12)


def test_jackson_network_reports_an_unreached_station_as_idle() -> None:
    """A station no traffic reaches has no queue and only its service time."""
    network = jackson_network([1.0, 0.0], [[0.0, 0.0], [0.0, 0.0]], [2.0, 4.0], [1, 3])
    idle = network.stations[1]
    assert (idle.utilisation, idle.p_wait, idle.mean_in_system) == (0.0, 0.0, 0.0)
    assert idle.mean_sojourn_s == pytest.approx(0.25)


# --- Input validation --------------------------------------------------------------


def _network(**overrides: Any) -> Any:
    """Call :func:`jackson_network` on a valid two-station network with some arguments replaced."""
    kwargs: dict[str, Any] = {
        "external_rates_per_s": [1.0, 0.0],
        "routing_matrix": np.zeros((2, 2)),
        "service_rates_per_s": [2.0, 2.0],
        "servers": [1, 1],
    }
    return jackson_network(**(kwargs | overrides))


@pytest.mark.parametrize(
    ("call", "parameter", "given_text"),
    # Some calls deliberately break the type hints, as an untyped caller might.
    [
        (lambda: mm1(-1.0, 2.0), "arrival_rate_per_s", "-1.0"),
        (lambda: mm1(1.0, 0.0), "service_rate_per_s", "0.0"),
        (lambda: mm1(math.nan, 2.0), "arrival_rate_per_s", "nan"),
        (lambda: mm1("1", 2.0), "arrival_rate_per_s", "'1'"),  # type: ignore[arg-type]
        (lambda: mmc(1.0, 1.0, 0), "servers", "0"),
        (lambda: mmc(1.0, 1.0, 2.5), "servers", "2.5"),  # type: ignore[arg-type]
        (lambda: mmc(1.0, 1.0, True), "servers", "True"),
        (lambda: erlang_c(-3, 1.0), "servers", "-3"),
        (lambda: erlang_c(3, math.inf), "offered_load_erlangs", "inf"),
        (lambda: md1(1.0, -0.5), "service_time_s", "-0.5"),
        (lambda: mg1(1.0, 0.0, 1.0), "mean_service_s", "0.0"),
        (lambda: mg1(1.0, 0.5, -1.0), "service_variance_s2", "-1.0"),
        (lambda: jackson_tandem(0.0, [(1.0, 1)]), "arrival_rate_per_s", "0.0"),
        (lambda: jackson_tandem(1.0, []), "stations", "[]"),
        (lambda: jackson_tandem(1.0, "ab"), "stations", "'ab'"),  # type: ignore[arg-type]
        (
            lambda: jackson_tandem(1.0, [(5.0, 1), (-2.0, 1)]),
            "stations[1] service_rate_per_s",
            "-2.0",
        ),
        (lambda: jackson_tandem(1.0, [(5.0, 0)]), "stations[0] servers", "0"),
        (lambda: jackson_tandem(1.0, [(5.0,)]), "stations[0]", "(5.0,)"),  # type: ignore[list-item]
        (
            lambda: _network(external_rates_per_s=[1.0, -1.0]),
            "external_rates_per_s[1]",
            "-1.0",
        ),
        (lambda: _network(external_rates_per_s=[0.0, 0.0]), "external_rates_per_s", "[0.0, 0.0]"),
        (lambda: _network(service_rates_per_s=[2.0]), "service_rates_per_s", "[2.0]"),
        (lambda: _network(servers=[1, 0]), "servers[1]", "0"),
        (lambda: _network(routing_matrix=np.zeros((3, 3))), "routing_matrix", "(3, 3)"),
        (lambda: _network(routing_matrix=[[0.0, 1.5], [0.0, 0.0]]), "routing_matrix", "1.5"),
        (lambda: _network(routing_matrix=[[0.6, 0.6], [0.0, 0.0]]), "routing_matrix", "1.2"),
        (
            lambda: _network(routing_matrix=[[0.0, 1.0], [1.0, 0.0]]),
            "routing_matrix",
            "spectral radius",
        ),
    ],
)
def test_invalid_input_raises_value_error_naming_the_parameter_and_value(
    call: Callable[[], object], parameter: str, given_text: str
) -> None:
    """A user error is one ValueError that names the parameter and the value given."""
    with pytest.raises(ValueError, match=re.escape(parameter)) as error:
        call()
    assert given_text in str(error.value)


def test_invalid_waiting_time_threshold_raises_value_error() -> None:
    """The waiting-time tail is defined for thresholds t >= 0 only."""
    with pytest.raises(ValueError, match=r"wait_s must be >= 0, got -1\.0"):
        mm1(1.0, 2.0).p_wait_exceeds(-1.0)


def test_brief_example_message_for_a_negative_rate() -> None:
    """The message says what is allowed: 'arrival_rate_per_s must be > 0, got -1.0'."""
    with pytest.raises(ValueError, match=r"^arrival_rate_per_s must be > 0, got -1\.0$"):
        mm1(-1.0, 2.0)


@pytest.mark.parametrize(
    ("function", "args", "rho_text"),
    [
        (mm1, (4.0, 4.0), "1.0"),
        (mmc, (30.0, 1.0, 20), "1.5"),
        (erlang_c, (10, 12.0), "1.2"),
        (md1, (2.0, 0.75), "1.5"),
        (mg1, (2.0, 0.5, 0.1), "1.0"),
        (jackson_tandem, (2.0, [(5.0, 1), (1.0, 1)]), "2.0"),
        (jackson_network, ([1.0], [[0.75]], [3.0], [1]), "1.3333"),
    ],
)
def test_unstable_queue_raises_value_error_giving_rho(
    function: Callable[..., Any], args: tuple[Any, ...], rho_text: str
) -> None:
    """At utilisation ρ >= 1 there is no steady state; the error says so and gives ρ."""
    with pytest.raises(ValueError, match="unstable") as error:
        function(*args)
    assert f"rho = {rho_text}" in str(error.value)
