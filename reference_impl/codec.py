"""Frame codecs: the common interface and the JSON encoding.

A codec turns a frame into bytes and back. Decoding is where untrusted input
enters, so it is strict: a wrong type, a missing field, an unknown frame type
or an oversized input raises :class:`DecodeError` carrying the
:class:`~reference_impl.frames.ErrorCode` the server answers with.

JSON layout (see ``docs/protocol.md``): one object per frame with a ``"type"``
key and one key per field; ``bytes`` fields are standard base64 strings, nested
parts are objects, tuples are arrays.
"""

from __future__ import annotations

import base64
import binascii
import json
import typing
from dataclasses import fields, is_dataclass
from enum import StrEnum
from functools import cache
from typing import Any, Protocol

from reference_impl.frames import FRAME_CLASSES, ErrorCode, Frame, FrameType

DEFAULT_MAX_FRAME_BYTES = 64 * 1024
"""Largest encoded frame accepted by default, in bytes."""


class CodecKind(StrEnum):
    """The encodings a connection can negotiate."""

    JSON = "json"
    PROTOBUF = "protobuf"


class DecodeError(Exception):
    """Input bytes are not a valid frame; ``code`` is what the peer is told."""

    def __init__(self, code: ErrorCode, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


class Codec(Protocol):
    """Encodes frames to bytes and decodes untrusted bytes to frames."""

    kind: CodecKind

    def encode(self, frame: Frame) -> bytes:
        """Return the wire bytes of ``frame``."""
        ...

    def decode(self, data: bytes) -> Frame:
        """Return the frame in ``data`` or raise :class:`DecodeError`."""
        ...


@cache
def field_types(cls: type) -> dict[str, Any]:
    """Resolved field annotations of a frame dataclass (cached; used by both codecs)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in fields(cls)}


def _to_json_value(value: object) -> object:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, tuple):
        return [_to_json_value(v) for v in value]
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _to_json_value(getattr(value, f.name)) for f in fields(value)}
    return value  # str, int, bool, StrEnum (a str)


def _from_json_value(tp: Any, raw: object, name: str) -> object:
    def bad(expected: str) -> DecodeError:
        return DecodeError(ErrorCode.BAD_FRAME, f"field {name!r}: expected {expected}")

    if tp is str:
        if not isinstance(raw, str):
            raise bad("a string")
        return raw
    if tp is bool:
        if not isinstance(raw, bool):
            raise bad("a boolean")
        return raw
    if tp is int:
        if not isinstance(raw, int) or isinstance(raw, bool):
            raise bad("an integer")
        return raw
    if tp is bytes:
        if not isinstance(raw, str):
            raise bad("a base64 string")
        try:
            return base64.b64decode(raw.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError) as exc:
            raise bad("a base64 string") from exc
    if tp is ErrorCode:
        if not isinstance(raw, str) or raw not in ErrorCode._value2member_map_:
            raise bad("an error code")
        return ErrorCode(raw)
    if typing.get_origin(tp) is tuple:
        if not isinstance(raw, list):
            raise bad("an array")
        (item_tp, _ellipsis) = typing.get_args(tp)
        return tuple(_from_json_value(item_tp, item, name) for item in raw)
    if isinstance(tp, type) and is_dataclass(tp):
        if not isinstance(raw, dict):
            raise bad("an object")
        return _build(tp, raw)
    raise TypeError(f"unsupported field type {tp!r}")  # a programming error, not bad input


def _build(cls: type, obj: dict[str, Any]) -> Any:
    kwargs = {}
    for name, tp in field_types(cls).items():
        if name not in obj:
            raise DecodeError(ErrorCode.BAD_FRAME, f"missing field {name!r}")
        kwargs[name] = _from_json_value(tp, obj[name], name)
    return cls(**kwargs)


class JsonCodec:
    """UTF-8 JSON, one object per frame; readable and easy for any client to speak."""

    kind = CodecKind.JSON

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        self.max_frame_bytes = max_frame_bytes

    def encode(self, frame: Frame) -> bytes:
        """Return compact JSON bytes with the ``type`` tag first."""
        obj: dict[str, object] = {"type": str(frame.TYPE)}
        obj.update(typing.cast(dict[str, object], _to_json_value(frame)))
        return json.dumps(obj, separators=(",", ":")).encode("utf-8")

    def decode(self, data: bytes) -> Frame:
        """Parse and type-check one frame; unknown keys are ignored for forward compatibility."""
        if len(data) > self.max_frame_bytes:
            raise DecodeError(ErrorCode.TOO_LARGE, f"frame over {self.max_frame_bytes} bytes")
        try:
            obj = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise DecodeError(ErrorCode.BAD_FRAME, "not UTF-8 JSON") from exc
        if not isinstance(obj, dict):
            raise DecodeError(ErrorCode.BAD_FRAME, "frame is not a JSON object")
        tag = obj.get("type")
        if not isinstance(tag, str) or tag not in FrameType._value2member_map_:
            raise DecodeError(ErrorCode.UNKNOWN_TYPE, f"unknown frame type {tag!r}")
        cls = FRAME_CLASSES[FrameType(tag)]
        return typing.cast(Frame, _build(cls, obj))


def make_codec(kind: CodecKind, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> Codec:
    """Return a codec of ``kind``; protobuf is imported only when asked for."""
    if kind is CodecKind.JSON:
        return JsonCodec(max_frame_bytes)
    from reference_impl.codec_protobuf import ProtobufCodec

    return ProtobufCodec(max_frame_bytes)
