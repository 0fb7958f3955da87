"""A deterministic in-memory network joining one :class:`Server` and many clients.

Frames wait in :attr:`Network.pending` until a test chooses what happens to
each: deliver (in any order, which is how reordering happens), drop, duplicate
or push back. Partitions cut a user off in both directions; server components
crash and restart through the server. Nothing is random here: every choice is
the caller's, so a failing Hypothesis run replays exactly.

The network also records outcome data for :mod:`reference_impl.checker`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from reference_impl.client import Acked, Client, ClientState, Displayed, Failed, Output
from reference_impl.frames import Frame
from reference_impl.server import Outgoing, Server


@dataclass(slots=True)
class InFlight:
    """A frame on the wire: to the server (``to_server``) or to ``user``'s client."""

    to_server: bool
    user: str
    conn_id: str
    frame: Frame


ServerObserver = Callable[[str, str, Frame], None]
"""Called with (user, conn_id, frame) for every frame the server emits."""


@dataclass(slots=True)
class Network:
    """In-memory transport, clock and outcome recorder; see the module docstring."""

    server: Server
    clients: dict[str, Client]
    now_s: float = 0.0
    pending: list[InFlight] = field(default_factory=list)
    conn_of: dict[str, str] = field(default_factory=dict)
    partitioned: set[str] = field(default_factory=set)
    messages: dict[str, dict[str, object]] = field(default_factory=dict)
    displays: list[dict[str, object]] = field(default_factory=list)
    shown: list[tuple[str, Displayed]] = field(default_factory=list)
    observer: ServerObserver | None = None
    _conn_user: dict[str, str] = field(default_factory=dict)
    _next_conn: int = 0

    # -- connections ------------------------------------------------------------------

    def connect(self, user: str) -> None:
        """Open a connection for ``user`` (closing any previous one)."""
        if user in self.conn_of:
            self.disconnect(user)
        self._next_conn += 1
        conn_id = f"conn-{self._next_conn}"
        self.conn_of[user] = conn_id
        self._conn_user[conn_id] = user
        self.server.connect(conn_id)
        self._from_client(user, self.clients[user].connect(self.now_s))

    def disconnect(self, user: str) -> None:
        """Close ``user``'s connection; frames in flight on it are lost."""
        conn_id = self.conn_of.pop(user, None)
        if conn_id is None:
            return
        self.server.disconnect(conn_id)
        self.clients[user].disconnected(self.now_s)
        self.pending = [f for f in self.pending if f.conn_id != conn_id]

    def online(self, user: str) -> bool:
        """Whether ``user`` has an open connection."""
        return user in self.conn_of

    # -- user actions -------------------------------------------------------------------

    def send(self, user: str, conv_id: str, plaintext: bytes) -> str:
        """``user`` sends ``plaintext``; returns the msg_id."""
        msg_id, out = self.clients[user].send(conv_id, plaintext, self.now_s)
        self.messages[msg_id] = {
            "msg_id": msg_id,
            "conv_id": conv_id,
            "sender": user,
            "seq": -1,
            "send_time_s": self.now_s,
            "ack_time_s": None,
            "acked": False,
            "failed": False,
        }
        self._from_client(user, out)
        return msg_id

    # -- frame choices ------------------------------------------------------------------

    def deliver(self, index: int) -> None:
        """Deliver pending frame ``index`` (modulo the queue length)."""
        if not self.pending:
            return
        item = self.pending.pop(index % len(self.pending))
        if item.user in self.partitioned or self.conn_of.get(item.user) != item.conn_id:
            return
        if item.to_server:
            self._from_server(self.server.receive(item.conn_id, item.frame, self.now_s))
        else:
            self._from_client(item.user, self.clients[item.user].receive(item.frame, self.now_s))

    def drop(self, index: int) -> None:
        """Lose pending frame ``index``."""
        if self.pending:
            self.pending.pop(index % len(self.pending))

    def duplicate(self, index: int) -> None:
        """Put a second copy of pending frame ``index`` at the end of the queue."""
        if self.pending:
            self.pending.append(self.pending[index % len(self.pending)])

    def push_back(self, index: int) -> None:
        """Delay pending frame ``index`` behind every other frame."""
        if self.pending:
            self.pending.append(self.pending.pop(index % len(self.pending)))

    def partition(self, user: str) -> None:
        """Cut ``user`` off: frames to and from it are lost until :meth:`heal`."""
        self.partitioned.add(user)

    def heal(self) -> None:
        """End every partition."""
        self.partitioned.clear()

    # -- faults -------------------------------------------------------------------------

    def crash(self, component: str) -> None:
        """Crash a server component; a gateway crash closes every connection."""
        closed = set(self.server.crash(component))
        for user, conn_id in list(self.conn_of.items()):
            if conn_id in closed:
                del self.conn_of[user]
                self.clients[user].disconnected(self.now_s)
        self.pending = [f for f in self.pending if f.conn_id not in closed]

    def restart(self, component: str) -> None:
        """Restart a crashed server component."""
        self.server.restart(component)

    # -- time ---------------------------------------------------------------------------

    def advance(self, dt_s: float) -> None:
        """Move the clock forward and fire the timers of the server and online clients."""
        self.now_s += dt_s
        self._from_server(self.server.tick(self.now_s))
        for user in sorted(self.conn_of):
            self._from_client(user, self.clients[user].tick(self.now_s))

    def next_deadline_s(self) -> float | None:
        """Earliest timer among the server and online clients."""
        times = [self.server.next_deadline_s()]
        times += [self.clients[u].next_deadline_s() for u in self.conn_of]
        return min((t for t in times if t is not None), default=None)

    def flush(self, max_steps: int = 10_000) -> None:
        """Deliver every pending frame in order, and then whatever they cause."""
        for _ in range(max_steps):
            if not self.pending:
                return
            self.deliver(0)
        raise RuntimeError("network did not quiesce")

    def settle(self, quiet_s: float = 30.0, max_rounds: int = 500) -> None:
        """Heal-and-settle: end partitions, restart everything, reconnect every client,
        and run until nothing is pending and no timer fires within ``quiet_s``."""
        self.heal()
        server = self.server
        if not server.gateway_up:
            self.restart("gateway")
        if not server.service.up:
            self.restart("service")
        if not server.broker.up:
            self.restart("broker")
        for i, replica in enumerate(server.store.replicas):
            if not replica.up:
                self.restart(f"store.{i}")
        for user in sorted(self.clients):
            self.connect(user)
        for _ in range(max_rounds):
            self.flush()
            deadline = self.next_deadline_s()
            if deadline is None or deadline > self.now_s + quiet_s:
                return
            self.advance(max(0.0, deadline - self.now_s))
        raise RuntimeError("system did not settle")

    # -- plumbing -----------------------------------------------------------------------

    def _from_client(self, user: str, out: Output) -> None:
        for effect in out.effects:
            self._record(user, effect)
        conn_id = self.conn_of.get(user)
        if conn_id is None or user in self.partitioned:
            return
        self.pending.extend(InFlight(True, user, conn_id, f) for f in out.frames)

    def _from_server(self, outgoing: list[Outgoing]) -> None:
        for conn_id, frame in outgoing:
            user = self._conn_user[conn_id]
            if self.observer is not None:
                self.observer(user, conn_id, frame)
            if user not in self.partitioned:
                self.pending.append(InFlight(False, user, conn_id, frame))

    def _record(self, user: str, effect: object) -> None:
        if isinstance(effect, Displayed):
            self.shown.append((user, effect))
            self.displays.append(
                {
                    "msg_id": effect.msg_id,
                    "conv_id": effect.conv_id,
                    "recipient": user,
                    "seq": effect.seq,
                    "display_time_s": effect.time_s,
                }
            )
        elif isinstance(effect, Acked) and effect.msg_id in self.messages:
            record = self.messages[effect.msg_id]
            record.update(acked=True, seq=effect.seq, ack_time_s=effect.time_s)
        elif isinstance(effect, Failed) and effect.msg_id in self.messages:
            self.messages[effect.msg_id]["failed"] = True

    def client_state(self, user: str) -> ClientState:
        """The connection state of ``user``'s client."""
        return self.clients[user].state
