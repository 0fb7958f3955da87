"""Per-user inbox of unacknowledged deliveries (the offline queue).

Every fanned-out message waits here until its recipient acknowledges the
delivery. Online recipients get it pushed and, if unacknowledged after
``redelivery_timeout_s``, pushed again (at-least-once). Offline recipients get
everything pending when they come back. The inbox is message-service memory:
a crash empties it, and clients recover what it held by syncing from the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reference_impl.store import StoredMessage


@dataclass(slots=True)
class Pending:
    """One delivery awaiting an ack; ``sent_at_s`` is ``None`` until first pushed."""

    message: StoredMessage
    sent_at_s: float | None = None


@dataclass(slots=True)
class Inbox:
    """Pending deliveries per user, in insertion (hence per-conversation seq) order."""

    redelivery_timeout_s: float
    _by_user: dict[str, dict[str, Pending]] = field(default_factory=dict)

    def add(self, user: str, message: StoredMessage) -> Pending:
        """Queue ``message`` for ``user`` (idempotent by msg_id)."""
        queue = self._by_user.setdefault(user, {})
        return queue.setdefault(message.msg_id, Pending(message))

    def ack(self, user: str, msg_id: str) -> None:
        """Forget the delivery of ``msg_id`` to ``user``."""
        self._by_user.get(user, {}).pop(msg_id, None)

    def drop_conversation(self, user: str, conv_id: str) -> None:
        """Forget ``user``'s pending deliveries of ``conv_id`` (they left it)."""
        queue = self._by_user.get(user, {})
        for msg_id in [k for k, p in queue.items() if p.message.conv_id == conv_id]:
            del queue[msg_id]

    def due(self, user: str, now_s: float, everything: bool = False) -> list[Pending]:
        """Deliveries to (re)push now: never sent, or sent over the timeout ago.

        ``everything`` returns all pending ones (used when the user reconnects).
        """
        out = []
        for pending in self._by_user.get(user, {}).values():
            if (
                everything
                or pending.sent_at_s is None
                or now_s - pending.sent_at_s >= self.redelivery_timeout_s
            ):
                out.append(pending)
        return out

    def next_deadline_s(self, users: list[str]) -> float | None:
        """Earliest redelivery time among ``users`` (the online ones), if any."""
        times = [
            p.sent_at_s + self.redelivery_timeout_s
            for u in users
            for p in self._by_user.get(u, {}).values()
            if p.sent_at_s is not None
        ]
        return min(times, default=None)

    def clear(self) -> None:
        """Lose everything (the message service crashed)."""
        self._by_user.clear()

    def payloads(self) -> list[bytes]:
        """Every queued payload (for the no-plaintext invariant)."""
        return [p.message.payload for q in self._by_user.values() for p in q.values()]
