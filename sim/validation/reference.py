"""The simulator against the reference implementation, on scripted scenarios.

A :class:`Script` is a small, exact scenario: a few users, their conversations
(member lists, one of them a group when there are three users or more), the
durability setting, and operations at fixed times: sends, disconnects and
reconnects, crashes and restarts of the store and of the gateway, and acks the
network drops.
Operations are :data:`SPACING_S` apart, long enough for both systems to settle
in between (a send, its retries after a dropped ack, a sync after a reconnect
all finish within two seconds), so each system's outcome is a function of the
script alone, not of timing details that the two model differently.

The same script runs through both systems:

* :func:`run_simulator` builds a :class:`~sim.model.run.Model` with the script's
  exact conversation graph, zero network delays and instantaneous tiers (the
  store takes :data:`STORE_OP_S` per request, so that a crashed store refuses
  work) or, with ``timed``, constant network delays and gateway and service
  costs (the paths a real scenario takes: frames scheduled after a delay, jobs
  queued at stations), nobody churning (``mean_offline_s: 0``) and no generated
  traffic (``messages_per_user_per_hour: 0``); sends, disconnects and reconnects are
  scheduled on the model's kernel before it runs, store and gateway crashes are
  the scenario's ``faults:`` windows (clients the gateway dropped reconnect every
  :data:`RECONNECT_S`, in lockstep), and dropped acks go through the clients'
  ``ack_lost`` hook (the network losing the ack frame on its way down);
* :func:`run_reference` drives ``reference_impl``'s deterministic in-memory
  :class:`~reference_impl.network.Network`: it applies each operation, then
  delivers every frame in order and fires every timer until the next one; when
  the gateway restarts, the driver reconnects the clients its crash dropped, in
  user order.

Every script ends with restarts of a crashed gateway and a crashed store and
scripted reconnects of every offline user, one step apart in user order (messages queued in outboxes
take their seqs in that order), and then each system settles: the simulator's
drain, the reference's clock running until no timer is due within
:data:`QUIET_S`.

Each run gives an :class:`Outcome` built only from what the sender and the
recipients saw: per message (identified by its index among the script's sends)
acked and failed; per (message, recipient) the number of displays, lost,
duplicated and reordered; per recipient and conversation the order of the
displayed messages; and the totals of each implementation's own checker. The
adapter translates between the two systems and shares no logic with either.

``reference_impl`` and ``hypothesis`` are imported inside the functions that
need them: ``sim`` does not depend on them at import time.
"""

from __future__ import annotations

import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

    from sim.model.run import Model
    from sim.scenario.schema import Scenario
    from sim.workload.population import Conversations

#: simulated seconds between two operations of a script
SPACING_S = 5.0
#: the first operation happens here (everyone connected and settled before)
START_S = SPACING_S
#: simulator: a store write or read takes this long (a 0 would bypass the store)
STORE_OP_S = 0.001
#: the protocol's retry policy (docs/protocol.md), configured on both sides
ACK_TIMEOUT_S = 1.0
BACKOFF_BASE_S = 0.05
BACKOFF_CAP_S = 5.0
MAX_ATTEMPTS = 5
#: the timed comparison: the simulator's client link and internal hops take the
#: scenario defaults' times (``docs/parameters.md``: 80 ms client round trip, 0.5 ms
#: in the data centre), constant so that each link stays first in, first out like
#: the TCP connection it models, and the gateway and the message service take the
#: calibration's ``server_frame_s`` per request (one worker each: first come, first served)
TIMED_CLIENT_RTT_S = 0.08
TIMED_INTERNAL_RTT_S = 0.0005
#: the two ways every script runs through the simulator (see :func:`simulator_scenario`)
LINKS = ("instant", "timed")
#: simulator: clients whose gateway crashed try to reconnect this often, without
#: jitter, so they come back in lockstep and in user order (the reference's driver
#: reconnects them in that order when the gateway restarts): their queued sends
#: then take their seqs in the same order in both systems
RECONNECT_S = 0.5
#: simulator: drain after the script (everyone with something pending comes back)
DRAIN_S = 60.0
#: reference: the system is settled when no timer is due within this long
QUIET_S = 30.0

