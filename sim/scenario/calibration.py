"""Per-operation costs and sizes the simulator's defaults rest on.

The numbers come from ``models/calibration/reference_costs.yaml``, which
``benchmarks/reference_costs.py`` writes by timing the real operations of
``reference_impl`` (PyJWT, ``cryptography``, the JSON and Protobuf codecs). When
that file is absent (an installation without it), the figures below are used:
the values of a run of that script on 2026-11-28, kept so that an installation
without the file gives the same results.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class CodecCost:
    """Encoded size and CPU time of one message frame in one codec.

    Attributes:
        envelope_bytes: encoded size of a message frame's fields besides the payload.
        payload_factor: encoded bytes per payload byte (JSON carries binary
            ciphertext as base64, 4/3).
        encode_s: CPU seconds to encode one frame of typical size.
        decode_s: CPU seconds to decode one frame of typical size.
    """

    envelope_bytes: float
    payload_factor: float
    encode_s: float
    decode_s: float


@dataclass(frozen=True)
class Calibration:
    """Costs in seconds of CPU, sizes in bytes."""

    codecs: dict[str, CodecCost] = field(
        default_factory=lambda: {
            "json": CodecCost(
                envelope_bytes=114.3, payload_factor=1.3335, encode_s=1.37e-5, decode_s=1.151e-5
            ),
            "protobuf": CodecCost(
                envelope_bytes=48.77, payload_factor=1.0024, encode_s=1.068e-5, decode_s=1.432e-5
            ),
        }
    )
    jwt_verify_s: dict[str, float] = field(
        default_factory=lambda: {"HS256": 1.05e-4, "ES256": 2.359e-4, "RS256": 1.669e-4}
    )
    #: server CPU of a TLS 1.3 handshake: X25519 key generation and agreement, one
    #: ECDSA P-256 signature.
    tls_handshake_s: float = 1.777e-4
    #: AES-GCM seal or open of a typical message, per recipient copy.
    aead_s: float = 1.667e-6
    #: X25519 agreement + HKDF, once per pairwise session or sender-key distribution.
    key_agreement_s: float = 7.379e-5
    #: bytes the reference's end-to-end envelope adds to a payload (nonce, tag, framing).
    aead_overhead_bytes: int = 132
    #: server CPU to accept one decoded send frame (accept, seq, store write, fan-out).
    server_frame_s: float = 3.072e-5
    #: CPU of one token introspection at the authorization server (reference_impl's
    #: ``IntrospectionAuthenticator.authenticate`` against its ``IntrospectionService``).
    introspection_call_s: float = 3.48359e-06
    #: encoded size of small control frames (acks, poll and sync requests), per codec.
    control_frame_bytes: dict[str, float] = field(
        default_factory=lambda: {"json": 85.12, "protobuf": 38.04}
    )
    source: str = "published figures (docs/parameters.md)"


def calibration_file() -> Path | None:
    """Where the measured costs are read from, if the file exists."""
    from sim.scenario.loader import models_dirs

    for root in models_dirs():
        path = root / "calibration" / "reference_costs.yaml"
        if path.is_file():
            return path
    return None


@cache
def load_calibration() -> Calibration:
    """The calibration in force: measured values where the file has them."""
    path = calibration_file()
    if path is None:
        return Calibration()
    data = yaml.safe_load(path.read_text()) or {}
    return _from_mapping(data, str(path))


def _from_mapping(data: dict[str, Any], source: str) -> Calibration:
    base = Calibration()
    sim_section = data.get("simulator", {})
    if not isinstance(sim_section, dict) or not sim_section:
        return base
    codecs = dict(base.codecs)
    for name, values in sim_section.get("codecs", {}).items():
        default = codecs.get(name, codecs["protobuf"])
        codecs[name] = CodecCost(
            envelope_bytes=float(values.get("envelope_bytes", default.envelope_bytes)),
            payload_factor=float(values.get("payload_factor", default.payload_factor)),
            encode_s=float(values.get("encode_s", default.encode_s)),
            decode_s=float(values.get("decode_s", default.decode_s)),
        )
    jwt = {**base.jwt_verify_s, **sim_section.get("jwt_verify_s", {})}
    return Calibration(
        codecs=codecs,
        jwt_verify_s={k: float(v) for k, v in jwt.items()},
        tls_handshake_s=float(sim_section.get("tls_handshake_s", base.tls_handshake_s)),
        aead_s=float(sim_section.get("aead_s", base.aead_s)),
        key_agreement_s=float(sim_section.get("key_agreement_s", base.key_agreement_s)),
        aead_overhead_bytes=int(sim_section.get("aead_overhead_bytes", base.aead_overhead_bytes)),
        server_frame_s=float(sim_section.get("server_frame_s", base.server_frame_s)),
        # measured beside the simulator's section, at the top of the file
        introspection_call_s=float(
            sim_section.get(
                "introspection_call_s", data.get("introspection_call_s", base.introspection_call_s)
            )
        ),
        control_frame_bytes={
            **base.control_frame_bytes,
            **{k: float(v) for k, v in sim_section.get("control_frame_bytes", {}).items()},
        },
        source=source,
    )
