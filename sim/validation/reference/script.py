"""Scripts: small, exact scenarios that both systems run (see the package docstring).

A :class:`Script` names a few users, their conversations (member lists, one of
them a group when there are three users or more), the durability setting, and
operations at fixed times: sends, disconnects and reconnects, crashes and
restarts of the store and of the gateway, and acks the network drops.
Operations are :data:`SPACING_S` apart, long enough for both systems to settle
in between (a send, its retries after a dropped ack, a sync after a reconnect
all finish within two seconds), so each system's outcome is a function of the
script alone, not of timing details that the two model differently.

Every script ends with restarts of a crashed gateway and a crashed store and
scripted reconnects of every offline user, one step apart in user order
(messages queued in outboxes take their seqs in that order).

Scripts come from one builder, :func:`build_script`, fed either by Hypothesis
(:func:`scripts`, for the tests) or by a seeded ``random.Random``
(:func:`seeded_scripts`, for ``msgsim validate``). This module knows neither
system: the adapters translate a script into each. ``hypothesis`` is imported
inside :func:`scripts` only.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

#: simulated seconds between two operations of a script
SPACING_S = 5.0
#: the first operation happens here (everyone connected and settled before)
START_S = SPACING_S
#: the protocol's retry policy (docs/protocol.md), configured on both sides
ACK_TIMEOUT_S = 1.0
BACKOFF_BASE_S = 0.05
BACKOFF_CAP_S = 5.0
MAX_ATTEMPTS = 5

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


def seeded_scripts(examples: int, seed: int) -> Iterator[Script]:
    """``examples`` scripts from ``random.Random`` seeded by ``(seed, i)``: reproducible."""
    for i in range(examples):
        yield random_script(random.Random(seed * 1_000_003 + i))


__all__ = [
    "ACK_TIMEOUT_S",
    "BACKOFF_BASE_S",
    "BACKOFF_CAP_S",
    "MAX_ATTEMPTS",
    "SPACING_S",
    "START_S",
    "Durability",
    "Event",
    "Op",
    "OpKind",
    "Script",
    "build_script",
    "random_script",
    "scripts",
    "seeded_scripts",
]
