"""The transports own what differs between them: one class per kind, picked from a
registry; the rest of the model reads their traits (tests of the typed traits here,
of the behaviour end to end in test_sim_message_path.py)."""

from __future__ import annotations

import pytest

from sim.model.transport import (
    TRANSPORTS,
    LongPolling,
    ShortPolling,
    WebSocket,
    make_transport,
    websocket_header_bytes,
)
from sim.scenario.architecture import Transport, TransportKind


def test_every_transport_kind_has_exactly_one_transport() -> None:
    assert set(TRANSPORTS) == set(TransportKind)
    assert all(cls.kind is kind for kind, cls in TRANSPORTS.items())


@pytest.mark.parametrize(
    ("kind", "cls", "pushes", "http", "connect_rtts"),
    [
        (TransportKind.WEBSOCKET, WebSocket, True, False, 3.0),
        (TransportKind.LONG_POLLING, LongPolling, False, True, 2.0),
        (TransportKind.SHORT_POLLING, ShortPolling, False, True, 2.0),
    ],
)
def test_transport_traits(
    kind: TransportKind, cls: type, pushes: bool, http: bool, connect_rtts: float
) -> None:
    t = make_transport(Transport(kind=kind, poll_interval_s=2.5, http_header_bytes=700))
    assert type(t) is cls
    assert (t.pushes, t.polls, t.http, t.connect_rtts) == (pushes, not pushes, http, connect_rtts)
    # exactly one way to learn of a message: a push, a held poll, or a timer
    assert [t.pushes, t.polls_on_reply, t.polls_on_timer].count(True) == 1
    assert t.holds_polls == t.polls_on_reply
    assert t.poll_interval_s == 2.5


def test_websocket_frames_carry_rfc6455_headers_and_http_requests_their_headers() -> None:
    ws = make_transport(Transport(kind=TransportKind.WEBSOCKET, http_header_bytes=700))
    http = make_transport(Transport(kind=TransportKind.LONG_POLLING, http_header_bytes=700))
    assert ws.frame_bytes(100) == (100 + 6, 100 + 2)  # masked upstream
    assert ws.frame_bytes(200) == (200 + 8, 200 + 4)  # 16-bit length
    assert websocket_header_bytes(70_000, False) == 10  # 64-bit length
    assert http.frame_bytes(100) == (800, 100)
    assert ws.upgrades and not http.upgrades
