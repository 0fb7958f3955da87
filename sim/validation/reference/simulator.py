"""The simulator's adapter: a script run through a :class:`~sim.model.run.Model`.

:func:`run_simulator` builds a model with the script's exact conversation graph
(:func:`simulator_conversations`) in the scenario :func:`simulator_scenario`
writes: zero network delays and instantaneous tiers (the store takes
:data:`STORE_OP_S` per request, so that a crashed store refuses work) or, with
``timed``, constant network delays and gateway and service costs (the paths a
real scenario takes: frames scheduled after a delay, jobs queued at stations);
nobody churning (``mean_offline_s: 0``) and no generated traffic
(``messages_per_user_per_hour: 0``). Every script runs both ways (:data:`LINKS`).

Sends, disconnects and reconnects are scheduled on the model's kernel before it
runs; store and gateway crashes are the scenario's ``faults:`` windows (clients
the gateway dropped reconnect every :data:`RECONNECT_S`, in lockstep); dropped
acks go through the clients' ``ack_lost`` hook (the network losing the ack frame
on its way down). After the script the model drains for :data:`DRAIN_S`, and
its records become an :class:`~sim.validation.reference.outcome.Outcome`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from sim.validation.reference.outcome import TOTALS, Outcome, outcome_of
from sim.validation.reference.script import (
    ACK_TIMEOUT_S,
    BACKOFF_BASE_S,
    BACKOFF_CAP_S,
    MAX_ATTEMPTS,
    SPACING_S,
    Event,
    Script,
)

if TYPE_CHECKING:
    from sim.model.run import Model
    from sim.scenario.schema import Scenario
    from sim.workload.population import Conversations

#: a store write or read takes this long (a 0 would bypass the store)
STORE_OP_S = 0.001
#: the timed comparison: the simulator's client link and internal hops take the
#: scenario defaults' times (``docs/parameters.md``: 80 ms client round trip, 0.5 ms
#: in the data centre), constant so that each link stays first in, first out like
#: the TCP connection it models, and the gateway and the message service take the
#: calibration's ``server_frame_s`` per request (one worker each: first come, first served)
TIMED_CLIENT_RTT_S = 0.08
TIMED_INTERNAL_RTT_S = 0.0005
#: the two ways every script runs through the simulator (see :func:`simulator_scenario`)
LINKS = ("instant", "timed")
#: clients whose gateway crashed try to reconnect this often, without
#: jitter, so they come back in lockstep and in user order (the reference's driver
#: reconnects them in that order when the gateway restarts): their queued sends
#: then take their seqs in the same order in both systems
RECONNECT_S = 0.5
#: drain after the script (everyone with something pending comes back)
DRAIN_S = 60.0


def simulator_scenario(script: Script, seed: int = 0, timed: bool = False) -> Scenario:
    """The :class:`~sim.scenario.schema.Scenario` a script runs in (see the module docstring).

    With ``timed``, the network and the gateway and service take time
    (:data:`TIMED_CLIENT_RTT_S`, :data:`TIMED_INTERNAL_RTT_S`, the calibration's
    ``server_frame_s``): the paths of a real scenario (frames scheduled after a
    delay, jobs queued at stations), where the instant variant calls each next step
    directly. Everything still settles well within :data:`SPACING_S`.
    """
    from sim.scenario.calibration import load_calibration
    from sim.scenario.loader import load_scenario

    zero = {"dist": "constant", "value": 0}
    store_op = {"dist": "constant", "value": STORE_OP_S}
    step = zero
    network: dict[str, Any] = {"client_rtt_s": 0, "internal_rtt_s": 0}
    if timed:
        step = {"dist": "constant", "value": load_calibration().server_frame_s}
        network = {"client_rtt_s": TIMED_CLIENT_RTT_S, "internal_rtt_s": TIMED_INTERNAL_RTT_S}
    events = script.events()
    faults = []
    down_at: dict[str, float] = {}
    for e in events:
        kind = e.op.kind
        if kind in ("crash_store", "crash_gateway"):
            down_at[kind.removeprefix("crash_")] = e.at_s
        elif kind in ("restart_store", "restart_gateway"):
            system = kind.removeprefix("restart_")
            since = down_at.pop(system)
            faults.append(
                {
                    "at_s": since,
                    "kind": "crash",
                    "target": f"{system}.0",
                    "duration_s": e.at_s - since,
                }
            )
    raw = {
        "name": "reference-script",
        "description": "a script compared with the reference implementation",
        "architecture": {
            "style": "microservices",
            "transport": {"kind": "websocket"},
            "codec": "json",
            "auth": {"kind": "none"},
            "encryption": {"kind": "none"},
            "gateway": {
                "instances": 1,
                "workers": 1,
                "request_s": step,
                "service_time_s": step,
                "push_time_s": step,
            },
            "service": {"instances": 1, "workers": 1, "request_s": step, "service_time_s": step},
            "ack_after": script.durability,
            "store": {"kind": "single", "workers": 8, "write_s": store_op, "read_s": store_op},
            "offline": {"inbox": "store"},
            "resilience": {
                "timeout_s": ACK_TIMEOUT_S,
                "connect_timeout_s": 10.0,
                "retry": {
                    "max_attempts": MAX_ATTEMPTS,
                    "backoff": "full_jitter",
                    "base_s": BACKOFF_BASE_S,
                    "cap_s": BACKOFF_CAP_S,
                },
                "reconnect": {"backoff": "none", "base_s": RECONNECT_S},
            },
            "network": network,
        },
        "workload": {
            "users": script.users,
            "sessions": {"mean_online_s": 1e9, "mean_offline_s": 0},
            "messages_per_user_per_hour": 0,
            "conversations": {"group_fraction": 0.0},
        },
        "faults": faults,
        "run": {
            "duration_s": script.end_s,
            "warmup_s": 0,
            "drain_s": DRAIN_S,
            "interval_s": SPACING_S,
            "seed": seed,
        },
    }
    return load_scenario(raw)


def simulator_conversations(script: Script) -> tuple[Conversations, list[int]]:
    """The script's conversations as the simulator's CSR arrays, and the simulator's
    index of each script conversation (1:1 conversations come first there)."""
    from sim.workload.population import Conversations

    pairs = [c for c, m in enumerate(script.conversations) if len(m) == 2]
    groups = [c for c, m in enumerate(script.conversations) if len(m) > 2]
    order = pairs + groups
    ptr = [0]
    members: list[int] = []
    for c in order:
        members.extend(script.conversations[c])
        ptr.append(len(members))
    convs = Conversations(
        np.asarray(ptr, dtype=np.int64),
        np.asarray(members, dtype=np.int32),
        script.users,
        len(pairs),
    )
    sim_index = [0] * len(order)
    for i, c in enumerate(order):
        sim_index[c] = i
    return convs, sim_index


Tamper = Callable[["Model"], None]
"""Changes a built model before it runs (tests use it to break the simulator)."""


def run_simulator(
    script: Script, seed: int = 0, tamper: Tamper | None = None, timed: bool = False
) -> Outcome:
    """Run ``script`` through the simulator; see the module docstring (``timed``: see
    :func:`simulator_scenario`)."""
    from sim.model.run import Model

    convs, sim_index = simulator_conversations(script)
    script_conv = {s: c for c, s in enumerate(sim_index)}
    # the network drops the next ``drops[user]`` send acks on their way to ``user``
    drops: Counter[int] = Counter()

    def ack_lost(ctx: Any) -> bool:
        sender = ctx[0].sender
        if drops[sender]:
            drops[sender] -= 1  # this frame is lost; the sender will time out
            return True
        return False

    model = Model(
        simulator_scenario(script, seed, timed), seed, conversations=convs, ack_lost=ack_lost
    )
    kernel, clients = model.kernel, model.clients
    index_of: dict[int, int] = {}

    def send(event: Event) -> None:
        op = event.op
        members, slots = convs.members_and_slots(sim_index[op.conv])
        clients.send(op.user, slots[members.index(op.user)], max(1, len(op.text)))
        index_of[model.recorder.messages[-1].msg_id] = event.send_index

    def go_offline(user: int) -> None:
        model.sessions.online[user] = 0
        clients.go_offline(user)

    def go_online(user: int) -> None:
        model.sessions.online[user] = 1
        clients.go_online(user)

    def arm_drop(user: int) -> None:
        drops[user] += 1

    for event in script.events():
        kind = event.op.kind
        if kind == "send":
            kernel.after(event.at_s, send, event)
        elif kind == "disconnect":
            kernel.after(event.at_s, go_offline, event.op.user)
        elif kind == "connect":
            kernel.after(event.at_s, go_online, event.op.user)
        elif kind == "drop_ack":
            kernel.after(event.at_s, arm_drop, event.op.user)
        # crashes and restarts of the store and the gateway are the scenario's faults
    if tamper is not None:
        tamper(model)
    result = model.run(progress=False)
    msgs = result.messages
    n = script.sends
    acked = [False] * n
    failed = [False] * n
    for msg_id, a, f in zip(msgs["msg_id"], msgs["acked"], msgs["failed"], strict=True):
        acked[index_of[int(msg_id)]] = bool(a)
        failed[index_of[int(msg_id)]] = bool(f)
    d = result.deliveries
    displays = [
        (index_of[int(m)], int(r), script_conv[int(c)], int(s))
        for m, r, c, s in zip(d["msg_id"], d["recipient"], d["conv_id"], d["seq"], strict=True)
    ]
    whole = result.meta["whole_run"]
    return outcome_of(script, acked, failed, displays, {k: int(whole[k]) for k in TOTALS})


__all__ = [
    "DRAIN_S",
    "LINKS",
    "RECONNECT_S",
    "STORE_OP_S",
    "TIMED_CLIENT_RTT_S",
    "TIMED_INTERNAL_RTT_S",
    "Tamper",
    "run_simulator",
    "simulator_conversations",
    "simulator_scenario",
]