MAX_USERS = 6
MAX_CONVERSATIONS = 3
MIN_OPS, MAX_OPS = 5, 25

OpKind = Literal[
    "send",
    "disconnect",
    "connect",
    "crash_store",
    "restart_store",
    "crash_gateway",
    "restart_gateway",
    "drop_ack",
]
Durability = Literal["store", "gateway"]


# ----------------------------------------------------------------------- scripts


@dataclass(frozen=True)
class Op:
    """One scripted operation.

    * ``send``: ``user`` writes ``text`` in conversation ``conv`` (queued in the
      client's outbox while it is offline);
    * ``disconnect`` / ``connect``: ``user``'s connection closes / opens;
    * ``crash_store`` / ``restart_store``: the (single) store goes down / comes back;
      it keeps every write it acknowledged (its disk survives);
    * ``crash_gateway`` / ``restart_gateway``: the (single) gateway goes down, closing
      every connection / comes back, and the clients it dropped reconnect (and sync);
      while it is down, clients queue their sends, and nobody connects or
      disconnects;
    * ``drop_ack``: the network loses the next send ack on its way to ``user``:
      the sender times out and sends the same message again, which the server
      must recognise (one copy, one seq).
    """

    kind: OpKind
    user: int = -1
    conv: int = -1
    text: str = ""

    def __str__(self) -> str:
        if self.kind == "send":
            return f"send(u{self.user}, c{self.conv}, {self.text!r})"
        if self.kind in ("crash_store", "restart_store", "crash_gateway", "restart_gateway"):
            return f"{self.kind}()"
        return f"{self.kind}(u{self.user})"


@dataclass(frozen=True)
class Event:
    """An operation at its time; ``send_index`` numbers the sends (message identity)."""

    at_s: float
    op: Op
    send_index: int = -1


@dataclass(frozen=True)
class Script:
    """Users ``0..users-1``, conversations as member lists, and operations.

    Operation ``i`` happens at ``START_S + i * SPACING_S``. ``durability`` is the
    ack point: ``store`` acks a send once the store has it (a crash of the store
    loses nothing acknowledged; sends while it is down are refused and retried);
    ``gateway`` acks as soon as the server has the frame, before the store write.

    Operations that would change nothing (connecting an online user, crashing a
    crashed store, ...) are skipped by :meth:`events`, and so are connects and
    disconnects while the gateway is down; after the last operation a crashed
    gateway and a crashed store restart and every offline user reconnects, one
    step apart, so every script is valid and ends with everyone online.
    """

    users: int
    conversations: tuple[tuple[int, ...], ...]
    ops: tuple[Op, ...]
    durability: Durability = "store"

    def __post_init__(self) -> None:
        if self.users < 2:
            raise ValueError(f"a script needs at least 2 users, got {self.users}")
        for c, members in enumerate(self.conversations):
            if len(set(members)) != len(members) or len(members) < 2:
                raise ValueError(f"conversation {c} needs 2+ distinct members: {members}")
            if not all(0 <= u < self.users for u in members):
                raise ValueError(f"conversation {c} names unknown users: {members}")
        for op in self.ops:
            if op.kind == "send" and op.user not in self.conversations[op.conv]:
                raise ValueError(f"{op}: u{op.user} is not a member of c{op.conv}")

    def events(self) -> list[Event]:
        """The operations that change something, at their times, plus the final restart."""
        online = [True] * self.users
        store_up = gateway_up = True
        out: list[Event] = []
        sends = 0
        at_s = START_S
        for i, op in enumerate(self.ops):
            at_s = START_S + i * SPACING_S
            if op.kind == "send":
                out.append(Event(at_s, op, sends))
                sends += 1
                continue
            if op.kind in ("connect", "disconnect") and not gateway_up:
                continue
            if op.kind == "connect" and online[op.user]:
                continue
            if op.kind == "disconnect" and not online[op.user]:
                continue
            if op.kind == "crash_store" and not store_up:
                continue
            if op.kind == "restart_store" and store_up:
                continue
            if op.kind == "crash_gateway" and not gateway_up:
                continue
            if op.kind == "restart_gateway" and gateway_up:
                continue
            if op.kind in ("connect", "disconnect"):
                online[op.user] = op.kind == "connect"
            elif op.kind in ("crash_store", "restart_store"):
                store_up = op.kind == "restart_store"
            elif op.kind in ("crash_gateway", "restart_gateway"):
                gateway_up = op.kind == "restart_gateway"
            out.append(Event(at_s, op))
        # the end: the gateway and the store come back, then every offline user
        # reconnects, one per step and in a fixed order (queued sends take their seqs
        # in that order)
        if not gateway_up:
            at_s += SPACING_S
            out.append(Event(at_s, Op("restart_gateway")))
        if not store_up:
            at_s += SPACING_S
            out.append(Event(at_s, Op("restart_store")))
        for user in range(self.users):
            if not online[user]:
                at_s += SPACING_S
                out.append(Event(at_s, Op("connect", user)))
        return out

    @property
    def sends(self) -> int:
        return sum(op.kind == "send" for op in self.ops)

    @property
    def end_s(self) -> float:
        """When the script is over: one step after its last operation or event."""
        events = self.events()
        last = events[-1].at_s if events else START_S
        return max(last, START_S + (len(self.ops) - 1) * SPACING_S) + SPACING_S

    def __str__(self) -> str:
        convs = ", ".join(
            f"c{c}=[{' '.join(f'u{u}' for u in m)}]" for c, m in enumerate(self.conversations)
        )
        lines = [f"Script({self.users} users, {convs}, durability={self.durability})"]
        for e in self.events():
            tag = f"  #{e.send_index}" if e.send_index >= 0 else ""
            lines.append(f"  t={e.at_s:6.1f}s  {e.op}{tag}")
        return "\n".join(lines)


