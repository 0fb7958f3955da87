"""The authorization server: a pool of stations answering token requests.

:class:`AuthServer` sends a request over an internal hop to one of its
instances, round robin, and calls back when the answer is back. Its requests are
the gateway's token introspections (:mod:`sim.components.security.introspection`) and
the clients' token refreshes. The CPU cost of one request,
:func:`auth_request_cost`, comes from the scenario or from the measured
reference implementation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sim.components.station import Station
from sim.core.distributions import Constant, Distribution, Sampler, lognormal
from sim.core.kernel import Kernel
from sim.scenario.calibration import Calibration, load_calibration
from sim.scenario.security import Auth

Callback = Callable[[Any], None]


def introspection_call_s(cal: Calibration | None = None) -> float:
    """Measured CPU seconds of one introspection at the authorization server:
    ``Calibration.introspection_call_s``, read from
    ``models/calibration/reference_costs.yaml`` (``benchmarks/reference_costs.py``
    times ``reference_impl``'s ``IntrospectionAuthenticator.authenticate`` against
    its in-process ``IntrospectionService``), else the figure of the reference run."""
    return (cal if cal is not None else load_calibration()).introspection_call_s


def auth_request_cost(spec: Auth, cal: Calibration | None = None) -> Distribution:
    """CPU time of one request at an authorization server instance.

    ``spec.server.service_time_s`` when set, else ``spec.server.request_s``, else
    lognormal with mean = measured ``server_frame_s`` (handling a request) +
    ``introspection_call_s`` (looking the token up), cv 1 (the default of every
    tier, see ``docs/parameters.md``).
    """
    server = spec.server
    if server.service_time_s is not None:
        return server.service_time_s
    if server.request_s is not None:
        return server.request_s
    cal = cal if cal is not None else load_calibration()
    return lognormal(cal.server_frame_s + introspection_call_s(cal), 1.0)


class AuthServer:
    """The authorization server: requests reach its instances round robin over the network.

    ``request(fn, arg)`` sends one request over an internal hop (``hop()`` is a
    one-way delay in seconds) to the next instance, which serves it as a job on
    its :class:`Station` (a FIFO queue in front of ``workers`` servers); the
    answer comes back over another hop and ``fn(arg)`` is called. Used for
    introspection (:class:`Introspection`) and for token refreshes.

    **Lost requests.** An instance that is down when the request reaches it
    drops the job (``Station.submit``), and one that crashes while serving it
    loses it: ``fn`` is then never called. The caller's own timeout handles
    that, as a real client's would. ``lost`` counts the requests found dropped
    on arrival (a crash during service is visible only in the station's
    ``dropped``).
    """

    __slots__ = ("_after", "_cost", "_hop", "_instant", "_next", "lost", "requests", "stations")

    def __init__(
        self,
        spec: Auth,
        kernel: Kernel,
        stations: list[Station],
        hop: Callable[[], float],
        cal: Calibration | None = None,
    ) -> None:
        if not stations:
            raise ValueError("the authorization server needs at least one station")
        self.stations = stations
        self._after = kernel.after
        self._hop = hop
        cost = auth_request_cost(spec, cal)
        #: a constant 0 service time skips the stations (as every tier's does)
        self._instant = cost.is_zero
        self._cost: Sampler = (
            cost.sampler(kernel.streams.generator("auth.cost"))
            if not isinstance(cost, Constant)
            else _constant(cost.value)
        )
        self._next = 0
        self.requests = 0
        self.lost = 0

    def pick(self) -> Station:
        """The next instance, round robin (whether up or not: the balancer does not know)."""
        station = self.stations[self._next]
        self._next = (self._next + 1) % len(self.stations)
        return station

    def request(self, fn: Callback, arg: Any, lost: Callback | None = None) -> None:
        """Send one request; ``fn(arg)`` is called when its answer is back (if ever).

        ``lost(arg)``, if given, is called instead when the request reaches an
        instance that is down (not when the instance crashes while serving it).
        """
        self.requests += 1
        station = self.pick()
        self._delay(self._hop(), self._arrive, (station, fn, arg, lost))

    def _delay(self, delay_s: float, fn: Callback, arg: Any) -> None:
        if delay_s > 0.0:
            self._after(delay_s, fn, arg)
        else:
            fn(arg)

    def _arrive(self, job: tuple[Station, Callback, Any, Callback | None]) -> None:
        station, fn, arg, lost = job
        if not station.up:
            station.submit(0.0, fn, arg)  # the station counts the drop
            self.lost += 1
            if lost is not None:
                lost(arg)
        elif self._instant:
            self._answer((fn, arg))
        else:
            station.submit(self._cost(), self._answer, (fn, arg))

    def _answer(self, job: tuple[Callback, Any]) -> None:
        self._delay(self._hop(), job[0], job[1])


def _constant(value: float) -> Sampler:
    return lambda: value
