"""The client outbox: send, wait for the ack, retry with backoff, give up.

Each message is tried at most ``max_attempts`` times. An attempt that gets no
ack within ``timeout_s`` (or gets a retryable error) is followed, after a
"full jitter" backoff drawn uniformly from ``[0, min(cap_s, base_s * 2**k)]``
(k = attempts so far - 1), by the next attempt; after the last one the message
is ``failed``. The jitter comes from the owning client's ``random.Random``.
While the client is offline no attempt is spent: pending messages go out as soon
as it is back online.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retry parameters; times in seconds."""

    timeout_s: float = 1.0
    base_s: float = 0.05
    cap_s: float = 5.0
    max_attempts: int = 5

    def backoff_s(self, attempts: int, rng: random.Random) -> float:
        """Full-jitter delay before attempt ``attempts + 1``."""
        return rng.uniform(0.0, min(self.cap_s, self.base_s * 2 ** (attempts - 1)))


@dataclass(slots=True)
class OutboxEntry:
    """A message not yet acknowledged; ``payload`` is the (encrypted) wire payload."""

    msg_id: str
    conv_id: str
    payload: bytes
    created_s: float
    attempts: int = 0
    next_attempt_s: float = 0.0
    ack_deadline_s: float | None = None


@dataclass(slots=True)
class Outbox:
    """Pending messages of one client, in creation order."""

    policy: RetryPolicy
    rng: random.Random
    entries: dict[str, OutboxEntry] = field(default_factory=dict)

    def add(self, msg_id: str, conv_id: str, payload: bytes, now_s: float) -> None:
        """Queue a new message for its first attempt at ``now_s``."""
        self.entries[msg_id] = OutboxEntry(msg_id, conv_id, payload, now_s, next_attempt_s=now_s)

    def due(self, now_s: float) -> tuple[list[OutboxEntry], list[OutboxEntry]]:
        """Split timers at ``now_s`` into (entries to send now, entries that failed).

        Sending counts an attempt and arms its ack deadline; an attempt whose
        deadline passed schedules a backoff or, after the last one, fails.
        """
        send, failed = [], []
        for entry in list(self.entries.values()):
            if entry.ack_deadline_s is not None and now_s >= entry.ack_deadline_s:
                self.attempt_failed(entry.msg_id, now_s)
            if entry.ack_deadline_s is None and entry.attempts >= self.policy.max_attempts:
                failed.append(self.entries.pop(entry.msg_id))
                continue
            if entry.ack_deadline_s is None and now_s >= entry.next_attempt_s:
                entry.attempts += 1
                entry.ack_deadline_s = now_s + self.policy.timeout_s
                send.append(entry)
        return send, failed

    def attempt_failed(self, msg_id: str, now_s: float) -> None:
        """The current attempt timed out or was refused: schedule the next one."""
        entry = self.entries.get(msg_id)
        if entry is None or entry.ack_deadline_s is None:
            return
        entry.ack_deadline_s = None
        entry.next_attempt_s = now_s + self.policy.backoff_s(entry.attempts, self.rng)

    def pause(self) -> None:
        """The connection is gone: in-flight attempts are void and not counted."""
        for entry in self.entries.values():
            if entry.ack_deadline_s is not None:
                entry.ack_deadline_s = None
                entry.attempts -= 1
                entry.next_attempt_s = 0.0

    def next_deadline_s(self) -> float | None:
        """Earliest timer, if any."""
        times = [
            e.ack_deadline_s if e.ack_deadline_s is not None else e.next_attempt_s
            for e in self.entries.values()
        ]
        return min(times, default=None)