KNOWN_DIFFERENCES: dict[str, str] = {}
"""Semantic differences found between the two implementations, kept out of the
generated scripts and pinned by tests/test_sim_vs_reference.py."""


# -------------------------------------------------------------------- generation


Choose = Callable[[int, int], int]
"""``choose(lo, hi)``: an integer in ``[lo, hi]``; smaller is simpler (for shrinking)."""


def build_script(choose: Choose) -> Script:
    """A script from a source of integer choices: a seeded generator or Hypothesis.

    2-6 users; 1-3 conversations, one of them a group of 3+ when there are 3+
    users; the durability setting; 5-25 operations chosen with the current state
    in mind (only online users disconnect, a crashed store or gateway is
    restarted, nobody connects or disconnects while the gateway is down ...).
    The store may crash under either durability: with ``gateway`` both services keep
    an acked message in memory and write it when the store is back.
    """
    users = choose(2, MAX_USERS)
    n_convs = choose(1, MAX_CONVERSATIONS)
    group_at = choose(0, n_convs - 1) if users >= 3 else -1
    conversations = []
    for c in range(n_convs):
        size = choose(3, users) if c == group_at else 2
        pool = list(range(users))
        members = [pool.pop(choose(0, len(pool) - 1)) for _ in range(size)]
        conversations.append(tuple(sorted(members)))
    durability: Durability = ("store", "gateway")[choose(0, 1)]
    in_conv = sorted({u for m in conversations for u in m})
    online = set(range(users))
    store_up = gateway_up = True
    ops: list[Op] = []
    for i in range(choose(MIN_OPS, MAX_OPS)):
        menu: list[tuple[OpKind, int]] = [("send", 8), ("drop_ack", 2)]
        if online & set(in_conv) and gateway_up:
            menu.append(("disconnect", 2))
        if len(online) < users and gateway_up:
            menu.append(("connect", 3))
        menu.append(("crash_store", 1) if store_up else ("restart_store", 3))
        menu.append(("crash_gateway", 1) if gateway_up else ("restart_gateway", 3))
        kind = _weighted(choose, menu)
        if kind == "send":
            conv = choose(0, n_convs - 1)
            talkers = conversations[conv]
            user = talkers[choose(0, len(talkers) - 1)]
            ops.append(Op("send", user, conv, f"m{i}"))
        elif kind == "drop_ack":
            ops.append(Op("drop_ack", in_conv[choose(0, len(in_conv) - 1)]))
        elif kind == "disconnect":
            candidates = sorted(online & set(in_conv))
            user = candidates[choose(0, len(candidates) - 1)]
            online.discard(user)
            ops.append(Op("disconnect", user))
        elif kind == "connect":
            candidates = sorted(set(range(users)) - online)
            user = candidates[choose(0, len(candidates) - 1)]
            online.add(user)
            ops.append(Op("connect", user))
        elif kind in ("crash_store", "restart_store"):
            store_up = kind == "restart_store"
            ops.append(Op(kind))
        else:
            gateway_up = kind == "restart_gateway"
            ops.append(Op(kind))
    return Script(users, tuple(conversations), tuple(ops), durability)


