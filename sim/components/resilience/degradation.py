"""Graceful degradation when the store fails: hold the writes, try again later.

With ``architecture.resilience.degradation.policy: queue_writes`` the message
service keeps messages whose write failed in a :class:`WriteBuffer` instead of
failing them, and writes them again once the store answers. (The other policy,
``serve_reads_from_cache``, needs no component of its own: the delivery,
``sim.model.server.delivery``, serves reads from the messages it holds, and
:class:`~sim.components.resilience.defences.Defences` counts them.)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from sim.core.kernel import Kernel
from sim.core.metrics import Message

__all__ = ["WriteBuffer"]


class WriteBuffer:
    """``queue_writes``: messages whose write failed, held by the message service.

    ``hold(msg)`` keeps a message (False when full: the caller rejects it). Every
    ``retry_s`` the oldest is written again (a probe, through the guard); when a
    probe succeeds (``written``), every held message is written again at once. A
    message made durable otherwise (a late answer) is skipped.
    """

    def __init__(self, kernel: Kernel, size: int, retry_s: float) -> None:
        self.kernel = kernel
        self.size = size
        self.retry_s = retry_s
        self.held: deque[Message] = deque()
        #: msg_ids held at some point and not yet durable, and those in ``held`` now
        self._ids: set[int] = set()
        self._holding: set[int] = set()
        self.probe: Message | None = None
        self._scheduled = False
        #: set by the message service: starts a write of a held message
        self.write: Callable[[Message], None] = _ignore_message
        self.buffered = 0
        self.full = 0
        self.peak = 0
        self.released = 0
        #: held messages made durable after their sender had given up
        self.late = 0

    def hold(self, msg: Message) -> bool:
        if msg.msg_id in self._holding:
            return True  # a late failure of an earlier write of a message held already
        if msg is self.probe:
            self.probe = None
            self.held.appendleft(msg)
            self._holding.add(msg.msg_id)
        elif len(self.held) >= self.size:
            self.full += 1
            return False
        else:
            if msg.msg_id not in self._ids:
                self._ids.add(msg.msg_id)
                self.buffered += 1
            self.held.append(msg)
            self._holding.add(msg.msg_id)
            if len(self.held) > self.peak:
                self.peak = len(self.held)
        if not self._scheduled and self.probe is None:
            self._scheduled = True
            self.kernel.after(self.retry_s, self._probe, None)
        return True

    def _probe(self, _: Any) -> None:
        self._scheduled = False
        held = self.held
        if self.probe is not None:
            return
        while held and (held[0].durable or not held[0].writing):
            self._holding.discard(held.popleft().msg_id)
        if not held:
            return
        self.probe = held.popleft()
        self._holding.discard(self.probe.msg_id)
        self.write(self.probe)

    def written(self, msg: Message) -> None:
        """``msg`` is durable; if it was the probe, the store answers again."""
        if msg.msg_id in self._ids:
            self._ids.discard(msg.msg_id)
            if msg.failed:
                self.late += 1
        if msg is not self.probe:
            return
        self.probe = None
        batch = [m for m in self.held if not m.durable and m.writing]
        self.held.clear()
        self._holding.clear()
        self.released += len(batch)
        for held in batch:
            self.write(held)


def _ignore_message(_: Message) -> None:
    return None
