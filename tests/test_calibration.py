"""The measured calibration file and what the simulator reads from it.

``benchmarks/reference_costs.py`` writes ``models/calibration/reference_costs.yaml``;
these tests check that its ``simulator:`` section is complete, that
``sim.scenario.calibration`` reads it unchanged, and that its size model reproduces the
reference codec's frame sizes (sizes are deterministic, unlike times).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from reference_impl.codec_protobuf import ProtobufCodec
from reference_impl.frames import Deliver
from sim.scenario.calibration import load_calibration

CALIBRATION_FILE = (
    Path(__file__).resolve().parent.parent / "models" / "calibration" / "reference_costs.yaml"
)
CODECS = ("json", "protobuf")
CODEC_KEYS = ("envelope_bytes", "payload_factor", "encode_s", "decode_s")
JWT_ALGORITHMS = ("HS256", "ES256", "RS256")
SCALAR_KEYS = (
    "tls_handshake_s",
    "aead_s",
    "key_agreement_s",
    "aead_overhead_bytes",
    "server_frame_s",
)


@pytest.fixture
def section() -> dict[str, Any]:
    """The ``simulator:`` section of the calibration file."""
    assert CALIBRATION_FILE.is_file(), f"{CALIBRATION_FILE} is missing"
    data = yaml.safe_load(CALIBRATION_FILE.read_text())
    assert isinstance(data, dict) and isinstance(data.get("simulator"), dict)
    return data["simulator"]


@pytest.fixture
def fresh_calibration(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Read the checkout's calibration file, not a cached or redirected one."""
    monkeypatch.delenv("MSGSIM_MODELS_PATH", raising=False)
    load_calibration.cache_clear()
    yield
    load_calibration.cache_clear()


def _positive(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def test_simulator_section_has_every_key_with_a_positive_number(section: dict[str, Any]) -> None:
    """Every cost and size the simulator takes from the file is present and positive."""
    for codec in CODECS:
        for key in CODEC_KEYS:
            assert _positive(section["codecs"][codec][key]), (codec, key)
        assert _positive(section["control_frame_bytes"][codec]), codec
    for alg in JWT_ALGORITHMS:
        assert _positive(section["jwt_verify_s"][alg]), alg
    for key in SCALAR_KEYS:
        assert _positive(section[key]), key


@pytest.mark.usefixtures("fresh_calibration")
def test_load_calibration_returns_the_file_values(section: dict[str, Any]) -> None:
    """The simulator uses the measured values, not its published fallbacks."""
    cal = load_calibration()
    assert Path(cal.source) == CALIBRATION_FILE
    for codec in CODECS:
        loaded = cal.codecs[codec]
        for key in CODEC_KEYS:
            assert getattr(loaded, key) == section["codecs"][codec][key], (codec, key)
    for alg in JWT_ALGORITHMS:
        assert cal.jwt_verify_s[alg] == section["jwt_verify_s"][alg], alg
    assert cal.tls_handshake_s == section["tls_handshake_s"]
    assert cal.aead_s == section["aead_s"]
    assert cal.key_agreement_s == section["key_agreement_s"]
    assert cal.aead_overhead_bytes == section["aead_overhead_bytes"]
    assert cal.server_frame_s == section["server_frame_s"]
    for codec in CODECS:
        assert cal.control_frame_bytes[codec] == section["control_frame_bytes"][codec]
    # measured beside the simulator's section, at the top level of the file
    top = yaml.safe_load(CALIBRATION_FILE.read_text())
    assert cal.introspection_call_s == top["introspection_call_s"]


def test_values_differing_from_the_fallbacks_are_read_from_the_file(tmp_path: Path) -> None:
    """A re-measurement on another machine must reach the simulator, every key of it."""
    from sim.scenario.calibration import _from_mapping

    data = {
        "simulator": {
            "server_frame_s": 9.9e-5,
            "control_frame_bytes": {"json": 99.0},
            "aead_s": 7.0e-6,
        }
    }
    cal = _from_mapping(data, "test")
    assert cal.server_frame_s == 9.9e-5 and cal.aead_s == 7.0e-6
    assert cal.control_frame_bytes["json"] == 99.0
    assert cal.control_frame_bytes["protobuf"] > 0  # untouched keys keep their fallback
    # the introspection figure sits at the top of the file; the section may override it
    assert _from_mapping({**data, "introspection_call_s": 5e-6}, "t").introspection_call_s == 5e-6
    inner = {"simulator": {**data["simulator"], "introspection_call_s": 6e-6}}
    assert _from_mapping(inner, "t").introspection_call_s == 6e-6


def test_building_a_model_reads_no_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every run reads the cached calibration: building a model parses no YAML (a
    sweep of small runs would otherwise spend a large part of each run parsing)."""
    from sim.model.run import Model
    from sim.scenario.loader import load_scenario

    scenario = load_scenario(
        "secure_e2e_oauth_ratelimit",
        {"workload.users": 200, "run.duration_s": 10, "run.warmup_s": 1},
    )
    Model(scenario, 1)  # the calibration is loaded and cached once

    def no_yaml(*_: Any, **__: Any) -> Any:
        raise AssertionError("a model build parsed YAML")

    monkeypatch.setattr(yaml, "safe_load", no_yaml)
    Model(scenario, 2)


def test_json_costs_more_bytes_than_protobuf(section: dict[str, Any]) -> None:
    """JSON repeats field names and carries bytes as base64; protobuf does neither."""
    json_cost, pb_cost = section["codecs"]["json"], section["codecs"]["protobuf"]
    assert json_cost["payload_factor"] > pb_cost["payload_factor"]
    assert json_cost["envelope_bytes"] > pb_cost["envelope_bytes"]
    assert section["control_frame_bytes"]["json"] > section["control_frame_bytes"]["protobuf"]


def test_size_model_matches_a_protobuf_deliver_frame(section: dict[str, Any]) -> None:
    """envelope_bytes + payload_bytes * payload_factor is within 5% of the encoded size."""
    payload_bytes = 200
    frame = Deliver("user42-00000000000000c8", "conv-17", 201, "user42", bytes(payload_bytes))
    encoded_bytes = len(ProtobufCodec().encode(frame))
    cost = section["codecs"]["protobuf"]
    modelled_bytes = cost["envelope_bytes"] + payload_bytes * cost["payload_factor"]
    assert modelled_bytes == pytest.approx(encoded_bytes, rel=0.05)
