"""What a client sends: the outbox, a timeout per attempt, retries with backoff.

A message written while its user is connected is sent at once (after its end-to-end
sealing, if any); otherwise it waits in the outbox for the next session. Each
attempt has a timeout; a timed-out or refused attempt is retried after a backoff
with jitter, and after ``max_attempts`` the message is *failed*. The ack tells
the sender its message's seq: the message takes that place in its timeline.
Mirrors ``reference_impl``'s outbox.
"""

from __future__ import annotations

from collections.abc import Callable

from sim.components.resilience.backoff import backoff_s
from sim.core.distributions import BlockDraws
from sim.core.kernel import Kernel, Timeouts
from sim.core.metrics import PATH_ONLINE, Message, Recorder
from sim.model.client.state import CONNECTED, ClientLink, ClientState
from sim.model.costs import Costs
from sim.model.protocol import Batch, SendCtx, ServerSide
from sim.model.transport import ClientTransport
from sim.scenario.resilience import Backoff, Resilience
from sim.workload.population import Conversations

#: how the timeline takes a message it received: (user, batch, path, reference time s)
Receive = Callable[[int, Batch, int, float], None]


class Outbox:
    """Every client's sends and their retries."""

    def __init__(
        self,
        kernel: Kernel,
        recorder: Recorder,
        convs: Conversations,
        costs: Costs,
        server: ServerSide,
        transport: ClientTransport,
        resilience: Resilience,
        state: ClientState,
        link: ClientLink,
        uniform: BlockDraws,
        receive: Receive,
        horizon_s: float,
        ack_lost: Callable[[SendCtx], bool] | None = None,
    ) -> None:
        self.kernel = kernel
        self.after = kernel.after
        self.rec = recorder
        self.convs = convs
        self.costs = costs
        self.server = server
        self.transport = transport
        self.state = state.state
        self.epoch = state.epoch
        self.gateway = state.gateway
        self.cursor = state.cursor
        self.held = state.held
        self.outbox = state.outbox
        self.control_down = link.control_down
        self._receive = receive
        self.ack_lost = ack_lost
        self.timeout_s = resilience.timeout_s
        self.max_attempts = resilience.retry.max_attempts
        self.backoff = resilience.retry.backoff
        self.base_s = resilience.retry.base_s
        self.cap_s = resilience.retry.cap_s
        #: the jitter's uniform draws (one stream with the reconnect backoff)
        self._uniform = uniform
        #: decorrelated jitter: the previous delay, per message retried
        self._previous_s: dict[int, float] = {}
        #: retry timers that would fire after this never matter and are not scheduled
        self.horizon_s = horizon_s
        self.next_msg_id = 0
        self._send_timeouts = Timeouts(kernel, self.timeout_s, self._timed_out, self._awaiting_ack)
        self._sizes: dict[int, tuple[int, int, int, int]] = {}

    def send(self, user: int, slot: int, payload_bytes: int) -> None:
        """The user writes a message in the conversation of ``slot`` (called by the workload)."""
        sizes = self._sizes.get(payload_bytes)
        if sizes is None:
            # shared int objects per payload size: a million messages, a few thousand sizes
            wire = self.costs.frame_bytes(payload_bytes)
            sizes = (payload_bytes, *self.transport.frame_bytes(wire), wire)
            self._sizes[payload_bytes] = sizes
        payload, up, down, wire = sizes
        if self.costs.pairwise:
            # pairwise E2E: one ciphertext per recipient, all uploaded in the send
            up += wire * (self.convs.size(self.convs.slot_conv[slot]) - 2)
        msg = Message(
            self.next_msg_id,
            self.convs.slot_conv[slot],
            slot,
            user,
            self.kernel.now,
            payload,
            up,
            down,
        )
        self.next_msg_id += 1
        self.rec.messages.append(msg)
        if self.costs.e2e:
            # the client seals the message before it can leave: once with a sender key,
            # once per recipient with pairwise sessions
            copies = self.convs.size(self.convs.slot_conv[slot]) - 1 if self.costs.pairwise else 1
            self.after(self.costs.e2e_seal_s * copies, self._sealed, msg)
            return
        self._sealed(msg)

    def _sealed(self, msg: Message) -> None:
        user = msg.sender
        if self.state[user] == CONNECTED:
            self.transmit(msg)
        else:
            self.outbox.setdefault(user, []).append(msg)

    def transmit(self, msg: Message) -> None:
        user = msg.sender
        msg.attempts += 1
        now = self.kernel.now
        self.rec.wire(now, msg.up_bytes, True)
        ctx: SendCtx = (msg, self.epoch[user], self.gateway[user], msg.attempts)
        if self.costs.client_zero:
            self.server.receive_send(ctx)
        else:
            self.after(self.costs.client_rtt() * 0.5, self.server.receive_send, ctx)
        if now + self.timeout_s < self.horizon_s:
            self._send_timeouts.start((msg, msg.attempts))

    @staticmethod
    def _awaiting_ack(ctx: tuple[Message, int]) -> bool:
        """Whether attempt ``ctx`` still waits for its ack (False for ever once False)."""
        msg = ctx[0]
        return not (msg.acked or msg.failed) and msg.attempts == ctx[1]

    def _timed_out(self, ctx: tuple[Message, int]) -> None:
        if self._awaiting_ack(ctx):
            self._attempt_failed(ctx[0])

    def _attempt_failed(self, msg: Message) -> None:
        now = self.kernel.now
        if msg.attempts >= self.max_attempts:
            msg.failed = True
            msg.failed_s = now
            self.rec.error(now)
            return
        self.after(self._backoff_s(msg), self._retry, msg)

    def _backoff_s(self, msg: Message) -> float:
        """Delay before the next attempt of ``msg``: see
        :func:`sim.components.resilience.backoff.backoff_s` (AWS Architecture Blog,
        "Exponential Backoff and Jitter", 2015)."""
        if self.backoff is not Backoff.DECORRELATED_JITTER:
            return backoff_s(
                self.backoff, msg.attempts, self.base_s, self.cap_s, self._uniform, self.base_s
            )
        previous = self.base_s
        if msg.attempts > 1:
            previous = self._previous_s.get(msg.msg_id, self.base_s)
        delay = backoff_s(
            self.backoff, msg.attempts, self.base_s, self.cap_s, self._uniform, previous
        )
        if msg.attempts + 1 < self.max_attempts:
            self._previous_s[msg.msg_id] = delay  # another retry may follow this one
        else:
            self._previous_s.pop(msg.msg_id, None)
        return delay

    def _retry(self, msg: Message) -> None:
        if msg.acked or msg.failed:
            return
        self.rec.retry(self.kernel.now)
        if self.state[msg.sender] == CONNECTED:
            self.transmit(msg)
        else:
            self.outbox.setdefault(msg.sender, []).append(msg)

    def send_acked(self, ctx: SendCtx) -> None:
        msg, epoch = ctx[0], ctx[1]
        if self.epoch[msg.sender] != epoch:
            return  # the connection the ack was meant for has closed
        if self.ack_lost is not None and self.ack_lost(ctx):
            return
        now = self.kernel.now
        self.rec.wire(now, self.control_down)
        if msg.acked or msg.failed:
            return
        msg.acked = True
        msg.ack_s = now
        # the ack tells the sender its message's seq: it takes that place in the timeline
        slot = msg.slot
        if msg.seq == self.cursor[slot] + 1 and slot not in self.held:
            self.cursor[slot] = msg.seq  # the usual case: next in line, nothing held
        else:
            self._receive(msg.sender, [(msg, slot)], PATH_ONLINE, -1.0)

    def send_rejected(self, ctx: SendCtx) -> None:
        msg, epoch, _, attempt = ctx
        if self.epoch[msg.sender] != epoch:
            return
        self.rec.wire(self.kernel.now, self.control_down)
        if msg.acked or msg.failed or msg.attempts != attempt:
            return
        self._attempt_failed(msg)


__all__ = ["Outbox"]