def _weighted(choose: Choose, menu: list[tuple[OpKind, int]]) -> OpKind:
    """One kind of the menu, with probability proportional to its weight (first: simplest)."""
    pick = choose(0, sum(w for _, w in menu) - 1)
    for kind, weight in menu:
        if pick < weight:
            return kind
        pick -= weight
    raise AssertionError("unreachable")  # pragma: no cover


def random_script(rng: random.Random) -> Script:
    """A script drawn from a seeded generator (used by ``msgsim validate``)."""
    return build_script(rng.randint)


def scripts() -> SearchStrategy[Script]:
    """The Hypothesis strategy of scripts (Hypothesis is a test dependency)."""
    from hypothesis import strategies as st

    @st.composite
    def strategy(draw: Callable[[SearchStrategy[int]], int]) -> Script:
        return build_script(lambda lo, hi: draw(st.integers(lo, hi)))

    return strategy()


# ----------------------------------------------------------------------- outcome


@dataclass(frozen=True)
class PairOutcome:
    """One message on one recipient's screen."""

    displays: int
    lost: bool
    duplicated: bool
    reordered: int


@dataclass(frozen=True)
class Outcome:
    """What the users saw, in terms both systems share.

    Messages are the script's send indices, users and conversations the
    script's numbers. ``pairs`` has one entry per message and member other than
    its sender (and any other recipient that displayed it); ``order`` maps
    (recipient, conversation) to the messages displayed, in display order;
    ``totals`` are the implementation's own checker's counts.
    """

    acked: tuple[bool, ...]
    failed: tuple[bool, ...]
    pairs: dict[tuple[int, int], PairOutcome]
    order: dict[tuple[int, int], tuple[int, ...]]
    totals: dict[str, int]

    def differences(self, other: Outcome, names: tuple[str, str] = ("sim", "ref")) -> list[str]:
        """Readable lines, one per difference (empty when equal)."""
        a, b = names
        out = []
        for i, (x, y) in enumerate(zip(self.acked, other.acked, strict=False)):
            if x != y:
                out.append(f"message #{i}: acked {a}={x} {b}={y}")
        for i, (x, y) in enumerate(zip(self.failed, other.failed, strict=False)):
            if x != y:
                out.append(f"message #{i}: failed {a}={x} {b}={y}")
        if len(self.acked) != len(other.acked):
            out.append(f"messages: {a}={len(self.acked)} {b}={len(other.acked)}")
        for key in sorted(self.pairs.keys() | other.pairs.keys()):
            p, q = self.pairs.get(key), other.pairs.get(key)
            if p != q:
                out.append(f"message #{key[0]} on u{key[1]}: {a}={p} {b}={q}")
        for key in sorted(self.order.keys() | other.order.keys()):
            x2, y2 = self.order.get(key, ()), other.order.get(key, ())
            if x2 != y2:
                out.append(f"u{key[0]} c{key[1]} displayed order: {a}={list(x2)} {b}={list(y2)}")
        for name in sorted(self.totals.keys() | other.totals.keys()):
            if self.totals.get(name) != other.totals.get(name):
                out.append(
                    f"checker total {name}: {a}={self.totals.get(name)} "
                    f"{b}={other.totals.get(name)}"
                )
        return out


