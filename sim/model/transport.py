"""The ways a client and its gateway exchange frames: WebSocket, long polling, short polling.

Everything that differs between transports lives in one :class:`ClientTransport`
subclass per kind, chosen by :func:`make_transport` from the registry
:data:`TRANSPORTS`; the clients, the gateway and the delivery read its traits
once, when they are built, and never test the kind again.

To add a transport: subclass :class:`ClientTransport`, set its class traits
(and override :meth:`ClientTransport.frame_bytes` if its framing differs),
register it in :data:`TRANSPORTS` under a new ``TransportKind`` value, and
test its traits in ``tests/test_sim_transport.py`` and its behaviour end to
end in ``tests/test_sim_message_path.py``.
"""

from __future__ import annotations

from typing import ClassVar

from sim.scenario.architecture import Transport, TransportKind

#: TCP handshake (1 RTT) + TLS 1.3 full handshake (1 RTT, RFC 8446 §2) before the first request.
HTTP_CONNECT_RTTS = 2.0
#: ... plus the WebSocket opening handshake, an HTTP Upgrade round trip (RFC 6455 §4).
WEBSOCKET_CONNECT_RTTS = 3.0


def websocket_header_bytes(payload_bytes: float, masked: bool) -> int:
    """WebSocket frame header size (RFC 6455 §5.2): 2 B, +2 or +8 for the length, +4 mask."""
    extra = 0 if payload_bytes < 126 else (2 if payload_bytes < 65536 else 8)
    return 2 + extra + (4 if masked else 0)


class ClientTransport:
    """One transport's traits. Subclasses set the class variables below.

    Extension points: the class traits, and :meth:`frame_bytes` for the
    transport's framing overhead.
    """

    kind: ClassVar[TransportKind]
    #: each send, poll and sync is an HTTP request carrying headers and the access token
    #: (a WebSocket sends frames on one upgraded connection, authorized once)
    http: ClassVar[bool]
    #: the server pushes a message to a connected client; otherwise it waits for a poll
    pushes: ClassVar[bool]
    #: a poll that finds nothing is held until a message comes or ``long_poll_timeout_s``
    holds_polls: ClassVar[bool] = False
    #: the client polls again as soon as a poll returns
    polls_on_reply: ClassVar[bool] = False
    #: the client polls every ``poll_interval_s``, whatever the replies
    polls_on_timer: ClassVar[bool] = False
    #: round trips to set up a connection before the first request
    connect_rtts: ClassVar[float] = HTTP_CONNECT_RTTS
    #: a new connection makes an HTTP Upgrade exchange (its headers counted at connect)
    upgrades: ClassVar[bool] = False

    def __init__(self, spec: Transport) -> None:
        self.poll_interval_s = spec.poll_interval_s
        self.long_poll_timeout_s = spec.long_poll_timeout_s
        #: HTTP request and response headers, bytes (also a WebSocket's Upgrade exchange)
        self.header_bytes = spec.http_header_bytes

    @property
    def polls(self) -> bool:
        """Whether connected clients poll for their messages."""
        return not self.pushes

    def frame_bytes(self, body_bytes: int) -> tuple[int, int]:
        """Bytes of a request carrying ``body_bytes``, up (client to server) and down:
        HTTP headers, counted once, with the request."""
        return body_bytes + self.header_bytes, body_bytes


class WebSocket(ClientTransport):
    """One upgraded connection per session; the server pushes (RFC 6455)."""

    kind = TransportKind.WEBSOCKET
    http = False
    pushes = True
    connect_rtts = WEBSOCKET_CONNECT_RTTS
    upgrades = True

    def frame_bytes(self, body_bytes: int) -> tuple[int, int]:
        """Frames carry their RFC 6455 header, masked upstream."""
        return (
            body_bytes + websocket_header_bytes(body_bytes, True),
            body_bytes + websocket_header_bytes(body_bytes, False),
        )


class LongPolling(ClientTransport):
    """HTTP requests; a poll is held until a message comes, then the client polls again."""

    kind = TransportKind.LONG_POLLING
    http = True
    pushes = False
    holds_polls = True
    polls_on_reply = True


class ShortPolling(ClientTransport):
    """HTTP requests; the client polls every ``poll_interval_s`` and gets what waits."""

    kind = TransportKind.SHORT_POLLING
    http = True
    pushes = False
    polls_on_timer = True


#: the transport of each kind
TRANSPORTS: dict[TransportKind, type[ClientTransport]] = {
    t.kind: t for t in (WebSocket, LongPolling, ShortPolling)
}


def make_transport(spec: Transport) -> ClientTransport:
    """The transport a scenario's ``architecture.transport`` names."""
    return TRANSPORTS[spec.kind](spec)


__all__ = [
    "HTTP_CONNECT_RTTS",
    "TRANSPORTS",
    "WEBSOCKET_CONNECT_RTTS",
    "ClientTransport",
    "LongPolling",
    "ShortPolling",
    "WebSocket",
    "make_transport",
    "websocket_header_bytes",
]
