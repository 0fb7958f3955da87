"""The reference's adapter: a script run through ``reference_impl``.

:func:`run_reference` builds one :class:`~reference_impl.server.Server` (one
store replica, ``write_quorum: 1``) and one :class:`~reference_impl.client.Client`
per user, with the protocol's retry policy of
:mod:`~sim.validation.reference.script`, on ``reference_impl``'s deterministic
in-memory :class:`~reference_impl.network.Network`. It applies each operation,
then delivers every frame in order and fires every timer until the next one;
dropped acks are ``SendAck`` frames it drops; when the gateway restarts, it
reconnects the clients the gateway's crash dropped, in user order. After the
script everyone offline comes back and the clock runs until no timer is due
within :data:`QUIET_S`; the network's records and ``reference_impl.checker``'s
totals become an :class:`~sim.validation.reference.outcome.Outcome`.

``reference_impl`` is imported inside :func:`run_reference`: ``sim`` does not
depend on it at import time.
"""

from __future__ import annotations

import random
from collections import Counter

from sim.validation.reference.outcome import TOTALS, Outcome, outcome_of
from sim.validation.reference.script import (
    ACK_TIMEOUT_S,
    BACKOFF_BASE_S,
    BACKOFF_CAP_S,
    MAX_ATTEMPTS,
    Script,
)

#: the system is settled when no timer is due within this long
QUIET_S = 30.0


def run_reference(script: Script, seed: int = 0) -> Outcome:
    """Run ``script`` through ``reference_impl`` over its in-memory network."""
    from reference_impl import checker
    from reference_impl.auth import JwtAlgorithm, JwtAuthenticator, JwtIssuer, JwtKeys
    from reference_impl.client import Client
    from reference_impl.frames import SendAck
    from reference_impl.network import Network
    from reference_impl.outbox import RetryPolicy
    from reference_impl.server import Server, ServerConfig
    from reference_impl.service import AckAfter

    keys = JwtKeys.generate(JwtAlgorithm.HS256, random.Random(seed))
    issuer = JwtIssuer(keys)
    config = ServerConfig(
        replicas=1,  # the single store: what it acknowledged is on its disk
        write_quorum=1,
        ack_after=AckAfter(script.durability),
        write_delay_s=0.0,
        rate_per_s=0.0,
    )
    server = Server(JwtAuthenticator(keys), config)
    policy = RetryPolicy(
        timeout_s=ACK_TIMEOUT_S,
        base_s=BACKOFF_BASE_S,
        cap_s=BACKOFF_CAP_S,
        max_attempts=MAX_ATTEMPTS,
    )
    names = [f"u{u}" for u in range(script.users)]
    clients = {
        name: Client(
            name,
            issuer.issue(name, now_s=0.0, ttl_s=10**7),
            random.Random(f"{seed}:{name}"),
            policy=policy,
        )
        for name in names
    }
    for c, members in enumerate(script.conversations):
        server.create_conversation(f"c{c}", [names[u] for u in members])
    net = Network(server, clients)
    drops: Counter[str] = Counter()

    def flush() -> None:
        """Deliver every frame in order, losing the send acks the script drops."""
        for _ in range(100_000):
            if not net.pending:
                return
            item = net.pending[0]
            if (
                not item.to_server
                and isinstance(item.frame, SendAck)
                and drops[item.user]
                and net.conn_of.get(item.user) == item.conn_id
            ):
                drops[item.user] -= 1
                net.drop(0)
            else:
                net.deliver(0)
        raise RuntimeError("the reference network did not quiesce")

    def next_deadline_s() -> float | None:
        """``Network.next_deadline_s``, except for fire-and-forget writes while the store
        is down: the service reports them due although its tick cannot do them then,
        which would keep an event-driven driver at one instant forever."""
        times = [
            server.store.next_deadline_s(),
            server.inbox.next_deadline_s(list(server.presence)),
        ]
        if server.store.can_write():
            times.append(server.service.next_deadline_s())
        times += [clients[u].next_deadline_s() for u in net.conn_of]
        return min((t for t in times if t is not None), default=None)

    def run_until(limit_s: float) -> None:
        """Deliver frames and fire timers up to (not including) ``limit_s``."""
        for _ in range(10_000):
            flush()
            deadline = next_deadline_s()
            if deadline is None or deadline >= limit_s:
                break
            net.advance(max(0.0, deadline - net.now_s))
        else:
            raise RuntimeError("the reference did not settle between operations")
        if limit_s > net.now_s:
            net.advance(limit_s - net.now_s)
        flush()

    for name in names:
        net.connect(name)
    msg_index: dict[str, int] = {}
    dropped: list[str] = []  # the connections the gateway's crash closed
    for event in script.events():
        run_until(event.at_s)
        op = event.op
        name = names[op.user] if op.user >= 0 else ""
        if op.kind == "send":
            msg_id = net.send(name, f"c{op.conv}", op.text.encode())
            msg_index[msg_id] = event.send_index
        elif op.kind == "disconnect":
            net.disconnect(name)
        elif op.kind == "connect":
            net.connect(name)
        elif op.kind == "crash_store":
            net.crash("store.0")
        elif op.kind == "restart_store":
            net.restart("store.0")
        elif op.kind == "crash_gateway":
            dropped = [n for n in names if net.online(n)]
            net.crash("gateway")
        elif op.kind == "restart_gateway":
            net.restart("gateway")
            for name in dropped:  # the clients come back, in user order
                net.connect(name)
            dropped = []
        elif op.kind == "drop_ack":
            drops[name] += 1
    run_until(script.end_s)
    # the end of the run: everyone offline comes back, and the system settles
    for name in names:
        if not net.online(name):
            net.connect(name)
    run_until(net.now_s + QUIET_S)
    for _ in range(1000):
        deadline = next_deadline_s()
        if deadline is None or deadline > net.now_s + QUIET_S:
            break
        run_until(deadline + QUIET_S)
    else:
        raise RuntimeError("the reference did not settle")
    n = script.sends
    acked = [False] * n
    failed = [False] * n
    for msg_id, record in net.messages.items():
        acked[msg_index[msg_id]] = bool(record["acked"])
        failed[msg_index[msg_id]] = bool(record["failed"])
    displays = [
        (
            msg_index[str(d["msg_id"])],
            int(str(d["recipient"])[1:]),
            int(str(d["conv_id"])[1:]),
            int(str(d["seq"])),
        )
        for d in net.displays
    ]
    membership = {c: list(v.members) for c, v in server.conversations.items()}
    counts = checker.check(list(net.messages.values()), net.displays, membership)
    totals = {k: int(getattr(counts, k)) for k in TOTALS}
    return outcome_of(script, acked, failed, displays, totals)


__all__ = ["QUIET_S", "run_reference"]
