"""The workload section: users, their sessions, their conversations, and attackers."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from sim.core.distributions import Distribution, Zipf, lognormal
from sim.scenario.section import Section


class SessionShape(StrEnum):
    EXPONENTIAL = "exponential"
    LOGNORMAL = "lognormal"


class Sessions(Section):
    """Users alternate online and offline periods.

    ``mean_offline_s: 0`` keeps every user online for the whole run (no churn),
    as queueing-theory validation needs.
    """

    mean_online_s: float = Field(default=1200.0, gt=0)
    mean_offline_s: float = Field(default=3600.0, ge=0)
    shape: SessionShape = SessionShape.EXPONENTIAL
    cv: float = Field(default=1.0, gt=0, description="for lognormal sessions")


class Conversations(Section):
    """Who talks to whom: 1:1 conversations over a heavy-tailed contact graph, plus groups."""

    contacts: Distribution = Field(
        default=Zipf(a=2.0, max=200), description="1:1 conversations a user starts"
    )
    group_fraction: float = Field(default=0.01, ge=0, lt=1)
    group_size: Distribution = Field(default=Zipf(a=2.0, min=3, max=500))


class Attack(Section):
    """A flood: ``attackers`` existing accounts (compromised), connected throughout the
    attack, each sending ``rate_per_s`` messages a second into its own conversations
    from ``start_s`` for ``duration_s``. The summary describes legitimate users and
    counts the attackers' messages apart."""

    attackers: int = Field(default=0, ge=0)
    rate_per_s: float = Field(default=50.0, gt=0)
    start_s: float = Field(default=0.0, ge=0)
    duration_s: float | None = Field(default=None, gt=0, description="default: to the end")


class Workload(Section):
    users: int = Field(default=20_000, ge=2)
    sessions: Sessions = Sessions()
    messages_per_user_per_hour: float = Field(
        default=6.0, ge=0, description="sends per user per hour while online"
    )
    conversations: Conversations = Conversations()
    payload_bytes: Distribution = Field(default=lognormal(200, 1.0))
    attack: Attack = Attack()


__all__ = ["Attack", "Conversations", "SessionShape", "Sessions", "Workload"]
