"""A partitioned log between the message service and fan-out, keyed by conversation.

Keying by conversation keeps each conversation's messages in one partition,
hence in seq order for the consumer. The log lives in broker memory: a crash
truncates it, and while the broker is down appends are refused, so the message
service keeps accepted messages until it can append them (see
:class:`~reference_impl.service.MessageService`). Recipients never depend on the
log alone: gaps and reconnects are filled from the store by sync.
"""

from __future__ import annotations

import zlib

from reference_impl.store import StoredMessage


class BrokerLog:
    """``partitions`` append-only logs with one consumer offset each."""

    def __init__(self, partitions: int) -> None:
        if partitions < 1:
            raise ValueError(f"partitions must be >= 1, got {partitions}")
        self.up = True
        self._logs: list[list[StoredMessage]] = [[] for _ in range(partitions)]
        self._offsets = [0] * partitions

    def partition_of(self, conv_id: str) -> int:
        """The partition holding ``conv_id`` (a stable hash, the same in every process)."""
        return zlib.crc32(conv_id.encode()) % len(self._logs)

    def append(self, message: StoredMessage) -> bool:
        """Append to the conversation's partition; ``False`` while the broker is down."""
        if not self.up:
            return False
        self._logs[self.partition_of(message.conv_id)].append(message)
        return True

    def consume(self) -> list[StoredMessage]:
        """Return every unconsumed entry (partition by partition) and commit offsets."""
        if not self.up:
            return []
        out: list[StoredMessage] = []
        for p, log in enumerate(self._logs):
            out.extend(log[self._offsets[p] :])
            self._offsets[p] = len(log)
        return out

    def crash(self) -> None:
        """Go down and lose the in-memory log."""
        self.up = False
        self._logs = [[] for _ in self._logs]
        self._offsets = [0] * len(self._logs)

    def restart(self) -> None:
        """Come back empty."""
        self.up = True

    def payloads(self) -> list[bytes]:
        """Every payload in the log (for the no-plaintext invariant)."""
        return [m.payload for log in self._logs for m in log]
