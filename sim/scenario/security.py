"""The security sections of an architecture: authentication, rate limiting, abuse
detection and encryption."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from sim.scenario.section import Section
from sim.scenario.tier import Tier


class AuthKind(StrEnum):
    NONE = "none"
    JWT = "jwt"
    OAUTH_INTROSPECTION = "oauth_introspection"


class JwtAlgorithm(StrEnum):
    HS256 = "HS256"
    ES256 = "ES256"
    RS256 = "RS256"


class RateLimitKind(StrEnum):
    NONE = "none"
    TOKEN_BUCKET = "token_bucket"


class EncryptionKind(StrEnum):
    NONE = "none"
    TLS = "tls"
    E2E = "e2e"


class GroupScheme(StrEnum):
    PAIRWISE = "pairwise"
    SENDER_KEYS = "sender_keys"


class Auth(Section):
    """How requests prove who sends them.

    ``jwt``: the gateway verifies a signed token locally (WebSocket: once, at the
    upgrade; HTTP: every request). ``oauth_introspection``: the gateway asks an
    authorization server (RFC 7662) whether an opaque token is active, over the
    internal network, and caches the answer for ``cache_ttl_s``.
    """

    kind: AuthKind = AuthKind.JWT
    algorithm: JwtAlgorithm = JwtAlgorithm.ES256
    token_ttl_s: float = Field(
        default=3600.0, gt=0, description="access token lifetime; clients refresh at expiry"
    )
    cache_ttl_s: float = Field(
        default=30.0, ge=0, description="introspection answers cached this long (0: no cache)"
    )
    server: Tier = Tier(instances=2, workers=8)


class RateLimit(Section):
    """Token bucket per user at the gateway: ``rate_per_s`` tokens a second, ``burst`` at most."""

    kind: RateLimitKind = RateLimitKind.NONE
    rate_per_s: float = Field(default=10.0, gt=0)
    burst: int = Field(default=20, ge=1)


class Monitoring(Section):
    """An abuse detector: a user sending more than ``threshold_per_s`` messages a second,
    averaged over ``window_s``, is blocked for ``block_s`` (connections closed, sends refused)."""

    detector: bool = False
    threshold_per_s: float = Field(default=2.0, gt=0)
    window_s: float = Field(default=10.0, gt=0)
    block_s: float = Field(default=600.0, gt=0)


class Encryption(Section):
    kind: EncryptionKind = EncryptionKind.TLS
    group_scheme: GroupScheme = GroupScheme.SENDER_KEYS


__all__ = [
    "Auth",
    "AuthKind",
    "Encryption",
    "EncryptionKind",
    "GroupScheme",
    "JwtAlgorithm",
    "Monitoring",
    "RateLimit",
    "RateLimitKind",
]
