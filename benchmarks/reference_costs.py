"""Measure per-operation costs of the reference implementation on this machine.

Run from the repository root (a few seconds)::

    .venv/bin/python benchmarks/reference_costs.py

It writes ``models/calibration/reference_costs.yaml``: the raw measurements,
and a ``simulator:`` section derived from them, the costs and sizes the
simulator's defaults rest on (read by ``sim.scenario.calibration``). Times are CPU
seconds per call, sizes are bytes; key names carry the unit (``_s``, ``_bytes``).

Each timing is ``time.thread_time_ns`` (the CPU time of this thread, so idle
library threads do not count) around a batch of calls, repeated; the median of
the per-call times is one round's value. All timings run in ``ROUNDS``
interleaved rounds and the median over rounds is reported, so that a burst of
load from other processes on a shared machine moves one round, not the result.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib.metadata
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import jwt
import numpy as np
import yaml
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from reference_impl.auth import (
    IntrospectionAuthenticator,
    IntrospectionService,
    JwtAlgorithm,
    JwtAuthenticator,
    JwtIssuer,
    JwtKeys,
)
from reference_impl.codec import Codec, CodecKind, JsonCodec
from reference_impl.codec_protobuf import ProtobufCodec
from reference_impl.e2e import NONCE_BYTES, E2ESession, agree, seal
from reference_impl.frames import (
    ConvInfo,
    Deliver,
    DeliveryAck,
    Frame,
    Hello,
    Member,
    Send,
    SendAck,
)
from reference_impl.server import Server

COMMAND = ".venv/bin/python benchmarks/reference_costs.py"
OUT = Path(__file__).resolve().parent.parent / "models" / "calibration" / "reference_costs.yaml"
PAYLOAD_SIZES_BYTES = [64, 256, 1024, 4096, 16384]
#: the AES-GCM payload size the simulator's ``aead_s`` stands for (a typical chat message)
AEAD_TYPICAL_PAYLOAD_BYTES = 256
REPEATS = 11
ROUNDS = 11
MIX_MESSAGES = 250
#: TLS 1.3 CertificateVerify signs 64 spaces, a context string, a zero byte and the
#: transcript hash (RFC 8446 §4.4.3): 130 bytes with SHA-256.
TLS13_CERTIFICATE_VERIFY_INPUT = (
    b" " * 64 + b"TLS 1.3, server CertificateVerify" + b"\0" + bytes(32)
)


def per_call_s(fn: Callable[[], object], calls: int = 200, repeats: int = REPEATS) -> float:
    """Median over ``repeats`` batches of the mean CPU seconds of one call."""
    fn()  # warm up
    samples = []
    for _ in range(repeats):
        start = time.thread_time_ns()
        for _ in range(calls):
            fn()
        samples.append((time.thread_time_ns() - start) / calls / 1e9)
    return float(statistics.median(samples))


def message_mix(n: int, seed: int = 1) -> list[Frame]:
    """A realistic frame mix: sends, acks, deliveries, delivery acks; payloads lognormal
    with mean ~200 B and cv 1 (the workload default of the simulator's presets)."""
    rng = np.random.default_rng(seed)
    sigma2 = np.log(1 + 1.0**2)
    sizes = rng.lognormal(np.log(200) - sigma2 / 2, np.sqrt(sigma2), n).astype(int) + 1
    frames: list[Frame] = []
    for i, size in enumerate(sizes):
        msg_id, conv_id, payload = f"user{i % 97}-{i:016x}", f"conv-{i % 31}", bytes(int(size))
        frames += [
            Send(msg_id, conv_id, payload),
            SendAck(msg_id, conv_id, i + 1),
            Deliver(msg_id, conv_id, i + 1, f"user{i % 97}", payload),
            DeliveryAck(msg_id, conv_id, i + 1),
        ]
    return frames


def measure_jwt(rng: random.Random, now_s: float) -> dict[str, float]:
    """CPU seconds to verify one access token, per signature algorithm.

    HS256 and ES256 go through reference_impl's ``JwtAuthenticator``.
    reference_impl does not support RS256, so RS256 is PyJWT's ``jwt.decode`` with
    an RSA-2048 public key, called with the same claims and options as
    ``JwtAuthenticator`` so the three numbers are comparable.
    """
    verify_s: dict[str, float] = {}
    for alg in JwtAlgorithm:
        keys = JwtKeys.generate(alg, rng)
        token = JwtIssuer(keys).issue("alice", now_s)
        auth = JwtAuthenticator(keys)
        verify_s[str(alg)] = per_call_s(partial(auth.authenticate, token, now_s))
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    claims = {
        "sub": "alice",
        "iss": "msgsim-idp",
        "aud": "msgsim-chat",
        "iat": int(now_s),
        "nbf": int(now_s),
        "exp": int(now_s + 3600),
    }
    rs_token = jwt.encode(claims, rsa_key, algorithm="RS256")
    rsa_public = rsa_key.public_key()
    options: jwt.types.Options = {
        "require": ["exp", "iat", "sub", "aud", "iss"],
        "verify_exp": False,
        "verify_nbf": False,
        "verify_iat": False,
    }
    verify_s["RS256"] = per_call_s(
        lambda: jwt.decode(
            rs_token,
            rsa_public,
            algorithms=["RS256"],
            audience="msgsim-chat",
            issuer="msgsim-idp",
            options=options,
        )
    )
    return verify_s


def measure_tls_parts() -> dict[str, float]:
    """CPU seconds of the public-key operations of a TLS 1.3 server handshake.

    In a TLS 1.3 full handshake with an ECDSA P-256 certificate (RFC 8446 §2,
    §4.4.3) the server generates an ephemeral X25519 key share, agrees on the
    shared secret with the client's share, derives the traffic keys with HKDF,
    and signs CertificateVerify with its certificate key. Those asymmetric
    operations dominate its CPU: transcript hashing, the remaining HKDF-Expand
    calls and the Finished HMACs are a few microseconds of SHA-256, and the
    certificate chain is sent as precomputed bytes. The handshake's server CPU
    is therefore approximated by the sum of the three parts returned here. (A
    resumed, PSK handshake would skip the signature; this is the full one.)
    """
    me, peer = X25519PrivateKey.generate(), X25519PrivateKey.generate()
    peer_public = peer.public_key().public_bytes_raw()
    certificate_key = ec.generate_private_key(ec.SECP256R1())
    signature = ec.ECDSA(hashes.SHA256())
    return {
        "x25519_keygen_s": per_call_s(
            lambda: X25519PrivateKey.generate().public_key().public_bytes_raw()
        ),
        "x25519_agree_hkdf_s": per_call_s(lambda: agree(me, peer_public, "conv", "a", "b")),
        "ecdsa_p256_sign_s": per_call_s(
            lambda: certificate_key.sign(TLS13_CERTIFICATE_VERIFY_INPUT, signature)
        ),
    }


def measure_aes_gcm() -> tuple[dict[int, float], dict[int, float]]:
    """CPU seconds to seal and to open one AES-256-GCM message, by payload size in bytes."""
    aes = AESGCM(bytes(32))
    nonce = bytes(NONCE_BYTES)
    encrypt_s, decrypt_s = {}, {}
    for size in PAYLOAD_SIZES_BYTES:
        plain = bytes(size)
        sealed = aes.encrypt(nonce, plain, b"aad")
        encrypt_s[size] = per_call_s(partial(aes.encrypt, nonce, plain, b"aad"))
        decrypt_s[size] = per_call_s(partial(aes.decrypt, nonce, sealed, b"aad"))
    return encrypt_s, decrypt_s


def line_fit(x: Sequence[int], y: Sequence[int]) -> tuple[float, float]:
    """Least-squares ``y = intercept + slope * x``; returns ``(intercept, slope)``."""
    slope, intercept = np.polyfit(np.asarray(x, float), np.asarray(y, float), 1)
    return float(intercept), float(slope)


def _encode_all(codec: Codec, frames: list[Frame]) -> list[bytes]:
    return [codec.encode(f) for f in frames]


def _decode_all(codec: Codec, encoded: list[bytes]) -> list[Frame]:
    return [codec.decode(b) for b in encoded]


def _codecs() -> dict[str, Codec]:
    return {"json": JsonCodec(10**7), "protobuf": ProtobufCodec(10**7)}


def measure_codec_times(frames: list[Frame]) -> dict[str, dict[str, float]]:
    """Per codec: mean CPU seconds to encode and to decode one frame of the mix."""
    out: dict[str, dict[str, float]] = {}
    for name, codec in _codecs().items():
        encoded = _encode_all(codec, frames)
        out[name] = {
            "encode_s": per_call_s(partial(_encode_all, codec, frames), 1) / len(frames),
            "decode_s": per_call_s(partial(_decode_all, codec, encoded), 1) / len(frames),
        }
    return out


def measure_codec_sizes(frames: list[Frame]) -> dict[str, dict[str, Any]]:
    """Per codec: encoded sizes in bytes over the mix.

    The Deliver frames' sizes against their payload sizes give the line the
    simulator's frame size model uses: the intercept is the envelope, the slope
    the bytes per payload byte (JSON carries bytes as base64).
    """
    delivers = [f for f in frames if isinstance(f, Deliver)]
    empty = dataclasses.replace(delivers[0], payload=b"")
    out: dict[str, dict[str, Any]] = {}
    for name, codec in _codecs().items():
        encoded = _encode_all(codec, frames)
        by_type: dict[str, list[int]] = {}
        for f, b in zip(frames, encoded, strict=True):
            by_type.setdefault(str(f.TYPE), []).append(len(b))
        intercept, slope = line_fit(
            [len(d.payload) for d in delivers], [len(codec.encode(d)) for d in delivers]
        )
        control = by_type[str(SendAck.TYPE)] + by_type[str(DeliveryAck.TYPE)]
        out[name] = {
            "mean_bytes": float(np.mean([len(b) for b in encoded])),
            "mean_bytes_by_type": {t: float(np.mean(v)) for t, v in by_type.items()},
            "deliver_intercept_bytes": intercept,
            "deliver_bytes_per_payload_byte": slope,
            "deliver_empty_payload_bytes": len(codec.encode(empty)),
            "control_mean_bytes": float(np.mean(control)),
        }
    return out


def measure_e2e_sizes(plaintext_sizes: Sequence[int], seed: int = 3) -> dict[str, float]:
    """Bytes reference_impl's end-to-end encryption adds to a plaintext.

    The wire payload is the whole envelope ``E2ESession.encrypt`` returns: compact
    JSON holding the base64 nonce and the base64 AES-GCM ciphertext with its tag.
    Because of base64 the envelope grows by about 4/3 byte per plaintext byte, so
    its overhead depends on the size; the mean over the message mix is what makes
    the simulator's ``plaintext + aead_overhead_bytes`` right on average. 1:1
    (pairwise) envelopes are measured, the kind of 99% of the workload's
    conversations; the sender-key group envelope (after its key was distributed)
    is recorded for comparison.
    """
    rng = random.Random(seed)
    alice, bob, carol = (E2ESession(u, rng) for u in ("alice", "bob", "carol"))
    pair = ConvInfo("conv-1", 1, (Member("alice", alice.public_key), Member("bob", bob.public_key)))
    group = ConvInfo(
        "conv-2",
        1,
        tuple(Member(s.user, s.public_key) for s in (alice, bob, carol)),
    )
    alice.encrypt(group, "distribute", b"")
    alice.on_acked("distribute")  # steady state: the sender key travels no more
    pairwise_extra, group_extra = [], []
    for i, size in enumerate(plaintext_sizes):
        plain = bytes(size)
        pairwise_extra.append(len(alice.encrypt(pair, f"m{i}", plain)) - size)
        group_extra.append(len(alice.encrypt(group, f"g{i}", plain)) - size)
    intercept, slope = line_fit(
        plaintext_sizes, [s + e for s, e in zip(plaintext_sizes, pairwise_extra, strict=True)]
    )
    sealed = seal(bytes(32), bytes(NONCE_BYTES), bytes(256), b"aad")
    return {
        "aes_gcm_nonce_and_tag_bytes": float(NONCE_BYTES + len(sealed) - 256),
        "pairwise_envelope_mean_overhead_bytes": float(np.mean(pairwise_extra)),
        "pairwise_envelope_intercept_bytes": intercept,
        "pairwise_envelope_bytes_per_plaintext_byte": slope,
        "sender_key_envelope_mean_overhead_bytes": float(np.mean(group_extra)),
    }


def measure_server_frame_s(
    payload_sizes: Sequence[int], calls: int = 200, repeats: int = REPEATS
) -> float:
    """CPU seconds for the sans-IO ``Server`` to handle one decoded Send of a 1:1 chat.

    The sender is an authenticated member and the recipient is online, so each
    call does the gateway checks, the idempotency lookup, seq assignment, the
    quorum store write, the broker append and the fan-out of a SendAck and a
    Deliver. Codec and token verification are outside the timed call (they are
    costed separately); every Send has a fresh ``msg_id`` so none is a re-send.
    """
    rng = random.Random(11)
    keys = JwtKeys.generate(JwtAlgorithm.HS256, rng)
    issuer = JwtIssuer(keys)
    server = Server(JwtAuthenticator(keys))
    now_s = 1_000_000.0
    sessions = {user: E2ESession(user, rng) for user in ("alice", "bob")}
    for user, session in sessions.items():
        server.register_user(user, session.public_key)
    server.create_conversation("conv-1", list(sessions))
    for user, session in sessions.items():
        server.connect(f"c-{user}", CodecKind.PROTOBUF)
        hello = Hello(issuer.issue(user, now_s), session.public_key)
        server.receive(f"c-{user}", hello, now_s)
    total = calls * repeats + 1
    sends = [
        Send(f"alice-{i:016x}", "conv-1", bytes(payload_sizes[i % len(payload_sizes)]))
        for i in range(total)
    ]
    replies = server.receive("c-alice", sends[0], now_s)
    kinds = sorted(type(frame).__name__ for _conn, frame in replies)
    if kinds != ["Deliver", "SendAck"]:
        raise RuntimeError(f"a Send should yield a SendAck and a Deliver, got {kinds}")
    samples = []
    for r in range(repeats):
        batch = sends[1 + r * calls : 1 + (r + 1) * calls]
        start = time.thread_time_ns()
        for send in batch:
            server.receive("c-alice", send, now_s)
        samples.append((time.thread_time_ns() - start) / calls / 1e9)
    return float(statistics.median(samples))


def measure_times(
    rng: random.Random, now_s: float, frames: list[Frame], payload_sizes: Sequence[int]
) -> dict[str, Any]:
    """One round of every timing (CPU seconds per call), keyed as in the YAML file."""
    service = IntrospectionService(rng)
    opaque = service.issue("alice", now_s)
    introspection = IntrospectionAuthenticator(service)
    encrypt_s, decrypt_s = measure_aes_gcm()
    return {
        "jwt_verify_s": measure_jwt(rng, now_s),
        "introspection_call_s": per_call_s(partial(introspection.authenticate, opaque, now_s)),
        "aes_gcm_encrypt_s_by_payload_bytes": encrypt_s,
        "aes_gcm_decrypt_s_by_payload_bytes": decrypt_s,
        "tls13_server_handshake_parts_s": measure_tls_parts(),
        "codec_s_per_frame": measure_codec_times(frames),
        "server_send_frame_s": measure_server_frame_s(payload_sizes),
    }


def median_over_rounds(rounds: Sequence[Any]) -> Any:
    """The element-wise median of equally shaped nested dicts of numbers."""
    first = rounds[0]
    if isinstance(first, dict):
        return {key: median_over_rounds([r[key] for r in rounds]) for key in first}
    return float(statistics.median(rounds))


def _sig(value: float) -> float:
    """Four significant digits: more would be noise of one machine and one run."""
    return float(f"{value:.4g}")


def simulator_section(
    times: dict[str, Any], codec_sizes: dict[str, dict[str, Any]], e2e_sizes: dict[str, float]
) -> dict[str, Any]:
    """The costs and sizes the simulator reads, from the raw measurements.

    ``tls_handshake_s`` is the sum of the handshake's public-key operations (see
    :func:`measure_tls_parts`); ``aead_overhead_bytes`` is the mean envelope
    overhead over the message mix (see :func:`measure_e2e_sizes`);
    ``server_frame_s`` is the default per-request CPU of the gateway and service
    tiers; ``control_frame_bytes`` the mean size of SendAck and DeliveryAck frames.
    """
    tls_parts = times["tls13_server_handshake_parts_s"]
    return {
        "codecs": {
            name: {
                "envelope_bytes": round(sizes["deliver_intercept_bytes"], 2),
                "payload_factor": round(sizes["deliver_bytes_per_payload_byte"], 4),
                "encode_s": _sig(times["codec_s_per_frame"][name]["encode_s"]),
                "decode_s": _sig(times["codec_s_per_frame"][name]["decode_s"]),
            }
            for name, sizes in codec_sizes.items()
        },
        "jwt_verify_s": {alg: _sig(s) for alg, s in times["jwt_verify_s"].items()},
        "tls_handshake_s": _sig(sum(tls_parts.values())),
        "aead_s": _sig(times["aes_gcm_encrypt_s_by_payload_bytes"][AEAD_TYPICAL_PAYLOAD_BYTES]),
        "key_agreement_s": _sig(tls_parts["x25519_agree_hkdf_s"]),
        "aead_overhead_bytes": round(e2e_sizes["pairwise_envelope_mean_overhead_bytes"]),
        "server_frame_s": _sig(times["server_send_frame_s"]),
        "control_frame_bytes": {
            name: round(sizes["control_mean_bytes"], 2) for name, sizes in codec_sizes.items()
        },
    }


def measure() -> dict[str, object]:
    """Run every measurement; return the YAML document."""
    rng = random.Random(7)
    now_s = time.time()
    frames = message_mix(MIX_MESSAGES)
    payload_sizes = [len(f.payload) for f in frames if isinstance(f, Send)]
    codec_sizes = measure_codec_sizes(frames)
    e2e_sizes = measure_e2e_sizes(payload_sizes)
    times = median_over_rounds(
        [measure_times(rng, now_s, frames, payload_sizes) for _ in range(ROUNDS)]
    )
    codec_times = times["codec_s_per_frame"]

    versions = {
        p: importlib.metadata.version(p)
        for p in ("PyJWT", "cryptography", "protobuf", "websockets")
    }
    return {
        "description": "Per-operation costs of reference_impl measured on one machine "
        f"(CPU seconds per call, median over {ROUNDS} rounds of the median over "
        f"{REPEATS} repeats; sizes in bytes).",
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d"),
        "command": COMMAND,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.machine(),
            "python": sys.version.split()[0],
            "libraries": versions,
        },
        "simulator": simulator_section(times, codec_sizes, e2e_sizes),
        "jwt_verify_s": times["jwt_verify_s"],
        "jwt_rs256_note": "RS256 is PyJWT jwt.decode with an RSA-2048 key (reference_impl "
        "has no RS256); HS256 and ES256 go through reference_impl's JwtAuthenticator",
        "introspection_call_s": times["introspection_call_s"],
        "aes_gcm_encrypt_s_by_payload_bytes": times["aes_gcm_encrypt_s_by_payload_bytes"],
        "aes_gcm_decrypt_s_by_payload_bytes": times["aes_gcm_decrypt_s_by_payload_bytes"],
        "x25519_agree_hkdf_s": times["tls13_server_handshake_parts_s"]["x25519_agree_hkdf_s"],
        "tls13_server_handshake_parts_s": times["tls13_server_handshake_parts_s"],
        "codec_encode_s_per_frame": {n: c["encode_s"] for n, c in codec_times.items()},
        "codec_decode_s_per_frame": {n: c["decode_s"] for n, c in codec_times.items()},
        "codec_mean_frame_bytes": {n: c["mean_bytes"] for n, c in codec_sizes.items()},
        "codec_mean_frame_bytes_by_type": {
            n: c["mean_bytes_by_type"] for n, c in codec_sizes.items()
        },
        "deliver_frame_bytes_fit": {
            n: {
                "intercept_bytes": c["deliver_intercept_bytes"],
                "bytes_per_payload_byte": c["deliver_bytes_per_payload_byte"],
                "empty_payload_bytes": c["deliver_empty_payload_bytes"],
            }
            for n, c in codec_sizes.items()
        },
        "control_frame_mean_bytes": {n: c["control_mean_bytes"] for n, c in codec_sizes.items()},
        "e2e_envelope_bytes": e2e_sizes,
        "server_send_frame_s": times["server_send_frame_s"],
        "message_mix": "send, send_ack, deliver, delivery_ack per message; payload_bytes "
        f"lognormal mean 200 cv 1.0; {MIX_MESSAGES} messages",
    }


def main() -> None:
    """Measure and write the calibration file."""
    doc = measure()
    header = (
        f"# Written by `{COMMAND}` (run from the repository root); do not edit by hand.\n"
        "# Times: CPU seconds per call (suffix _s); sizes: bytes (suffix _bytes).\n"
        "# sim.scenario.calibration reads the `simulator:` section; the rest: raw measurements.\n"
    )
    text = header + yaml.safe_dump(doc, sort_keys=False)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
