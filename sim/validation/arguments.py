"""Argument checks shared by the exact queueing models.

Every public function of :mod:`sim.validation.queueing` and
:mod:`sim.validation.jackson` checks its arguments with these and raises
:class:`ValueError` naming the parameter, the value given and what is allowed,
so that a wrong call fails at once instead of returning a number that looks
right. A queue whose utilisation is not below 1 has no steady state and is
rejected too.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

__all__ = ["check_stable", "non_negative", "positive", "positive_int"]


def check_stable(rho: float, given: str) -> None:
    """Reject a utilisation at or above 1: such a queue grows without bound.

    ``given`` names the arguments the utilisation came from, for the message.
    """
    if rho >= 1.0:
        raise ValueError(
            f"queue is unstable: utilisation rho = {rho!r} must be < 1 "
            f"(no steady state exists); given {given}"
        )


def _real(name: str, value: object, allowed: str) -> float:
    """``value`` as a float if it is a finite real number (not a bool), else ValueError."""
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number {allowed}, got {value!r}")
    return float(value)


def positive(name: str, value: object) -> float:
    """``value`` as a float if it is a finite number > 0, else ValueError naming ``name``."""
    number = _real(name, value, "> 0")
    if number <= 0.0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return number


def non_negative(name: str, value: object) -> float:
    """``value`` as a float if it is a finite number >= 0, else ValueError naming ``name``."""
    number = _real(name, value, ">= 0")
    if number < 0.0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return number


def positive_int(name: str, value: object) -> int:
    """``value`` as an int if it is an integer >= 1 (not a bool), else ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)
