"""Authentication: JWT (PyJWT, HS256 or ES256) and OAuth 2.0 token introspection.

Both authenticators take the current time as an argument instead of reading a
clock, so the sans-IO server stays deterministic: PyJWT's own expiry check is
turned off and ``exp``/``nbf`` are compared with ``now_s`` here (seconds since
the Unix epoch in the asyncio runtime, simulated seconds in tests).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import jwt
from cryptography.hazmat.primitives.asymmetric import ec


class AuthError(Exception):
    """A token was refused; the message says why (never echoes the token)."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a connection is, once its token was accepted."""

    user: str
    expires_at_s: float


class Authenticator(Protocol):
    """Turns a bearer token into a :class:`Principal` or raises :class:`AuthError`."""

    def authenticate(self, token: str, now_s: float) -> Principal:
        """Verify ``token`` as of time ``now_s`` (seconds)."""
        ...


class JwtAlgorithm(StrEnum):
    """Signature algorithms supported for access tokens."""

    HS256 = "HS256"
    ES256 = "ES256"


@dataclass(frozen=True, slots=True)
class JwtKeys:
    """Signing and verification keys for one algorithm.

    HS256 uses one shared secret for both; ES256 signs with a P-256 private key
    and verifies with its public key, so verifiers never hold signing power.
    """

    algorithm: JwtAlgorithm
    signing_key: bytes | ec.EllipticCurvePrivateKey
    verification_key: bytes | ec.EllipticCurvePublicKey

    @classmethod
    def generate(cls, algorithm: JwtAlgorithm, rng: random.Random) -> JwtKeys:
        """Make fresh keys. HS256 secrets come from ``rng`` (reproducible in tests);
        ES256 keys come from the OS generator, as ECDSA key generation requires."""
        if algorithm is JwtAlgorithm.HS256:
            secret = rng.randbytes(32)
            return cls(algorithm, secret, secret)
        private = ec.generate_private_key(ec.SECP256R1())
        return cls(algorithm, private, private.public_key())


@dataclass(frozen=True, slots=True)
class JwtIssuer:
    """Issues access tokens, standing in for the identity provider."""

    keys: JwtKeys
    issuer: str = "msgsim-idp"
    audience: str = "msgsim-chat"

    def issue(self, user: str, now_s: float, ttl_s: float = 3600.0) -> str:
        """Return a signed JWT for ``user`` valid from ``now_s`` for ``ttl_s`` seconds."""
        claims = {
            "sub": user,
            "iss": self.issuer,
            "aud": self.audience,
            "iat": int(now_s),
            "nbf": int(now_s),
            "exp": int(now_s + ttl_s),
        }
        return jwt.encode(claims, self.keys.signing_key, algorithm=str(self.keys.algorithm))


@dataclass(frozen=True, slots=True)
class JwtAuthenticator:
    """Verifies signature, issuer, audience, expiry and not-before of a JWT.

    Only the configured algorithm is accepted, which blocks algorithm-confusion
    tokens (``alg: none`` or an HS256 token signed with a public key).
    """

    keys: JwtKeys
    issuer: str = "msgsim-idp"
    audience: str = "msgsim-chat"
    leeway_s: float = 0.0

    def authenticate(self, token: str, now_s: float) -> Principal:
        """Return the token's principal or raise :class:`AuthError`."""
        try:
            claims = jwt.decode(
                token,
                self.keys.verification_key,
                algorithms=[str(self.keys.algorithm)],
                audience=self.audience,
                issuer=self.issuer,
                options={
                    "require": ["exp", "iat", "sub", "aud", "iss"],
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.PyJWTError as exc:
            raise AuthError(f"invalid token: {type(exc).__name__}") from exc
        exp = claims["exp"]
        if not isinstance(exp, int | float) or now_s >= exp + self.leeway_s:
            raise AuthError("token expired")
        nbf = claims.get("nbf", 0)
        if isinstance(nbf, int | float) and now_s + self.leeway_s < nbf:
            raise AuthError("token not yet valid")
        sub = claims["sub"]
        if not isinstance(sub, str) or not sub:
            raise AuthError("token has no subject")
        return Principal(user=sub, expires_at_s=float(exp))


@dataclass(slots=True)
class _TokenRecord:
    user: str
    expires_at_s: float
    audience: str
    scope: str
    revoked: bool = False


class IntrospectionService:
    """An in-process OAuth 2.0 authorization server answering RFC 7662 introspection.

    Tokens are opaque random strings; all meaning lives here, which is what
    makes revocation immediate (unlike a JWT, which stays valid until ``exp``).
    """

    def __init__(self, rng: random.Random, issuer: str = "msgsim-idp") -> None:
        self._rng = rng
        self._tokens: dict[str, _TokenRecord] = {}
        self.issuer = issuer
        self.calls = 0

    def issue(
        self,
        user: str,
        now_s: float,
        ttl_s: float = 3600.0,
        audience: str = "msgsim-chat",
        scope: str = "chat",
    ) -> str:
        """Return a new opaque access token for ``user``."""
        token = self._rng.randbytes(24).hex()
        self._tokens[token] = _TokenRecord(user, now_s + ttl_s, audience, scope)
        return token

    def revoke(self, token: str) -> None:
        """Make ``token`` inactive at once (RFC 7009 semantics)."""
        record = self._tokens.get(token)
        if record is not None:
            record.revoked = True

    def introspect(self, token: str, now_s: float) -> dict[str, object]:
        """Answer like an RFC 7662 endpoint: ``{"active": False}`` for anything invalid."""
        self.calls += 1
        record = self._tokens.get(token)
        if record is None or record.revoked or now_s >= record.expires_at_s:
            return {"active": False}
        return {
            "active": True,
            "sub": record.user,
            "aud": record.audience,
            "iss": self.issuer,
            "exp": record.expires_at_s,
            "scope": record.scope,
            "token_type": "Bearer",
        }


@dataclass(frozen=True, slots=True)
class IntrospectionAuthenticator:
    """Authenticates by asking the :class:`IntrospectionService` about each token."""

    service: IntrospectionService
    audience: str = "msgsim-chat"
    required_scope: str = "chat"

    def authenticate(self, token: str, now_s: float) -> Principal:
        """Return the principal of an active token for our audience and scope."""
        answer = self.service.introspect(token, now_s)
        if answer.get("active") is not True:
            raise AuthError("token inactive")
        if answer.get("aud") != self.audience:
            raise AuthError("token for another audience")
        scope = answer.get("scope")
        if not isinstance(scope, str) or self.required_scope not in scope.split():
            raise AuthError("token lacks scope")
        sub, exp = answer.get("sub"), answer.get("exp")
        if not isinstance(sub, str) or not isinstance(exp, int | float):
            raise AuthError("malformed introspection answer")
        return Principal(user=sub, expires_at_s=float(exp))
