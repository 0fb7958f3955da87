"""The sans-IO server: gateway, presence, membership and fan-out around the message service.

The server is a state machine. Drivers call :meth:`Server.receive` (or
:meth:`Server.receive_bytes`) with the frames a connection sent,
:meth:`Server.tick` when time passes, and send the returned
``(conn_id, frame)`` pairs. Time is always passed in as ``now_s`` (seconds);
the server owns no clock, socket or global randomness.

The gateway part authenticates the first ``Hello`` of a connection, rate-limits
sends per user with a token bucket and authorizes every conversation access
against the membership: only members send to, sync from or receive a
conversation. Only frames that pass the gateway reach the message service.
"""

from __future__ import annotations

from dataclasses import dataclass

from reference_impl.auth import Authenticator, AuthError, Principal
from reference_impl.broker import BrokerLog
from reference_impl.codec import DEFAULT_MAX_FRAME_BYTES, Codec, CodecKind, DecodeError, make_codec
from reference_impl.frames import (
    ConvInfo,
    Deliver,
    DeliveryAck,
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
    error,
    validate,
)
from reference_impl.inbox import Inbox
from reference_impl.ratelimit import RateLimiter
from reference_impl.service import AckAfter, MessageService
from reference_impl.store import ReplicatedStore, StoredMessage

