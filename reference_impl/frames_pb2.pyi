from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Member(_message.Message):
    __slots__ = ("user", "public_key")
    USER_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    user: str
    public_key: bytes
    def __init__(self, user: _Optional[str] = ..., public_key: _Optional[bytes] = ...) -> None: ...

class ConvInfo(_message.Message):
    __slots__ = ("conv_id", "version", "members")
    CONV_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    conv_id: str
    version: int
    members: _containers.RepeatedCompositeFieldContainer[Member]
    def __init__(self, conv_id: _Optional[str] = ..., version: _Optional[int] = ..., members: _Optional[_Iterable[_Union[Member, _Mapping]]] = ...) -> None: ...

class Hello(_message.Message):
    __slots__ = ("token", "public_key")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    token: str
    public_key: bytes
    def __init__(self, token: _Optional[str] = ..., public_key: _Optional[bytes] = ...) -> None: ...

class Welcome(_message.Message):
    __slots__ = ("user", "conversations")
    USER_FIELD_NUMBER: _ClassVar[int]
    CONVERSATIONS_FIELD_NUMBER: _ClassVar[int]
    user: str
    conversations: _containers.RepeatedCompositeFieldContainer[ConvInfo]
    def __init__(self, user: _Optional[str] = ..., conversations: _Optional[_Iterable[_Union[ConvInfo, _Mapping]]] = ...) -> None: ...

class Send(_message.Message):
    __slots__ = ("msg_id", "conv_id", "payload")
    MSG_ID_FIELD_NUMBER: _ClassVar[int]
    CONV_ID_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    msg_id: str
    conv_id: str
    payload: bytes
    def __init__(self, msg_id: _Optional[str] = ..., conv_id: _Optional[str] = ..., payload: _Optional[bytes] = ...) -> None: ...

class SendAck(_message.Message):
    __slots__ = ("msg_id", "conv_id", "seq")
    MSG_ID_FIELD_NUMBER: _ClassVar[int]
    CONV_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    msg_id: str
    conv_id: str
    seq: int
    def __init__(self, msg_id: _Optional[str] = ..., conv_id: _Optional[str] = ..., seq: _Optional[int] = ...) -> None: ...

class Deliver(_message.Message):
    __slots__ = ("msg_id", "conv_id", "seq", "sender", "payload")
    MSG_ID_FIELD_NUMBER: _ClassVar[int]
    CONV_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    msg_id: str
    conv_id: str
    seq: int
    sender: str
    payload: bytes
    def __init__(self, msg_id: _Optional[str] = ..., conv_id: _Optional[str] = ..., seq: _Optional[int] = ..., sender: _Optional[str] = ..., payload: _Optional[bytes] = ...) -> None: ...

class DeliveryAck(_message.Message):
    __slots__ = ("msg_id", "conv_id", "seq")
    MSG_ID_FIELD_NUMBER: _ClassVar[int]
    CONV_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    msg_id: str
    conv_id: str
    seq: int
    def __init__(self, msg_id: _Optional[str] = ..., conv_id: _Optional[str] = ..., seq: _Optional[int] = ...) -> None: ...

class SyncRequest(_message.Message):
    __slots__ = ("conv_id", "after_seq", "limit")
    CONV_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    conv_id: str
    after_seq: int
    limit: int
    def __init__(self, conv_id: _Optional[str] = ..., after_seq: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class SyncResponse(_message.Message):
    __slots__ = ("conv_id", "after_seq", "messages", "high_seq", "complete")
    CONV_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    HIGH_SEQ_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_FIELD_NUMBER: _ClassVar[int]
    conv_id: str
    after_seq: int
    messages: _containers.RepeatedCompositeFieldContainer[Deliver]
    high_seq: int
    complete: bool
    def __init__(self, conv_id: _Optional[str] = ..., after_seq: _Optional[int] = ..., messages: _Optional[_Iterable[_Union[Deliver, _Mapping]]] = ..., high_seq: _Optional[int] = ..., complete: _Optional[bool] = ...) -> None: ...

class Membership(_message.Message):
    __slots__ = ("conv",)
    CONV_FIELD_NUMBER: _ClassVar[int]
    conv: ConvInfo
    def __init__(self, conv: _Optional[_Union[ConvInfo, _Mapping]] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("code", "detail", "msg_id", "conv_id")
    CODE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    MSG_ID_FIELD_NUMBER: _ClassVar[int]
    CONV_ID_FIELD_NUMBER: _ClassVar[int]
    code: str
    detail: str
    msg_id: str
    conv_id: str
    def __init__(self, code: _Optional[str] = ..., detail: _Optional[str] = ..., msg_id: _Optional[str] = ..., conv_id: _Optional[str] = ...) -> None: ...

class Frame(_message.Message):
    __slots__ = ("hello", "welcome", "send", "send_ack", "deliver", "delivery_ack", "sync_request", "sync_response", "membership", "error")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    WELCOME_FIELD_NUMBER: _ClassVar[int]
    SEND_FIELD_NUMBER: _ClassVar[int]
    SEND_ACK_FIELD_NUMBER: _ClassVar[int]
    DELIVER_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_ACK_FIELD_NUMBER: _ClassVar[int]
    SYNC_REQUEST_FIELD_NUMBER: _ClassVar[int]
    SYNC_RESPONSE_FIELD_NUMBER: _ClassVar[int]
    MEMBERSHIP_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    hello: Hello
    welcome: Welcome
    send: Send
    send_ack: SendAck
    deliver: Deliver
    delivery_ack: DeliveryAck
    sync_request: SyncRequest
    sync_response: SyncResponse
    membership: Membership
    error: Error
    def __init__(self, hello: _Optional[_Union[Hello, _Mapping]] = ..., welcome: _Optional[_Union[Welcome, _Mapping]] = ..., send: _Optional[_Union[Send, _Mapping]] = ..., send_ack: _Optional[_Union[SendAck, _Mapping]] = ..., deliver: _Optional[_Union[Deliver, _Mapping]] = ..., delivery_ack: _Optional[_Union[DeliveryAck, _Mapping]] = ..., sync_request: _Optional[_Union[SyncRequest, _Mapping]] = ..., sync_response: _Optional[_Union[SyncResponse, _Mapping]] = ..., membership: _Optional[_Union[Membership, _Mapping]] = ..., error: _Optional[_Union[Error, _Mapping]] = ...) -> None: ...
