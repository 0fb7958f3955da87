"""A replicated message store: N replicas, writes acknowledged after W of them.

The W synchronous copies are the *durable copies* a send ack promises; the
other N - W replicas receive the message by asynchronous replication after
``replication_delay_s``. Faults act per replica: ``crash`` makes it unavailable
(its disk survives), ``wipe`` destroys its disk. A message is destroyed exactly
when no replica holds it: pending replication is cancelled when its source's
disk is wiped, so it never resurrects a message.

Reads take the union of the replicas that are up. A read is *complete* when
every replica is up: then a seq absent from the union no longer exists anywhere.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A message as the server keeps it: ``payload`` is the sender's opaque ciphertext."""

    msg_id: str
    conv_id: str
    seq: int
    sender: str
    payload: bytes
    accepted_at_s: float


@dataclass(slots=True)
class Replica:
    """One replica's disk (``by_conv``) and whether it answers requests."""

    up: bool = True
    by_conv: dict[str, dict[int, StoredMessage]] = field(default_factory=dict)
    by_msg_id: dict[str, StoredMessage] = field(default_factory=dict)

    def put(self, message: StoredMessage) -> None:
        """Write ``message`` (idempotent: same msg_id and seq overwrite themselves)."""
        self.by_conv.setdefault(message.conv_id, {})[message.seq] = message
        self.by_msg_id[message.msg_id] = message


@dataclass(frozen=True, slots=True)
class _Replication:
    source: int
    target: int
    message: StoredMessage
    due_s: float


class ReplicatedStore:
    """N replicas with a write quorum of W; see the module docstring for the fault model."""

    def __init__(self, replicas: int, write_quorum: int, replication_delay_s: float) -> None:
        if not 1 <= write_quorum <= replicas:
            raise ValueError(f"write_quorum must be in 1..{replicas}, got {write_quorum}")
        self.replicas = [Replica() for _ in range(replicas)]
        self.write_quorum = write_quorum
        self.replication_delay_s = replication_delay_s
        self._pending: list[_Replication] = []

    def _preference(self, conv_id: str) -> list[int]:
        """Replica order for a conversation (a stable hash spreads conversations)."""
        n = len(self.replicas)
        start = zlib.crc32(conv_id.encode()) % n
        return [(start + i) % n for i in range(n)]

    def can_write(self) -> bool:
        """Whether W replicas are up, i.e. whether a write can be acknowledged now."""
        return sum(r.up for r in self.replicas) >= self.write_quorum

    def write(self, message: StoredMessage, now_s: float) -> bool:
        """Write to W up replicas now and schedule the rest; ``False`` if W are not up.

        A refused write leaves no trace, so the caller may reuse the seq.
        """
        order = self._preference(message.conv_id)
        up = [i for i in order if self.replicas[i].up]
        if len(up) < self.write_quorum:
            return False
        sync = up[: self.write_quorum]
        for i in sync:
            self.replicas[i].put(message)
        due_s = now_s + self.replication_delay_s
        for i in order:
            if i not in sync:
                self._pending.append(_Replication(sync[0], i, message, due_s))
        return True

    def tick(self, now_s: float) -> None:
        """Apply due replication to replicas that are up; keep the rest for later."""
        keep: list[_Replication] = []
        for item in self._pending:
            target = self.replicas[item.target]
            if item.due_s <= now_s and target.up:
                target.put(item.message)
            else:
                keep.append(item)
        self._pending = keep

    def next_deadline_s(self) -> float | None:
        """Earliest time at which :meth:`tick` has work, if any."""
        return min((p.due_s for p in self._pending), default=None)

    def read_after(self, conv_id: str, after_seq: int) -> tuple[list[StoredMessage], bool]:
        """Messages of ``conv_id`` with seq > ``after_seq`` in seq order, and completeness."""
        merged: dict[int, StoredMessage] = {}
        for replica in self.replicas:
            if replica.up:
                for seq, message in replica.by_conv.get(conv_id, {}).items():
                    if seq > after_seq:
                        merged[seq] = message
        complete = all(r.up for r in self.replicas)
        return [merged[s] for s in sorted(merged)], complete

    def find(self, msg_id: str) -> StoredMessage | None:
        """The stored copy of ``msg_id`` on any up replica, if any."""
        for replica in self.replicas:
            if replica.up and msg_id in replica.by_msg_id:
                return replica.by_msg_id[msg_id]
        return None

    def holders(self, msg_id: str) -> int:
        """How many replica disks (up or down) hold ``msg_id``: its durable copies."""
        return sum(msg_id in r.by_msg_id for r in self.replicas)

    def crash(self, index: int) -> None:
        """Replica ``index`` stops answering; its disk survives."""
        self.replicas[index].up = False

    def wipe(self, index: int) -> None:
        """Replica ``index`` loses its disk and goes down; its outgoing replication is lost."""
        self.replicas[index] = Replica(up=False)
        self._pending = [p for p in self._pending if p.source != index]

    def restart(self, index: int) -> None:
        """Bring replica ``index`` back and repair it from the replicas that are up."""
        replica = self.replicas[index]
        replica.up = True
        for other in self.replicas:
            if other is not replica and other.up:
                for message in other.by_msg_id.values():
                    if message.msg_id not in replica.by_msg_id:
                        replica.put(message)

    def payloads(self) -> list[bytes]:
        """Every payload on every disk and in flight (for the no-plaintext invariant)."""
        out = [m.payload for r in self.replicas for m in r.by_msg_id.values()]
        out.extend(p.message.payload for p in self._pending)
        return out
