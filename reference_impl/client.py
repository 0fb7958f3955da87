"""The sans-IO client: outbox with retry, dedup, in-order display, gap and reconnect sync.

Drivers call :meth:`Client.connect` when a transport connection opens,
:meth:`Client.receive` with each frame from the server, :meth:`Client.tick` when
time passes and :meth:`Client.disconnected` when the connection drops; each
returns an :class:`Output` with frames to send and effects for the user
interface (displayed messages, acks, failures). Time is passed in as ``now_s``.

Display rule (DESIGN section 2): per conversation, messages are displayed in
``seq`` order, each at most once (deduplicated by ``msg_id`` and seq). A message
arriving ahead of its predecessors is held and a sync request fills the gap.
Seqs the server reports as destroyed (a complete sync answer without them) are
skipped so that later messages are not held forever.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from enum import Enum, StrEnum

from reference_impl.e2e import DecryptError, DecryptStatus, E2ESession
from reference_impl.frames import (
    ConvInfo,
    Deliver,
    DeliveryAck,
    Error,
    ErrorCode,
    Frame,
    Hello,
    Membership,
    Send,
    SendAck,
    SyncRequest,
    SyncResponse,
    Welcome,
)
from reference_impl.outbox import Outbox, RetryPolicy


class ClientState(StrEnum):
    """Connection state of a client."""

    OFFLINE = "offline"
    CONNECTING = "connecting"
    ONLINE = "online"


class _Slot(Enum):
    """A seq that is consumed without being displayed."""

    OWN = "own"  # this client's own message
    CONSUMED = "consumed"  # destroyed on the server, or a msg_id already displayed


@dataclass(frozen=True, slots=True)
class Displayed:
    """A message shown to the user (``plaintext`` is empty unless ``status`` is OK)."""

    conv_id: str
    msg_id: str
    seq: int
    sender: str
    plaintext: bytes
    status: DecryptStatus
    time_s: float


@dataclass(frozen=True, slots=True)
class Acked:
    """The server acknowledged one of our messages."""

    msg_id: str
    conv_id: str
    seq: int
    time_s: float


@dataclass(frozen=True, slots=True)
class Failed:
    """We gave up on one of our messages."""

    msg_id: str
    conv_id: str
    reason: str
    time_s: float


@dataclass(frozen=True, slots=True)
class AuthRejected:
    """The server refused our token."""

    detail: str
    time_s: float


Effect = Displayed | Acked | Failed | AuthRejected


@dataclass(slots=True)
class Output:
    """What one client step produced."""

    frames: list[Frame] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)


@dataclass(slots=True)
class ConvView:
    """One conversation as this client sees it; ``cursor`` = last seq consumed in order."""

    info: ConvInfo | None = None
    member: bool = False
    cursor: int = 0
    held: dict[int, Deliver | _Slot] = field(default_factory=dict)
    sync_deadline_s: float | None = None


class Client:
    """A messaging client for one user; see the module docstring."""

    def __init__(
        self,
        user: str,
        token: str,
        rng: random.Random,
        e2e: E2ESession | None = None,
        policy: RetryPolicy | None = None,
        sync_timeout_s: float = 1.0,
        sync_limit: int = 50,
    ) -> None:
        self.user = user
        self.token = token
        self.rng = rng
        self.e2e = e2e
        self.outbox = Outbox(policy or RetryPolicy(), rng)
        self.sync_timeout_s = sync_timeout_s
        self.sync_limit = sync_limit
        self.state = ClientState.OFFLINE
        self.views: dict[str, ConvView] = {}
        self.seen: set[str] = set()
        self.redeliveries = 0

    # -- driver interface -----------------------------------------------------------

    def connect(self, now_s: float) -> Output:
        """A connection opened: authenticate."""
        self.state = ClientState.CONNECTING
        public_key = self.e2e.public_key if self.e2e is not None else b""
        return Output(frames=[Hello(self.token, public_key)])

    def disconnected(self, now_s: float) -> None:
        """The connection closed; unacked attempts are void, sync requests forgotten."""
        self.state = ClientState.OFFLINE
        self.outbox.pause()
        for view in self.views.values():
            view.sync_deadline_s = None

    def send(self, conv_id: str, plaintext: bytes, now_s: float) -> tuple[str, Output]:
        """Queue a new message; return its msg_id and the frames to send now.

        With end-to-end encryption the conversation's membership must be known
        (from ``Welcome`` or ``Membership``): there is no one to encrypt to otherwise.
        """
        msg_id = f"{self.user}-{self.rng.getrandbits(64):016x}"
        payload = plaintext
        if self.e2e is not None:
            view = self.views.get(conv_id)
            if view is None or view.info is None:
                raise ValueError(f"{self.user} does not know conversation {conv_id!r}")
            payload = self.e2e.encrypt(view.info, msg_id, plaintext)
        self.outbox.add(msg_id, conv_id, payload, now_s)
        out = Output()
        self._pump(now_s, out)
        return msg_id, out

    def tick(self, now_s: float) -> Output:
        """Fire due timers: send attempts, ack timeouts, sync retries."""
        out = Output()
        self._pump(now_s, out)
        if self.state is ClientState.ONLINE:
            for conv_id, view in self.views.items():
                if view.sync_deadline_s is not None and now_s >= view.sync_deadline_s:
                    self._request_sync(conv_id, view, now_s, out)
        return out

    def next_deadline_s(self) -> float | None:
        """Earliest timer, if any (only while online)."""
        if self.state is not ClientState.ONLINE:
            return None
        times = [v.sync_deadline_s for v in self.views.values() if v.sync_deadline_s is not None]
        outbox = self.outbox.next_deadline_s()
        if outbox is not None:
            times.append(outbox)
        return min(times, default=None)

    def receive(self, frame: Frame, now_s: float) -> Output:
        """Handle one frame from the server."""
        out = Output()
        if isinstance(frame, Welcome):
            self._welcome(frame, now_s, out)
        elif isinstance(frame, SendAck):
            self._send_ack(frame, now_s, out)
        elif isinstance(frame, Deliver):
            out.frames.append(DeliveryAck(frame.msg_id, frame.conv_id, frame.seq))
            view = self.views.setdefault(frame.conv_id, ConvView())
            self._offer(view, frame)
            self._settle(frame.conv_id, view, now_s, out)
        elif isinstance(frame, SyncResponse):
            self._sync_response(frame, now_s, out)
        elif isinstance(frame, Membership):
            self._membership(frame.conv, now_s, out)
        elif isinstance(frame, Error):
            self._error(frame, now_s, out)
        return out

    # -- handlers ---------------------------------------------------------------------

    def _welcome(self, frame: Welcome, now_s: float, out: Output) -> None:
        self.state = ClientState.ONLINE
        listed = {c.conv_id for c in frame.conversations}
        for conv_id, view in self.views.items():
            if conv_id not in listed:
                self._forget(view)
        for conv in frame.conversations:
            self._membership(conv, now_s, out, force_sync=True)
        self._pump(now_s, out)

    def _membership(
        self, conv: ConvInfo, now_s: float, out: Output, force_sync: bool = False
    ) -> None:
        view = self.views.setdefault(conv.conv_id, ConvView())
        if view.info is not None and view.info.version > conv.version:
            return  # a stale announcement overtaken by a newer one
        view.info = conv
        if self.e2e is not None:
            self.e2e.learn(conv)
        was_member = view.member
        view.member = any(m.user == self.user for m in conv.members)
        if not view.member:
            self._forget(view)
        elif force_sync or not was_member:
            self._request_sync(conv.conv_id, view, now_s, out)

    @staticmethod
    def _forget(view: ConvView) -> None:
        """We are not a member (any more): nothing to wait for in this conversation."""
        view.member = False
        view.held.clear()
        view.sync_deadline_s = None

    def _send_ack(self, frame: SendAck, now_s: float, out: Output) -> None:
        entry = self.outbox.entries.pop(frame.msg_id, None)
        if entry is not None:
            out.effects.append(Acked(frame.msg_id, frame.conv_id, frame.seq, now_s))
            if self.e2e is not None:
                self.e2e.on_acked(frame.msg_id)
        view = self.views.setdefault(frame.conv_id, ConvView())
        if frame.seq > view.cursor:
            view.held.setdefault(frame.seq, _Slot.OWN)
        self._settle(frame.conv_id, view, now_s, out)

    def _sync_response(self, frame: SyncResponse, now_s: float, out: Output) -> None:
        view = self.views.setdefault(frame.conv_id, ConvView())
        view.sync_deadline_s = None
        for message in frame.messages:
            self._offer(view, message)
        if frame.complete and view.member:
            for seq in range(max(view.cursor, frame.after_seq) + 1, frame.high_seq + 1):
                view.held.setdefault(seq, _Slot.CONSUMED)
        if len(frame.messages) >= self.sync_limit:
            self._settle(frame.conv_id, view, now_s, out)  # more to fetch: ask at once
        else:
            # A gap the answer did not fill is asked again when the timer fires,
            # not at once: the missing copy may sit on a replica that is down.
            view.sync_deadline_s = now_s + self.sync_timeout_s
            self._settle(frame.conv_id, view, now_s, out)
            if not view.held:
                view.sync_deadline_s = None

    def _error(self, frame: Error, now_s: float, out: Output) -> None:
        if frame.code is ErrorCode.UNAUTHENTICATED:
            out.effects.append(AuthRejected(frame.detail, now_s))
            return
        if frame.code is ErrorCode.FORBIDDEN and not frame.msg_id and frame.conv_id in self.views:
            self._forget(self.views[frame.conv_id])
        if frame.msg_id and frame.msg_id in self.outbox.entries:
            if frame.code in (ErrorCode.RATE_LIMITED, ErrorCode.UNAVAILABLE):
                self.outbox.attempt_failed(frame.msg_id, now_s)
            else:
                entry = self.outbox.entries.pop(frame.msg_id)
                out.effects.append(Failed(entry.msg_id, entry.conv_id, str(frame.code), now_s))

    # -- ordering and display ---------------------------------------------------------

    def _is_duplicate(self, view: ConvView, message: Deliver) -> bool:
        """Whether ``message`` was displayed (by msg_id) or its seq already consumed/held."""
        return message.msg_id in self.seen or message.seq <= view.cursor or message.seq in view.held

    def _offer(self, view: ConvView, message: Deliver) -> None:
        if not view.member:
            return
        if message.sender == self.user:
            if message.seq > view.cursor:
                view.held.setdefault(message.seq, _Slot.OWN)
            return
        if self._is_duplicate(view, message):
            self.redeliveries += 1
            if message.seq > view.cursor:
                view.held.setdefault(message.seq, _Slot.CONSUMED)
            return
        view.held[message.seq] = message

    def _settle(self, conv_id: str, view: ConvView, now_s: float, out: Output) -> None:
        """Display everything now in order, then ask for a sync if a gap remains."""
        while view.held:
            seq = min(view.held)
            if seq > view.cursor + 1:
                break
            item = view.held.pop(seq)
            view.cursor = max(view.cursor, seq)
            if isinstance(item, Deliver):
                self.seen.add(item.msg_id)
                out.effects.append(self._display(item, now_s))
        if view.held and view.sync_deadline_s is None:
            self._request_sync(conv_id, view, now_s, out)

    def _display(self, message: Deliver, now_s: float) -> Displayed:
        status, plaintext = DecryptStatus.OK, message.payload
        if self.e2e is not None:
            try:
                plaintext = self.e2e.decrypt(
                    message.conv_id, message.msg_id, message.sender, message.payload
                )
            except DecryptError as exc:
                status, plaintext = exc.status, b""
        return Displayed(
            message.conv_id, message.msg_id, message.seq, message.sender, plaintext, status, now_s
        )

    def _request_sync(self, conv_id: str, view: ConvView, now_s: float, out: Output) -> None:
        if self.state is not ClientState.ONLINE or not view.member:
            return
        view.sync_deadline_s = now_s + self.sync_timeout_s
        out.frames.append(SyncRequest(conv_id, view.cursor, self.sync_limit))

    def _pump(self, now_s: float, out: Output) -> None:
        if self.state is not ClientState.ONLINE:
            return
        send, failed = self.outbox.due(now_s)
        for entry in send:
            out.frames.append(Send(entry.msg_id, entry.conv_id, entry.payload))
        for entry in failed:
            out.effects.append(Failed(entry.msg_id, entry.conv_id, "max_attempts", now_s))
