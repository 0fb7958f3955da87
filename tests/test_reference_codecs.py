"""Codec properties: every frame type round-trips through JSON and Protocol Buffers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import frame_strategies

from reference_impl.codec import CodecKind, DecodeError, JsonCodec, make_codec
from reference_impl.codec_protobuf import ProtobufCodec
from reference_impl.frames import FRAME_CLASSES, ErrorCode, Send


@pytest.mark.parametrize("kind", list(CodecKind))
@pytest.mark.parametrize("index", range(len(FRAME_CLASSES)))
@given(data=st.data())
def test_every_frame_type_round_trips(kind: CodecKind, index: int, data: st.DataObject) -> None:
    """decode(encode(frame)) == frame for both codecs and each frame type."""
    frame = data.draw(frame_strategies[index])
    codec = make_codec(kind, max_frame_bytes=10**6)
    assert codec.decode(codec.encode(frame)) == frame


def test_round_trip_strategies_cover_every_frame_type() -> None:
    """One strategy per frame class exists, so the round-trip test covers them all."""
    assert len(frame_strategies) == len(FRAME_CLASSES)


def test_protobuf_is_smaller_than_json_for_a_message() -> None:
    """Binary encoding pays off: a 200-byte payload costs fewer bytes in protobuf."""
    frame = Send("alice-0123456789abcdef", "conv-42", bytes(200))
    assert len(ProtobufCodec().encode(frame)) < len(JsonCodec().encode(frame))


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"\xff\xfe", ErrorCode.BAD_FRAME),
        (b"[1, 2]", ErrorCode.BAD_FRAME),
        (b'{"type": "teleport"}', ErrorCode.UNKNOWN_TYPE),
        (b'{"type": "send", "msg_id": "m", "conv_id": "c"}', ErrorCode.BAD_FRAME),
        (b'{"type": "send", "msg_id": 1, "conv_id": "c", "payload": ""}', ErrorCode.BAD_FRAME),
        (b'{"type": "send", "msg_id": "m", "conv_id": "c", "payload": "!!"}', ErrorCode.BAD_FRAME),
        (
            b'{"type": "sync_request", "conv_id": "c", "after_seq": true, "limit": 1}',
            ErrorCode.BAD_FRAME,
        ),
    ],
)
def test_json_rejects_malformed_input_with_the_right_code(data: bytes, code: ErrorCode) -> None:
    """Malformed JSON frames raise DecodeError with the error code the peer is sent."""
    with pytest.raises(DecodeError) as info:
        JsonCodec().decode(data)
    assert info.value.code is code


def test_protobuf_rejects_garbage_and_empty_frames() -> None:
    """Invalid protobuf bytes are BAD_FRAME; a Frame without a body is UNKNOWN_TYPE."""
    with pytest.raises(DecodeError) as info:
        ProtobufCodec().decode(b"\x0a\xff\xff\xff")
    assert info.value.code is ErrorCode.BAD_FRAME
    with pytest.raises(DecodeError) as info:
        ProtobufCodec().decode(b"")
    assert info.value.code is ErrorCode.UNKNOWN_TYPE


@pytest.mark.parametrize("kind", list(CodecKind))
def test_oversized_frames_are_refused_before_parsing(kind: CodecKind) -> None:
    """Frames over max_frame_bytes are TOO_LARGE whatever they contain."""
    codec = make_codec(kind, max_frame_bytes=100)
    with pytest.raises(DecodeError) as info:
        codec.decode(codec.encode(Send("m", "c", bytes(200))))
    assert info.value.code is ErrorCode.TOO_LARGE
