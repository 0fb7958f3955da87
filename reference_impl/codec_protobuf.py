"""The Protocol Buffers encoding of frames (schema: ``reference_impl/frames.proto``).

Each frame is one ``Frame`` message whose ``body`` oneof holds the frame; the
oneof field name is the frame's ``type`` tag. Field names match the dataclasses
in :mod:`reference_impl.frames` one to one, so conversion is generic.
"""

from __future__ import annotations

import typing
from dataclasses import fields, is_dataclass
from typing import Any

from google.protobuf.message import DecodeError as PbDecodeError
from google.protobuf.message import Message

from reference_impl import frames_pb2
from reference_impl.codec import DEFAULT_MAX_FRAME_BYTES, CodecKind, DecodeError, field_types
from reference_impl.frames import FRAME_CLASSES, ErrorCode, Frame, FrameType


def _fill(pb: Any, part: object) -> None:
    for f in fields(part):  # type: ignore[arg-type]
        value = getattr(part, f.name)
        if isinstance(value, tuple):
            repeated = getattr(pb, f.name)
            for item in value:
                _fill(repeated.add(), item)
        elif is_dataclass(value):
            _fill(getattr(pb, f.name), value)
        elif isinstance(value, ErrorCode):
            setattr(pb, f.name, str(value))
        else:
            setattr(pb, f.name, value)


def _read(cls: type, pb: Any) -> Any:
    kwargs: dict[str, object] = {}
    for name, tp in field_types(cls).items():
        raw = getattr(pb, name)
        if typing.get_origin(tp) is tuple:
            (item_tp, _ellipsis) = typing.get_args(tp)
            kwargs[name] = tuple(_read(item_tp, item) for item in raw)
        elif isinstance(tp, type) and is_dataclass(tp):
            kwargs[name] = _read(tp, raw)
        elif tp is ErrorCode:
            if raw not in ErrorCode._value2member_map_:
                raise DecodeError(ErrorCode.BAD_FRAME, f"field {name!r}: unknown error code")
            kwargs[name] = ErrorCode(raw)
        else:
            kwargs[name] = raw
    return cls(**kwargs)


class ProtobufCodec:
    """Binary protobuf frames: smaller and faster to parse than JSON."""

    kind = CodecKind.PROTOBUF

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        self.max_frame_bytes = max_frame_bytes

    def encode(self, frame: Frame) -> bytes:
        """Serialize ``frame`` as a ``Frame`` message with its body set."""
        envelope = frames_pb2.Frame()
        _fill(getattr(envelope, str(frame.TYPE)), frame)
        if not envelope.HasField(str(frame.TYPE)):
            # A frame whose fields all hold defaults must still select its oneof arm.
            getattr(envelope, str(frame.TYPE)).SetInParent()
        return typing.cast(bytes, envelope.SerializeToString())

    def decode(self, data: bytes) -> Frame:
        """Parse one ``Frame``; an empty oneof or an unknown arm is an unknown type."""
        if len(data) > self.max_frame_bytes:
            raise DecodeError(ErrorCode.TOO_LARGE, f"frame over {self.max_frame_bytes} bytes")
        envelope: Message = frames_pb2.Frame()
        try:
            envelope.ParseFromString(data)
        except (PbDecodeError, RecursionError, ValueError) as exc:
            raise DecodeError(ErrorCode.BAD_FRAME, "not a protobuf Frame") from exc
        arm = envelope.WhichOneof("body")
        if arm is None or arm not in FrameType._value2member_map_:
            raise DecodeError(ErrorCode.UNKNOWN_TYPE, "frame has no known body")
        cls = FRAME_CLASSES[FrameType(arm)]
        return typing.cast(Frame, _read(cls, getattr(envelope, arm)))