def _outcome(
    script: Script,
    acked: Sequence[bool],
    failed: Sequence[bool],
    displays: Sequence[tuple[int, int, int, int]],
    totals: dict[str, int],
) -> Outcome:
    """``displays``: ``(message, recipient, conversation, seq)`` in display order."""
    conv_of = [e.op.conv for e in script.events() if e.send_index >= 0]
    sender_of = [e.op.user for e in script.events() if e.send_index >= 0]
    counts: Counter[tuple[int, int]] = Counter()
    reordered: Counter[tuple[int, int]] = Counter()
    highest: dict[tuple[int, int], int] = {}
    order: dict[tuple[int, int], list[int]] = defaultdict(list)
    for msg, recipient, conv, seq in displays:
        counts[(msg, recipient)] += 1
        stream = (recipient, conv)
        if stream in highest and seq < highest[stream]:
            reordered[(msg, recipient)] += 1
        highest[stream] = max(highest.get(stream, seq), seq)
        order[stream].append(msg)
    expected = {
        (msg, user)
        for msg, conv in enumerate(conv_of)
        for user in script.conversations[conv]
        if user != sender_of[msg]
    }
    pairs = {}
    for key in expected | set(counts):
        n = counts[key]
        pairs[key] = PairOutcome(
            displays=n,
            lost=bool(acked[key[0]]) and n == 0 and key in expected,
            duplicated=n > 1,
            reordered=reordered[key],
        )
    return Outcome(
        acked=tuple(bool(x) for x in acked),
        failed=tuple(bool(x) for x in failed),
        pairs=pairs,
        order={k: tuple(v) for k, v in order.items()},
        totals=totals,
    )


TOTALS = ("sent", "acked", "failed", "lost", "duplicated", "reordered")


# --------------------------------------------------------------------- simulator


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
    return _outcome(script, acked, failed, displays, {k: int(whole[k]) for k in TOTALS})


# --------------------------------------------------------------------- reference


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
    return _outcome(script, acked, failed, displays, totals)


# ---------------------------------------------------------------------- validate


@dataclass(frozen=True)
class Mismatch:
    """A script whose outcomes differ, and how (``links``: the simulator's variant)."""

    index: int
    script: Script
    differences: list[str]
    links: str = "instant"


@dataclass(frozen=True)
class ReferenceSummary:
    """What :func:`validate_reference` compared."""

    scripts: int
    equal: int
    mismatches: list[Mismatch]
    operations: int
    sends: int
    wall_s: float

    @property
    def passed(self) -> bool:
        return self.equal == self.scripts

    def line(self) -> str:
        return (
            f"simulator vs reference: {self.scripts} scripts, {self.equal} equal outcomes "
            "(each run with instant links and with timed ones)"
        )


def seeded_scripts(examples: int, seed: int) -> Iterator[Script]:
    """``examples`` scripts from ``random.Random`` seeded by ``(seed, i)``: reproducible."""
    for i in range(examples):
        yield random_script(random.Random(seed * 1_000_003 + i))


def validate_reference(examples: int = 100, seed: int = 1) -> ReferenceSummary:
    """Run ``examples`` seeded scripts through both systems and compare the outcomes;
    the simulator runs each script twice, with instant links and with timed ones
    (:data:`LINKS`), and a script is equal when both runs equal the reference's."""
    started = time.perf_counter()
    mismatches = []
    operations = sends = 0
    for i, script in enumerate(seeded_scripts(examples, seed)):
        operations += len(script.ops)
        sends += script.sends
        reference = run_reference(script, seed)
        for links in LINKS:
            simulated = run_simulator(script, seed, timed=links == "timed")
            diff = simulated.differences(reference)
            if diff:
                mismatches.append(Mismatch(i, script, diff, links))
                break
    return ReferenceSummary(
        scripts=examples,
        equal=examples - len(mismatches),
        mismatches=mismatches,
        operations=operations,
        sends=sends,
        wall_s=time.perf_counter() - started,
    )


__all__ = [
    "LINKS",
    "Event",
    "Op",
    "Outcome",
    "PairOutcome",
    "ReferenceSummary",
    "Script",
    "build_script",
    "random_script",
    "run_reference",
    "run_simulator",
    "scripts",
    "seeded_scripts",
    "simulator_conversations",
    "simulator_scenario",
    "validate_reference",
]
