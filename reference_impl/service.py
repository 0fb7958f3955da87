"""The message service: idempotent accept, per-conversation seq, durability point.

``accept`` gives a message its seq on first acceptance and returns the same seq
for every re-send of the same ``msg_id``. The seq counter is a durable
registry (think of a consensus-backed counter): it survives crashes, so a seq is
never handed out twice even when messages are later destroyed.

The durability point decides when the sender is acknowledged:

* ``AckAfter.STORE``: after W of N replica writes (see :mod:`reference_impl.store`);
* ``AckAfter.GATEWAY``: at once, fire and forget; the store write happens
  ``write_delay_s`` later from service memory and is lost if the service crashes.

Accepted messages are appended to the broker log for fan-out; while the broker
is down they wait in service memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from reference_impl.broker import BrokerLog
from reference_impl.frames import ErrorCode
from reference_impl.inbox import Inbox
from reference_impl.store import ReplicatedStore, StoredMessage


class AckAfter(StrEnum):
    """Where the sender's ack is given (DESIGN section 2, ``ack_after``)."""

    STORE = "store"
    GATEWAY = "gateway"


@dataclass(frozen=True, slots=True)
class AcceptResult:
    """Outcome of :meth:`MessageService.accept`: a message, or an error code."""

    message: StoredMessage | None
    error: ErrorCode | None = None
    detail: str = ""
    first_acceptance: bool = False


@dataclass(slots=True)
class MessageService:
    """Accepts messages and feeds the broker; see the module docstring."""

    store: ReplicatedStore
    broker: BrokerLog
    inbox: Inbox
    ack_after: AckAfter = AckAfter.STORE
    write_delay_s: float = 0.05
    up: bool = True
    sequences: dict[str, int] = field(default_factory=dict)
    callers: set[str] = field(default_factory=set)
    _by_msg_id: dict[str, StoredMessage] = field(default_factory=dict)
    _unwritten: list[tuple[float, StoredMessage]] = field(default_factory=list)
    _unappended: list[StoredMessage] = field(default_factory=list)

    def accept(
        self, conn_id: str, sender: str, msg_id: str, conv_id: str, payload: bytes, now_s: float
    ) -> AcceptResult:
        """Accept a message idempotently; ``conn_id`` is recorded for audit."""
        self.callers.add(conn_id)
        if not self.up:
            return AcceptResult(None, ErrorCode.UNAVAILABLE, "message service down")
        known = self._by_msg_id.get(msg_id) or self.store.find(msg_id)
        if known is not None:
            if known.sender != sender or known.conv_id != conv_id:
                return AcceptResult(None, ErrorCode.BAD_FRAME, "msg_id already used")
            self._by_msg_id[msg_id] = known
            return AcceptResult(known)
        if self.ack_after is AckAfter.STORE and not self.store.can_write():
            return AcceptResult(None, ErrorCode.UNAVAILABLE, "too few store replicas up")
        seq = self.sequences.get(conv_id, 0) + 1
        message = StoredMessage(msg_id, conv_id, seq, sender, payload, now_s)
        if self.ack_after is AckAfter.STORE:
            if not self.store.write(message, now_s):  # pragma: no cover - checked above
                return AcceptResult(None, ErrorCode.UNAVAILABLE, "store write refused")
        else:
            self._unwritten.append((now_s + self.write_delay_s, message))
        self.sequences[conv_id] = seq
        self._by_msg_id[msg_id] = message
        if not self.broker.append(message):
            self._unappended.append(message)
        return AcceptResult(message, first_acceptance=True)

    def read_after(
        self, conn_id: str, conv_id: str, after_seq: int, limit: int
    ) -> tuple[list[StoredMessage], int, bool] | None:
        """Messages after ``after_seq`` (at most ``limit``), covered-through seq, completeness.

        The covered-through seq is the conversation's highest seq, or the last
        returned one when ``limit`` cut the answer short. ``None`` when the
        service is down.
        """
        self.callers.add(conn_id)
        if not self.up:
            return None
        stored, complete = self.store.read_after(conv_id, after_seq)
        merged = {m.seq: m for m in stored}
        for _due, message in self._unwritten:
            if message.conv_id == conv_id and message.seq > after_seq:
                merged[message.seq] = message
        ordered = [merged[s] for s in sorted(merged)]
        high_seq = self.sequences.get(conv_id, 0)
        if len(ordered) > limit:
            ordered = ordered[:limit]
            high_seq = ordered[-1].seq
        return ordered, high_seq, complete

    def tick(self, now_s: float) -> None:
        """Flush due fire-and-forget writes and appends that waited for the broker."""
        if not self.up:
            return
        if self._unwritten and self.store.can_write():
            waiting = []
            for due_s, message in self._unwritten:
                if due_s > now_s or not self.store.write(message, now_s):
                    waiting.append((due_s, message))
            self._unwritten = waiting
        if self._unappended and self.broker.up:
            for message in self._unappended:
                self.broker.append(message)
            self._unappended = []

    def next_deadline_s(self) -> float | None:
        """Earliest pending write, if any; none while the store cannot take writes (the
        writes wait for it to come back, not for a time: a deadline in the past would
        make a driver that advances to the next deadline loop at one instant)."""
        if not self._unwritten or not self.store.can_write():
            return None
        return min(due for due, _m in self._unwritten)

    def crash(self) -> None:
        """Go down, losing the idempotency cache, unwritten messages and the inbox."""
        self.up = False
        self._by_msg_id.clear()
        self._unwritten.clear()
        self._unappended.clear()
        self.inbox.clear()

    def restart(self) -> None:
        """Come back; the seq registry and the store are intact."""
        self.up = True

    def payloads(self) -> list[bytes]:
        """Every payload in service memory (for the no-plaintext invariant)."""
        out = [m.payload for m in self._by_msg_id.values()]
        out.extend(m.payload for _d, m in self._unwritten)
        out.extend(m.payload for m in self._unappended)
        return out
