"""Security properties: JWT and introspection authentication, end-to-end encryption."""

from __future__ import annotations

import json
import random

import jwt
import pytest

from reference_impl.auth import (
    AuthError,
    IntrospectionAuthenticator,
    IntrospectionService,
    JwtAlgorithm,
    JwtAuthenticator,
    JwtIssuer,
    JwtKeys,
)
from reference_impl.e2e import DecryptError, DecryptStatus, E2ESession
from reference_impl.frames import ConvInfo, Member

NOW_S = 1_700_000_000.0


@pytest.fixture(params=list(JwtAlgorithm))
def keys(request: pytest.FixtureRequest) -> JwtKeys:
    return JwtKeys.generate(request.param, random.Random(1))


def test_valid_jwt_is_accepted(keys: JwtKeys) -> None:
    """A fresh token with our issuer and audience yields its subject."""
    token = JwtIssuer(keys).issue("alice", NOW_S)
    principal = JwtAuthenticator(keys).authenticate(token, NOW_S + 10)
    assert principal.user == "alice"
    assert principal.expires_at_s == NOW_S + 3600


@pytest.mark.parametrize(
    "case", ["forged", "expired", "wrong_audience", "wrong_issuer", "not_yet_valid", "tampered"]
)
def test_bad_jwts_are_rejected(keys: JwtKeys, case: str) -> None:
    """Forged, expired, wrong-audience, wrong-issuer, future and tampered tokens fail."""
    verifier = JwtAuthenticator(keys)
    if case == "forged":
        other = JwtKeys.generate(keys.algorithm, random.Random(2))
        token = JwtIssuer(other).issue("alice", NOW_S)
    elif case == "expired":
        token = JwtIssuer(keys).issue("alice", NOW_S - 7200, ttl_s=3600)
    elif case == "wrong_audience":
        token = JwtIssuer(keys, audience="billing").issue("alice", NOW_S)
    elif case == "wrong_issuer":
        token = JwtIssuer(keys, issuer="evil").issue("alice", NOW_S)
    elif case == "not_yet_valid":
        token = JwtIssuer(keys).issue("alice", NOW_S + 600)
    else:
        head, body, sig = JwtIssuer(keys).issue("alice", NOW_S).split(".")
        claims = json.loads(jwt.utils.base64url_decode(body))
        claims["sub"] = "mallory"
        forged_body = jwt.utils.base64url_encode(json.dumps(claims).encode()).decode()
        token = f"{head}.{forged_body}.{sig}"
    with pytest.raises(AuthError):
        verifier.authenticate(token, NOW_S)


def test_algorithm_none_and_confusion_are_rejected() -> None:
    """Unsigned tokens and HS256 tokens keyed with the ES256 public key are refused."""
    es_keys = JwtKeys.generate(JwtAlgorithm.ES256, random.Random(3))
    claims = {"sub": "a", "aud": "msgsim-chat", "iss": "msgsim-idp", "iat": 0, "exp": 2**40}
    unsigned = jwt.encode(claims, key=None, algorithm="none")  # type: ignore[arg-type]
    with pytest.raises(AuthError):
        JwtAuthenticator(es_keys).authenticate(unsigned, NOW_S)
    hs_keys = JwtKeys(JwtAlgorithm.HS256, b"k" * 32, b"k" * 32)
    hs_token = JwtIssuer(hs_keys).issue("a", NOW_S)
    with pytest.raises(AuthError):
        JwtAuthenticator(es_keys).authenticate(hs_token, NOW_S)


def test_introspection_accepts_active_and_rejects_expired_revoked_unknown() -> None:
    """RFC 7662 semantics: only active tokens for our audience and scope pass."""
    service = IntrospectionService(random.Random(4))
    auth = IntrospectionAuthenticator(service)
    token = service.issue("bob", NOW_S, ttl_s=60)
    assert auth.authenticate(token, NOW_S + 1).user == "bob"
    with pytest.raises(AuthError):
        auth.authenticate(token, NOW_S + 61)
    with pytest.raises(AuthError):
        auth.authenticate("unknown", NOW_S)
    other_aud = service.issue("bob", NOW_S, audience="billing")
    with pytest.raises(AuthError):
        auth.authenticate(other_aud, NOW_S)
    service.revoke(token)
    with pytest.raises(AuthError):
        auth.authenticate(token, NOW_S + 1)
    assert service.calls == 5


def _group(*sessions: E2ESession, version: int = 1) -> ConvInfo:
    return ConvInfo("g", version, tuple(Member(s.user, s.public_key) for s in sessions))


def test_pairwise_round_trip_and_tamper_detection() -> None:
    """1:1 messages decrypt for the peer; any flipped byte is rejected as tampered."""
    a, b = E2ESession("a", random.Random(1)), E2ESession("b", random.Random(2))
    conv = ConvInfo("p", 1, (Member("a", a.public_key), Member("b", b.public_key)))
    b.learn(conv)
    envelope = a.encrypt(conv, "m1", b"hi bob")
    assert b"hi bob" not in envelope
    assert b.decrypt("p", "m1", "a", envelope) == b"hi bob"
    body = json.loads(envelope)
    body["c"] = body["c"][:-4] + ("AAAA" if body["c"][-4:] != "AAAA" else "BBBB")
    with pytest.raises(DecryptError) as info:
        b.decrypt("p", "m1", "a", json.dumps(body).encode())
    assert info.value.status is DecryptStatus.TAMPERED
    with pytest.raises(DecryptError):  # bound to its msg_id: no replay under another id
        b.decrypt("p", "m2", "a", envelope)


def test_sender_keys_rekey_when_a_member_leaves() -> None:
    """Group members read sender-key messages; a member who left cannot read later ones."""
    a, b, c = (E2ESession(u, random.Random(i)) for i, u in enumerate("abc"))
    v1 = _group(a, b, c)
    for s in (b, c):
        s.learn(v1)
    first = a.encrypt(v1, "m1", b"to all three")
    assert b.decrypt("g", "m1", "a", first) == c.decrypt("g", "m1", "a", first) == b"to all three"
    a.on_acked("m1")
    second = a.encrypt(v1, "m2", b"no wraps needed")
    assert b'w":{}' in second
    assert c.decrypt("g", "m2", "a", second) == b"no wraps needed"
    v2 = _group(a, b, version=2)  # c left: a new sender key for version 2
    third = a.encrypt(v2, "m3", b"c must not read this")
    assert b.decrypt("g", "m3", "a", third) == b"c must not read this"
    with pytest.raises(DecryptError) as info:
        c.decrypt("g", "m3", "a", third)
    assert info.value.status is DecryptStatus.MISSING_KEY
