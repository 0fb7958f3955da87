"""The outcome of one run of a script, in terms both systems share.

An :class:`Outcome` is built only from what the sender and the recipients saw:
per message (identified by its index among the script's sends) acked and
failed; per (message, recipient) the number of displays, lost, duplicated and
reordered; per recipient and conversation the order of the displayed messages;
and the totals (:data:`TOTALS`) of each implementation's own checker. Each
adapter translates its system's records into the arguments of
:func:`outcome_of`; :meth:`Outcome.differences` compares two outcomes line by line.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sim.validation.reference.script import Script

#: the checker totals both implementations count, under the same names
TOTALS = ("sent", "acked", "failed", "lost", "duplicated", "reordered")


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


def outcome_of(
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


__all__ = ["TOTALS", "Outcome", "PairOutcome", "outcome_of"]
