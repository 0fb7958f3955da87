"""Access-token lifetimes: when a user refreshes its token, and which token it holds.

Pure arithmetic on session start times. The gateway (``sim.model.server.gateway``) asks
:class:`TokenClock` which token id a request carries; since a refresh changes
that id, it retires the gateway's cached introspection answer
(:class:`sim.components.security.introspection.Introspection`), as a real refresh does.
"""

from __future__ import annotations

import math

#: Bits of a token id left for the refresh count: token id = user * 2**20 + refreshes.
TOKEN_REFRESH_BITS = 20


class TokenClock:
    """Access-token lifetimes: when a user refreshes, and which token it holds.

    A user who comes online at ``since_s`` gets a token then (part of logging in,
    not modelled as a request) and, while it stays online, refreshes it every
    ``token_ttl_s``: at ``since_s + k * token_ttl_s`` for k = 1, 2, ... Each
    refresh is one request to the authorization server (``AuthServer.request``).
    A user online for less than ``token_ttl_s`` never refreshes.

    **Token ids.** The token a user holds after ``k`` refreshes is
    ``user * 2**20 + k`` (:meth:`token`). A refresh therefore changes the id, so
    a gateway's introspection cache entry for the old token is never hit again
    and the next check of the new token is a miss, as with real opaque tokens.
    The refresh count restarts at 0 each session (a new login), so the first
    token of every session is ``user * 2**20``: it may still be cached from the
    previous session (a cache shorter than a session, the usual case, has
    forgotten it). ``k`` must stay below 2**20 (about 12 days at a 1 s TTL).
    """

    __slots__ = ("token_ttl_s",)

    def __init__(self, token_ttl_s: float) -> None:
        if token_ttl_s <= 0:
            raise ValueError(f"token_ttl_s must be > 0, got {token_ttl_s}")
        self.token_ttl_s = float(token_ttl_s)

    @staticmethod
    def token(user: int, refreshes: int) -> int:
        """The token id of ``user`` after ``refreshes`` refreshes in this session."""
        if not 0 <= refreshes < 1 << TOKEN_REFRESH_BITS:
            raise ValueError(f"refreshes must lie in [0, 2**20), got {refreshes}")
        return (user << TOKEN_REFRESH_BITS) + refreshes

    @staticmethod
    def user_of(token: int) -> int:
        return token >> TOKEN_REFRESH_BITS

    def refreshes(self, since_s: float, now: float) -> int:
        """Refreshes done by ``now`` by a user online since ``since_s`` (a refresh due
        exactly at ``now`` counts as done)."""
        if now < since_s:
            return 0
        ttl = self.token_ttl_s
        k = math.floor((now - since_s) / ttl)
        # the division may round across a multiple: settle k on the times themselves
        if since_s + (k + 1) * ttl <= now:
            k += 1
        elif k > 0 and since_s + k * ttl > now:
            k -= 1
        return k

    def token_at(self, user: int, since_s: float, now: float) -> int:
        """The token ``user``, online since ``since_s``, sends with at ``now``."""
        return self.token(user, self.refreshes(since_s, now))

    def next_refresh_s(self, since_s: float, now: float) -> float:
        """The first refresh strictly after ``now`` of a user online since ``since_s``."""
        return since_s + (self.refreshes(since_s, now) + 1) * self.token_ttl_s
