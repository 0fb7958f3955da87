"""Hypothesis strategies shared by the reference-implementation tests."""

from __future__ import annotations

from hypothesis import strategies as st

from reference_impl.frames import (
    MAX_INT64,
    ConvInfo,
    Deliver,
    DeliveryAck,
    Error,
    ErrorCode,
    Frame,
    Hello,
    Member,
    Membership,
    Send,
    SendAck,
    SyncRequest,
    SyncResponse,
    Welcome,
)
from reference_impl.server import ServerConfig
from reference_impl.service import AckAfter

# Protobuf strings must be valid UTF-8, so surrogates are excluded.
texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
ids = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=12)
seqs = st.integers(min_value=0, max_value=MAX_INT64)
payloads = st.binary(max_size=64)

members = st.builds(Member, user=ids, public_key=st.binary(max_size=32))
conv_infos = st.builds(
    ConvInfo, conv_id=ids, version=seqs, members=st.lists(members, max_size=3).map(tuple)
)
delivers = st.builds(Deliver, msg_id=ids, conv_id=ids, seq=seqs, sender=ids, payload=payloads)

frame_strategies: list[st.SearchStrategy[Frame]] = [
    st.builds(Hello, token=texts, public_key=st.binary(max_size=32)),
    st.builds(Welcome, user=ids, conversations=st.lists(conv_infos, max_size=2).map(tuple)),
    st.builds(Send, msg_id=ids, conv_id=ids, payload=payloads),
    st.builds(SendAck, msg_id=ids, conv_id=ids, seq=seqs),
    delivers,
    st.builds(DeliveryAck, msg_id=ids, conv_id=ids, seq=seqs),
    st.builds(SyncRequest, conv_id=ids, after_seq=seqs, limit=seqs),
    st.builds(
        SyncResponse,
        conv_id=ids,
        after_seq=seqs,
        messages=st.lists(delivers, max_size=3).map(tuple),
        high_seq=seqs,
        complete=st.booleans(),
    ),
    st.builds(Membership, conv=conv_infos),
    st.builds(Error, code=st.sampled_from(ErrorCode), detail=texts, msg_id=texts, conv_id=texts),
]
"""One strategy per frame type, with arbitrary (valid-typed) field values."""

frames: st.SearchStrategy[Frame] = st.one_of(frame_strategies)
"""Any frame."""

server_configs = st.builds(
    ServerConfig,
    replicas=st.just(3),
    write_quorum=st.integers(1, 3),
    ack_after=st.sampled_from(AckAfter),
    rate_per_s=st.sampled_from([0.0, 2.0]),
    burst=st.just(4.0),
)
"""Server architectures the state machine explores."""

components = st.sampled_from(["gateway", "service", "broker", "store.0", "store.1", "store.2"])
time_steps_s = st.sampled_from([0.01, 0.1, 0.5, 1.0, 3.0])