Outgoing = tuple[str, Frame]
"""A frame to send and the id of the connection to send it on."""


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Architecture knobs of the reference server. Times in seconds."""

    replicas: int = 3
    write_quorum: int = 2
    replication_delay_s: float = 0.05
    ack_after: AckAfter = AckAfter.STORE
    write_delay_s: float = 0.05
    partitions: int = 4
    redelivery_timeout_s: float = 1.0
    rate_per_s: float = 0.0
    burst: float = 20.0
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    max_sync_limit: int = 100


@dataclass(slots=True)
class Connection:
    """A client connection as the gateway sees it."""

    conn_id: str
    codec: Codec
    principal: Principal | None = None


@dataclass(slots=True)
class Conversation:
    """Membership of one conversation; ``version`` grows with every change."""

    conv_id: str
    members: list[str]
    version: int = 1


class Server:
    """The reference messaging server; see the module docstring."""

    def __init__(self, authenticator: Authenticator, config: ServerConfig | None = None) -> None:
        self.config = config or ServerConfig()
        c = self.config
        self.authenticator = authenticator
        self.store = ReplicatedStore(c.replicas, c.write_quorum, c.replication_delay_s)
        self.broker = BrokerLog(c.partitions)
        self.inbox = Inbox(c.redelivery_timeout_s)
        self.service = MessageService(
            self.store, self.broker, self.inbox, c.ack_after, c.write_delay_s
        )
        self.rate_limiter = RateLimiter(c.rate_per_s, c.burst)
        self.connections: dict[str, Connection] = {}
        self.presence: dict[str, str] = {}
        self.conversations: dict[str, Conversation] = {}
        self.public_keys: dict[str, bytes] = {}
        self.gateway_up = True

    # -- administration -------------------------------------------------------------

    def register_user(self, user: str, public_key: bytes) -> None:
        """Record ``user``'s X25519 identity key (also updated by ``Hello``)."""
        self.public_keys[user] = public_key

    def create_conversation(self, conv_id: str, members: list[str]) -> list[Outgoing]:
        """Create ``conv_id`` with ``members``; online members are told."""
        if conv_id in self.conversations:
            raise ValueError(f"conversation {conv_id!r} exists")
        self.conversations[conv_id] = Conversation(conv_id, sorted(set(members)))
        return self._announce(conv_id, [])

    def join(self, conv_id: str, user: str) -> list[Outgoing]:
        """Add ``user`` to ``conv_id``; members (the new one included) are told."""
        conv = self.conversations[conv_id]
        if user in conv.members:
            return []
        conv.members = sorted([*conv.members, user])
        conv.version += 1
        return self._announce(conv_id, [])

    def leave(self, conv_id: str, user: str) -> list[Outgoing]:
        """Remove ``user`` from ``conv_id``; the remaining members and the leaver are told."""
        conv = self.conversations[conv_id]
        if user not in conv.members:
            return []
        conv.members = [m for m in conv.members if m != user]
        conv.version += 1
        self.inbox.drop_conversation(user, conv_id)
        return self._announce(conv_id, [user])

    def conv_info(self, conv_id: str) -> ConvInfo:
        """The membership frame part for ``conv_id``."""
        conv = self.conversations[conv_id]
        members = tuple(Member(u, self.public_keys.get(u, b"")) for u in conv.members)
        return ConvInfo(conv_id, conv.version, members)

    def is_member(self, user: str, conv_id: str) -> bool:
        """Whether ``user`` is currently a member of ``conv_id``."""
        conv = self.conversations.get(conv_id)
        return conv is not None and user in conv.members

    def _announce(self, conv_id: str, extra_users: list[str]) -> list[Outgoing]:
        frame = Membership(self.conv_info(conv_id))
        users = [*self.conversations[conv_id].members, *extra_users]
        return [(self.presence[u], frame) for u in users if u in self.presence]

    # -- connections ----------------------------------------------------------------

    def connect(self, conn_id: str, codec: CodecKind = CodecKind.JSON) -> None:
        """A transport connection opened; it must authenticate with ``Hello`` first."""
        self.connections[conn_id] = Connection(
            conn_id, make_codec(codec, self.config.max_frame_bytes)
        )

    def disconnect(self, conn_id: str) -> None:
        """A transport connection closed; its user goes offline if it was their current one."""
        conn = self.connections.pop(conn_id, None)
        if conn is not None:
            self.disconnect_presence(conn)

    def receive_bytes(self, conn_id: str, data: bytes, now_s: float) -> list[tuple[str, bytes]]:
        """Decode ``data`` with the connection's codec, handle it, and encode the replies."""
        conn = self.connections.get(conn_id)
        if conn is None:
            return []
        try:
            frame = conn.codec.decode(data)
        except DecodeError as exc:
            return [(conn_id, conn.codec.encode(error(exc.code, exc.detail)))]
        return self.encode(self.receive(conn_id, frame, now_s))

    def encode(self, outgoing: list[Outgoing]) -> list[tuple[str, bytes]]:
        """Encode frames with each destination's codec; frames to closed connections vanish."""
        out = []
        for conn_id, frame in outgoing:
            conn = self.connections.get(conn_id)
            if conn is not None:
                out.append((conn_id, conn.codec.encode(frame)))
        return out

    def receive(self, conn_id: str, frame: Frame, now_s: float) -> list[Outgoing]:
        """Handle one decoded frame from ``conn_id``; return the frames to send."""
        conn = self.connections.get(conn_id)
        if conn is None or not self.gateway_up:
            return []
        reason = validate(frame)
        if reason is not None:
            return [(conn_id, error(ErrorCode.BAD_FRAME, reason))]
        if isinstance(frame, Hello):
            return self._hello(conn, frame, now_s)
        principal = conn.principal
        if principal is not None and now_s >= principal.expires_at_s:
            conn.principal = None
            self.disconnect_presence(conn)
            principal = None
        if principal is None:
            return [(conn_id, error(ErrorCode.UNAUTHENTICATED, "send hello with a valid token"))]
        user = principal.user
        if isinstance(frame, Send):
            return self._send(conn_id, user, frame, now_s)
        if isinstance(frame, SyncRequest):
            return self._sync(conn_id, user, frame)
        if isinstance(frame, DeliveryAck):
            self.inbox.ack(user, frame.msg_id)
            return []
        return [(conn_id, error(ErrorCode.BAD_FRAME, f"{frame.TYPE} is not a client frame"))]

    def disconnect_presence(self, conn: Connection) -> None:
        """Mark the connection's user offline if it was their current connection."""
        for user, cid in list(self.presence.items()):
            if cid == conn.conn_id:
                del self.presence[user]

    def _hello(self, conn: Connection, frame: Hello, now_s: float) -> list[Outgoing]:
        try:
            principal = self.authenticator.authenticate(frame.token, now_s)
        except AuthError as exc:
            return [(conn.conn_id, error(ErrorCode.UNAUTHENTICATED, str(exc)))]
        if conn.principal is not None and conn.principal.user != principal.user:
            return [(conn.conn_id, error(ErrorCode.BAD_FRAME, "connection bound to another user"))]
        user = principal.user
        conn.principal = principal
        mine = [c for c in sorted(self.conversations) if self.is_member(user, c)]
        out: list[Outgoing] = []
        if frame.public_key and self.public_keys.get(user) != frame.public_key:
            self.public_keys[user] = frame.public_key
            for conv_id in mine:  # the other members need the new key to encrypt to us
                out.extend(self._announce(conv_id, []))
        self.presence[user] = conn.conn_id
        out.append((conn.conn_id, Welcome(user, tuple(self.conv_info(c) for c in mine))))
        for pending in self.inbox.due(user, now_s, everything=True):
            out.extend(self._push(user, pending.message, now_s))
            pending.sent_at_s = now_s
        return out

    def _send(self, conn_id: str, user: str, frame: Send, now_s: float) -> list[Outgoing]:
        if not self.is_member(user, frame.conv_id):
            return [
                (conn_id, error(ErrorCode.FORBIDDEN, "not a member", frame.msg_id, frame.conv_id))
            ]
        if not self.rate_limiter.allow(user, now_s):
            return [
                (conn_id, error(ErrorCode.RATE_LIMITED, "slow down", frame.msg_id, frame.conv_id))
            ]
        result = self.service.accept(
            conn_id, user, frame.msg_id, frame.conv_id, frame.payload, now_s
        )
        if result.message is None:
            code = result.error or ErrorCode.UNAVAILABLE
            return [(conn_id, error(code, result.detail, frame.msg_id, frame.conv_id))]
        out: list[Outgoing] = [(conn_id, SendAck(frame.msg_id, frame.conv_id, result.message.seq))]
        out.extend(self._fanout(now_s))
        return out

    def _sync(self, conn_id: str, user: str, frame: SyncRequest) -> list[Outgoing]:
        if not self.is_member(user, frame.conv_id):
            return [(conn_id, error(ErrorCode.FORBIDDEN, "not a member", conv_id=frame.conv_id))]
        limit = max(1, min(frame.limit, self.config.max_sync_limit))
        answer = self.service.read_after(conn_id, frame.conv_id, frame.after_seq, limit)
        if answer is None:
            return [(conn_id, error(ErrorCode.UNAVAILABLE, "service down", conv_id=frame.conv_id))]
        messages, high_seq, complete = answer
        delivers = tuple(_deliver(m) for m in messages)
        response = SyncResponse(frame.conv_id, frame.after_seq, delivers, high_seq, complete)
        return [(conn_id, response)]

    # -- fan-out and redelivery -------------------------------------------------------

    def _push(self, user: str, message: StoredMessage, now_s: float) -> list[Outgoing]:
        conn_id = self.presence.get(user)
        if conn_id is None or not self.is_member(user, message.conv_id):
            return []
        return [(conn_id, _deliver(message))]

    def _fanout(self, now_s: float) -> list[Outgoing]:
        out: list[Outgoing] = []
        if not self.service.up:
            return out
        for message in self.broker.consume():
            conv = self.conversations[message.conv_id]
            for user in conv.members:
                if user == message.sender:
                    continue
                pending = self.inbox.add(user, message)
                if user in self.presence and pending.sent_at_s is None:
                    out.extend(self._push(user, message, now_s))
                    pending.sent_at_s = now_s
        return out

    def tick(self, now_s: float) -> list[Outgoing]:
        """Advance timers: replication, deferred writes, fan-out, redelivery."""
        self.store.tick(now_s)
        self.service.tick(now_s)
        out = self._fanout(now_s)
        if self.service.up and self.gateway_up:
            for user in list(self.presence):
                for pending in self.inbox.due(user, now_s):
                    out.extend(self._push(user, pending.message, now_s))
                    pending.sent_at_s = now_s
        return out

    def next_deadline_s(self) -> float | None:
        """Earliest time at which :meth:`tick` has work, if any."""
        times = [
            self.store.next_deadline_s(),
            self.service.next_deadline_s(),
            self.inbox.next_deadline_s(list(self.presence)),
        ]
        return min((t for t in times if t is not None), default=None)

    # -- faults -----------------------------------------------------------------------

    def crash(self, component: str) -> list[str]:
        """Crash ``gateway``, ``service``, ``broker`` or ``store.N``.

        Returns the ids of the connections that closed (only a gateway crash
        closes connections), so the driver can tell the clients.
        """
        if component == "gateway":
            closed = list(self.connections)
            self.connections.clear()
            self.presence.clear()
            self.gateway_up = False
            return closed
        if component == "service":
            self.service.crash()
        elif component == "broker":
            self.broker.crash()
        elif component.startswith("store."):
            self.store.crash(int(component.removeprefix("store.")))
        else:
            raise ValueError(f"unknown component {component!r}")
        return []

    def wipe(self, replica: int) -> None:
        """Destroy store replica ``replica``'s disk (it goes down)."""
        self.store.wipe(replica)

    def restart(self, component: str) -> None:
        """Bring a crashed component back (without the memory it lost)."""
        if component == "gateway":
            self.gateway_up = True
        elif component == "service":
            self.service.restart()
        elif component == "broker":
            self.broker.restart()
        elif component.startswith("store."):
            self.store.restart(int(component.removeprefix("store.")))
        else:
            raise ValueError(f"unknown component {component!r}")

    def payloads(self) -> list[bytes]:
        """Every message payload the server holds anywhere (no-plaintext invariant)."""
        return [
            *self.store.payloads(),
            *self.broker.payloads(),
            *self.inbox.payloads(),
            *self.service.payloads(),
        ]


def _deliver(message: StoredMessage) -> Deliver:
    return Deliver(message.msg_id, message.conv_id, message.seq, message.sender, message.payload)
