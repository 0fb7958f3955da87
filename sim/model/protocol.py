"""The typed interface between the simulated clients and the server side.

The two sides exchange frames, as in DESIGN section 2: the client side calls
the server side's ``receive_*`` and session methods when a frame or request
arrives at a gateway; the server side calls the client side's methods when a
frame arrives at a client. Each frame is a tuple context (no object per frame:
a run carries tens of millions of them); the aliases below name their fields.

Neither side imports the other: :class:`~sim.model.server.assembly.Server` is typed
against :class:`ClientSide` and :class:`~sim.model.client.clients.Clients` against
:class:`ServerSide`. The clients register with the server when they are built
(``server.attach(clients)``), the one place where the two sides meet.
"""

from __future__ import annotations

from array import array
from typing import Protocol

from sim.core.metrics import Message

#: one send attempt: (message, client epoch, gateway index, attempt number)
SendCtx = tuple[Message, int, int, int]
#: a connection being set up: (user, client epoch, the client's round trip for it, s)
ConnectCtx = tuple[int, int, float]
#: a connection set up: (user, client epoch, gateway index)
SessionCtx = tuple[int, int, int]
#: a connection, or a request on it: (user, client epoch)
UserEpoch = tuple[int, int]
#: messages with the membership slot of the recipient
Batch = list[tuple[Message, int]]
#: a sync request: (user, epoch, [(slot, cursor)], path, reference time s)
SyncCtx = tuple[int, int, list[tuple[int, int]], int, float]
#: a sync reply: (user, epoch, batch, path, reference time s, more to come, slots asked)
SyncReply = tuple[int, int, Batch, int, float, bool, list[int]]
#: pushed messages: (user, epoch, batch, path, reference time s)
DeliverCtx = tuple[int, int, Batch, int, float]
#: a poll reply: (user, epoch, batch)
PollReply = tuple[int, int, Batch]
#: a delivery ack on its way to the gateway: (user, epoch, gateway index)
DeliveryAck = tuple[int, int, int]


class ClientSide(Protocol):
    """What the server side calls on, and reads of, the clients."""

    #: per user: the connection attempt's number (a frame for an older one is stale)
    epoch: array[int]
    #: per user: when the current session began (s), for the token it carries
    online_since: array[float]

    def connect_failed(self, ctx: UserEpoch) -> None: ...

    def session_ready(self, ctx: SessionCtx) -> None: ...

    def connection_lost(self, user: int) -> None: ...

    def send_acked(self, ctx: SendCtx) -> None: ...

    def send_rejected(self, ctx: SendCtx) -> None: ...

    def deliver(self, ctx: DeliverCtx) -> None: ...

    def poll_reply(self, ctx: PollReply) -> None: ...

    def sync_reply(self, ctx: SyncReply) -> None: ...

    def sync_failed(self, ctx: SyncCtx) -> None: ...


class ServerSide(Protocol):
    """What the clients call on the server side: frames and requests arriving at it."""

    #: whether an authorization server issues access tokens the clients renew
    issues_tokens: bool

    def attach(self, clients: ClientSide) -> None: ...

    def open_session(self, ctx: ConnectCtx) -> None: ...

    def close_session(self, user: int) -> None: ...

    def refresh_token(self, user: int) -> None: ...

    def receive_send(self, ctx: SendCtx) -> None: ...

    def receive_delivery_ack(self, ctx: DeliveryAck) -> None: ...

    def receive_poll(self, ctx: UserEpoch) -> None: ...

    def receive_sync(self, ctx: SyncCtx) -> None: ...


__all__ = [
    "Batch",
    "ClientSide",
    "ConnectCtx",
    "DeliverCtx",
    "DeliveryAck",
    "PollReply",
    "SendCtx",
    "ServerSide",
    "SessionCtx",
    "SyncCtx",
    "SyncReply",
    "UserEpoch",
]
