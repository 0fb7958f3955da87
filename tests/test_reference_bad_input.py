"""Bad input: the server answers with an error frame and stays consistent."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st
from strategies import frames

from reference_impl.auth import JwtAlgorithm, JwtAuthenticator, JwtIssuer, JwtKeys
from reference_impl.codec import CodecKind, make_codec
from reference_impl.frames import (
    Deliver,
    Error,
    ErrorCode,
    Frame,
    Hello,
    Send,
    SendAck,
    SyncRequest,
    SyncResponse,
)
from reference_impl.server import Server, ServerConfig


def _online_server(kind: CodecKind) -> tuple[Server, JwtIssuer]:
    keys = JwtKeys.generate(JwtAlgorithm.HS256, random.Random(0))
    issuer = JwtIssuer(keys)
    server = Server(JwtAuthenticator(keys), ServerConfig(max_frame_bytes=4096))
    server.create_conversation("ab", ["alice", "bob"])
    server.create_conversation("cd", ["carol", "dave"])
    for user in ("alice", "bob"):
        server.connect(user, kind)
        server.receive(user, Hello(issuer.issue(user, 0.0), b""), 0.0)
    return server, issuer


def _sent_and_delivered(server: Server, codec_kind: CodecKind, now_s: float) -> None:
    """Alice sends one message; it is acked and delivered to Bob."""
    codec = make_codec(codec_kind)
    out = server.receive_bytes("alice", codec.encode(Send(f"m{now_s}", "ab", b"x")), now_s)
    frames_out = [(c, codec.decode(b)) for c, b in out]
    assert any(c == "alice" and isinstance(f, SendAck) for c, f in frames_out)
    assert any(c == "bob" and isinstance(f, Deliver) for c, f in frames_out)


@given(data=st.binary(max_size=300), kind=st.sampled_from(CodecKind))
def test_random_bytes_get_an_error_or_a_valid_answer(data: bytes, kind: CodecKind) -> None:
    """Random bytes never crash the server; other traffic still flows afterwards."""
    server, _ = _online_server(kind)
    codec = make_codec(kind)
    for conn_id, raw in server.receive_bytes("alice", data, 1.0):
        assert conn_id in ("alice", "bob")
        codec.decode(raw)  # every answer is itself a well-formed frame
    _sent_and_delivered(server, kind, 2.0)


@given(frame=frames)
def test_random_frames_never_leak_or_break_the_server(frame: Frame) -> None:
    """Any frame from an authenticated client yields at most errors to the sender,
    never data of a conversation it is not in, and leaves the server working."""
    server, _ = _online_server(CodecKind.JSON)
    out = server.receive("alice", frame, 1.0)
    for conn_id, reply in out:
        if isinstance(reply, Deliver | SyncResponse):
            conv_id = reply.conv_id
            assert server.is_member("bob" if conn_id == "bob" else "alice", conv_id)
    _sent_and_delivered(server, CodecKind.JSON, 2.0)


def test_forbidden_conversation_oversize_and_unknown_type_get_error_frames() -> None:
    """Non-member send and sync → FORBIDDEN; oversized → TOO_LARGE; unknown → UNKNOWN_TYPE;
    a server-only frame from a client → BAD_FRAME; unauthenticated → UNAUTHENTICATED."""
    server, _ = _online_server(CodecKind.JSON)
    codec = make_codec(CodecKind.JSON)

    def codes(conn_id: str, data: bytes) -> list[ErrorCode]:
        replies = [codec.decode(b) for _c, b in server.receive_bytes(conn_id, data, 1.0)]
        return [r.code for r in replies if isinstance(r, Error)]

    assert codes("alice", codec.encode(Send("m1", "cd", b"x"))) == [ErrorCode.FORBIDDEN]
    assert codes("alice", codec.encode(SyncRequest("cd", 0, 10))) == [ErrorCode.FORBIDDEN]
    assert codes("alice", codec.encode(Send("m2", "ab", bytes(5000)))) == [ErrorCode.TOO_LARGE]
    assert codes("alice", b'{"type": "warp"}') == [ErrorCode.UNKNOWN_TYPE]
    assert codes("alice", codec.encode(SendAck("m", "ab", 1))) == [ErrorCode.BAD_FRAME]
    assert codes("alice", codec.encode(SyncRequest("ab", -1, 10))) == [ErrorCode.BAD_FRAME]
    server.connect("stranger")
    assert codes("stranger", codec.encode(Send("m3", "ab", b"x"))) == [ErrorCode.UNAUTHENTICATED]
    assert server.store.read_after("cd", 0) == ([], True)
    _sent_and_delivered(server, CodecKind.JSON, 2.0)


def test_unwritten_fire_and_forget_writes_have_no_deadline_while_the_store_is_down() -> None:
    """A write waiting for the store is not due at a time: reporting its old deadline
    would make a driver that advances to the next deadline loop at one instant."""
    from reference_impl.broker import BrokerLog
    from reference_impl.inbox import Inbox
    from reference_impl.service import AckAfter, MessageService
    from reference_impl.store import ReplicatedStore

    store = ReplicatedStore(replicas=1, write_quorum=1, replication_delay_s=0.0)
    inbox = Inbox(redelivery_timeout_s=1.0)
    service = MessageService(store, BrokerLog(1), inbox, ack_after=AckAfter.GATEWAY)
    accepted = service.accept("c1", "alice", "m1", "conv", b"x", 0.0)
    assert accepted.message is not None
    assert service.next_deadline_s() == 0.05
    store.crash(0)
    assert service.next_deadline_s() is None
    store.restart(0)
    assert service.next_deadline_s() == 0.05
