"""Retry backoff: how long a client waits before retrying a send.

The four schedules of M. Brooker, "Exponential Backoff and Jitter" (AWS
Architecture Blog, 2015), chosen by ``architecture.resilience.retry.backoff``;
the client side asks :func:`backoff_s` for the delay before each retry of a send
(``sim.model.client.outbox``) and before each reconnection (``sim.model.client.clients``).
"""

from __future__ import annotations

from collections.abc import Callable

from sim.scenario.resilience import Backoff

__all__ = ["backoff_s"]


def backoff_s(
    kind: Backoff,
    retry: int,
    base_s: float,
    cap_s: float,
    uniform: Callable[[], float],
    previous_s: float,
) -> float:
    """The delay before retry number ``retry`` (1 for the first).

    M. Brooker, "Exponential Backoff and Jitter", AWS Architecture Blog (2015):
    ``temp = min(cap, base * 2**(retry-1))``; ``exponential`` waits ``temp``,
    ``full_jitter`` U(0, temp), ``equal_jitter`` temp/2 + U(0, temp/2), and
    ``decorrelated_jitter`` min(cap, U(base, 3 * previous)), where ``previous_s``
    is the delay before the previous retry (``base_s`` before the first).
    ``none`` retries at once.
    """
    if kind is Backoff.NONE:
        return 0.0
    if kind is Backoff.DECORRELATED_JITTER:
        high = 3.0 * previous_s
        if high <= base_s:
            return min(cap_s, base_s)
        return min(cap_s, base_s + uniform() * (high - base_s))
    temp = min(cap_s, base_s * 2.0 ** (retry - 1))
    if kind is Backoff.EXPONENTIAL:
        return temp
    if kind is Backoff.EQUAL_JITTER:
        return temp * 0.5 + uniform() * temp * 0.5
    return uniform() * temp
