"""The frames of the wire protocol, as plain immutable values.

Every frame is a frozen dataclass whose fields are ``str``, ``int``, ``bool``,
``bytes``, an :class:`ErrorCode`, another frame-part dataclass or a tuple of
them. That restriction is what lets one generic JSON codec and one generic
Protocol Buffers codec encode every frame the same way (see ``docs/protocol.md``).

Payloads (``Send.payload``, ``Deliver.payload``) are opaque bytes: with end-to-end
encryption they are ciphertext envelopes, and the server never looks inside.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import StrEnum
from typing import ClassVar

MAX_INT64 = 2**63 - 1
"""Largest integer a frame field may carry (the protobuf encoding uses int64)."""

MAX_ID_CHARS = 128
"""Longest ``msg_id``, ``conv_id`` or user name accepted, in characters."""


class FrameType(StrEnum):
    """The ``type`` tag of each frame on the wire."""

    HELLO = "hello"
    WELCOME = "welcome"
    SEND = "send"
    SEND_ACK = "send_ack"
    DELIVER = "deliver"
    DELIVERY_ACK = "delivery_ack"
    SYNC_REQUEST = "sync_request"
    SYNC_RESPONSE = "sync_response"
    MEMBERSHIP = "membership"
    ERROR = "error"


class ErrorCode(StrEnum):
    """Why the server refused a frame; carried in :class:`Error` frames."""

    BAD_FRAME = "bad_frame"
    UNKNOWN_TYPE = "unknown_type"
    TOO_LARGE = "too_large"
    UNAUTHENTICATED = "unauthenticated"
    FORBIDDEN = "forbidden"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True, slots=True)
class Member:
    """A conversation member and the X25519 public key it registered (may be empty)."""

    user: str
    public_key: bytes


@dataclass(frozen=True, slots=True)
class ConvInfo:
    """A conversation's current membership; ``version`` grows on every join or leave."""

    conv_id: str
    version: int
    members: tuple[Member, ...]


@dataclass(frozen=True, slots=True)
class Hello:
    """Client → server, first frame: a bearer token (JWT or opaque) and the identity key."""

    TYPE: ClassVar[FrameType] = FrameType.HELLO
    token: str
    public_key: bytes


@dataclass(frozen=True, slots=True)
class Welcome:
    """Server → client: authentication succeeded; the user's conversations follow."""

    TYPE: ClassVar[FrameType] = FrameType.WELCOME
    user: str
    conversations: tuple[ConvInfo, ...]


@dataclass(frozen=True, slots=True)
class Send:
    """Client → server: submit a message; re-sending the same ``msg_id`` is safe."""

    TYPE: ClassVar[FrameType] = FrameType.SEND
    msg_id: str
    conv_id: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class SendAck:
    """Server → sender: the message reached the durability point and has this ``seq``."""

    TYPE: ClassVar[FrameType] = FrameType.SEND_ACK
    msg_id: str
    conv_id: str
    seq: int


@dataclass(frozen=True, slots=True)
class Deliver:
    """Server → recipient: one message; the recipient must answer with a DeliveryAck."""

    TYPE: ClassVar[FrameType] = FrameType.DELIVER
    msg_id: str
    conv_id: str
    seq: int
    sender: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class DeliveryAck:
    """Client → server: the delivery of ``msg_id`` arrived; stop redelivering it."""

    TYPE: ClassVar[FrameType] = FrameType.DELIVERY_ACK
    msg_id: str
    conv_id: str
    seq: int


@dataclass(frozen=True, slots=True)
class SyncRequest:
    """Client → server: send me the messages of ``conv_id`` with ``seq > after_seq``."""

    TYPE: ClassVar[FrameType] = FrameType.SYNC_REQUEST
    conv_id: str
    after_seq: int
    limit: int


@dataclass(frozen=True, slots=True)
class SyncResponse:
    """Server → client: messages after ``after_seq`` in seq order.

    ``high_seq`` is the highest seq the conversation has assigned. When
    ``complete`` is true every replica was read, so a seq in
    ``(after_seq, min(high_seq, last returned or high_seq)]`` that is absent was
    destroyed and will never arrive: the client may skip it.
    """

    TYPE: ClassVar[FrameType] = FrameType.SYNC_RESPONSE
    conv_id: str
    after_seq: int
    messages: tuple[Deliver, ...]
    high_seq: int
    complete: bool


@dataclass(frozen=True, slots=True)
class Membership:
    """Server → member (and former member): the conversation's membership changed."""

    TYPE: ClassVar[FrameType] = FrameType.MEMBERSHIP
    conv: ConvInfo


@dataclass(frozen=True, slots=True)
class Error:
    """Server → client: a frame was refused. ``msg_id``/``conv_id`` say which, if known."""

    TYPE: ClassVar[FrameType] = FrameType.ERROR
    code: ErrorCode
    detail: str
    msg_id: str
    conv_id: str


Frame = (
    Hello
    | Welcome
    | Send
    | SendAck
    | Deliver
    | DeliveryAck
    | SyncRequest
    | SyncResponse
    | Membership
    | Error
)

FRAME_CLASSES: dict[FrameType, type[Frame]] = {
    cls.TYPE: cls
    for cls in (
        Hello,
        Welcome,
        Send,
        SendAck,
        Deliver,
        DeliveryAck,
        SyncRequest,
        SyncResponse,
        Membership,
        Error,
    )
}


def error(code: ErrorCode, detail: str, msg_id: str = "", conv_id: str = "") -> Error:
    """Build an :class:`Error` frame with optional references."""
    return Error(code=code, detail=detail, msg_id=msg_id, conv_id=conv_id)


def validate(part: object) -> str | None:
    """Check the value ranges a codec cannot express; return a reason or ``None``.

    Codecs guarantee field *types*; this guarantees that integers are
    non-negative int64 values and identifiers are short and non-empty where the
    protocol needs them, so the server can trust a frame once it passes.
    """
    for f in fields(part):  # type: ignore[arg-type]
        value = getattr(part, f.name)
        if isinstance(value, bool):
            continue
        if isinstance(value, int) and not 0 <= value <= MAX_INT64:
            return f"{f.name} out of range"
        if isinstance(value, str) and f.name in ("msg_id", "conv_id", "user", "sender"):
            if len(value) > MAX_ID_CHARS:
                return f"{f.name} longer than {MAX_ID_CHARS} characters"
            if not value and not isinstance(part, Error):
                return f"{f.name} is empty"
        if isinstance(value, tuple):
            for item in value:
                reason = validate(item)
                if reason is not None:
                    return reason
        elif isinstance(value, ConvInfo):
            reason = validate(value)
            if reason is not None:
                return reason
    return None
