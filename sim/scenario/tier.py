"""A tier: a pool of identical instances (gateways, the message service, an auth server)."""

from __future__ import annotations

from pydantic import Field

from sim.core.distributions import Distribution
from sim.scenario.section import Section


class Tier(Section):
    """A pool of identical instances, each running ``workers`` requests at once.

    ``service_time_s`` replaces the per-request CPU time that is otherwise derived
    from the codec, authentication and base handling costs; ``push_time_s`` does
    the same for outbound frames (acks, deliveries, poll replies). A constant 0
    makes that step instantaneous: it then takes no worker at all, which is how a
    tier is switched off when one queue is validated against theory.
    """

    instances: int = Field(default=2, ge=1)
    workers: int = Field(default=2, ge=1)
    request_s: Distribution | None = Field(
        default=None,
        description="base CPU time of handling one inbound request or frame; default: "
        "lognormal with the measured reference server cost as mean, cv 1",
    )
    service_time_s: Distribution | None = None
    push_time_s: Distribution | None = None


__all__ = ["Tier"]
