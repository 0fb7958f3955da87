"""What every part of a client shares: per-user and per-slot state, and the client link.

Client state is kept in arrays indexed by user or by membership slot, never in
per-user objects: a million users cost a few bytes each. The parts of the
client side (:mod:`sim.model.client.clients` for the connection,
:mod:`sim.model.client.outbox` for sends, :mod:`sim.model.client.timeline` for what is
received) alias these arrays when they are built, so the split costs nothing
per message.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable
from typing import Any

from sim.core.kernel import Kernel
from sim.core.metrics import Message, Recorder
from sim.model.costs import Costs
from sim.model.transport import ClientTransport
from sim.workload.population import Conversations

#: a client's connection state (``ClientState.state``)
OFFLINE, CONNECTING, CONNECTED = 0, 1, 2
#: a tombstone held in seq order: takes its place, is never displayed
PATH_GONE = -1


class ClientState:
    """The state of every user's client."""

    def __init__(self, users: int, convs: Conversations) -> None:
        #: per user: OFFLINE, CONNECTING or CONNECTED
        self.state = bytearray(users)
        #: per user: the number of the current connection attempt (frames for an older
        #: one are stale)
        self.epoch = array("i", [0]) * users
        #: per user: the gateway instance of the connection (-1: none)
        self.gateway = array("i", [-1]) * users
        #: per user: when the current session began (s)
        self.online_since = array("d", [0.0]) * users
        #: per membership slot: the seq displayed last (messages up to it are shown)
        self.cursor = array("i", [0]) * len(convs.user_convs)
        #: per slot: messages that arrived after a gap, by seq, with their path
        self.held: dict[int, dict[int, tuple[Message, int]]] = {}
        #: slots with a sync request awaiting its reply
        self.syncing: set[int] = set()
        #: when the sync now awaited for a slot was requested
        self.sync_sent_s: dict[int, float] = {}
        #: per user: messages written while not connected, sent at the next session
        self.outbox: dict[int, list[Message]] = {}


class ClientLink:
    """The client's side of the link to its gateway: delays and bytes."""

    def __init__(
        self, kernel: Kernel, recorder: Recorder, costs: Costs, transport: ClientTransport
    ) -> None:
        self.after = kernel.after
        self.rec = recorder
        self.costs = costs
        self.transport = transport
        self.control_up, self.control_down = transport.frame_bytes(costs.control_bytes)

    def uplink(self, fn: Callable[[Any], None], arg: Any) -> None:
        """A frame or request travels up to the gateway."""
        if self.costs.client_zero:
            fn(arg)
        else:
            self.after(self.costs.client_rtt() * 0.5, fn, arg)

    def frame_up(self, now: float, body_bytes: int) -> None:
        """A client-to-server frame or request on the client link (a request counted)."""
        self.rec.wire(now, self.transport.frame_bytes(body_bytes)[0], True)


__all__ = ["CONNECTED", "CONNECTING", "OFFLINE", "PATH_GONE", "ClientLink", "ClientState"]
