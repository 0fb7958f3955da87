"""Outcome accounting (DESIGN section 2), on plain records any implementation can produce.

Inputs are plain data so the simulator's records can be compared with the
reference's without importing either:

* messages: ``{msg_id, conv_id, sender, seq, send_time_s, ack_time_s, acked, failed}``
  (``seq`` is -1 and ``ack_time_s`` ``None`` when never acknowledged);
* displays: ``{msg_id, conv_id, recipient, seq, display_time_s}``, in the order each
  recipient displayed them;
* membership: ``{conv_id: [user, ...]}`` at the end of the drain period.

Every member of a conversation except the sender must display each acked message
of it once, in seq order.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

Record = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Outcome:
    """Counts per DESIGN section 2, and the ids behind the counts that matter."""

    sent: int
    acked: int
    failed: int
    lost: int
    duplicated: int
    reordered: int
    displayed: int
    redeliveries: int
    lost_ids: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, object]:
        """Plain-data form, for tables and comparisons."""
        return asdict(self)


def check(
    messages: Sequence[Record],
    displays: Sequence[Record],
    membership: Mapping[str, Sequence[str]],
    redeliveries: int = 0,
) -> Outcome:
    """Compute the outcome of a run.

    Args:
        messages: one record per message sent.
        displays: one record per display event, in display order per recipient.
        membership: members of each conversation after heal-and-settle.
        redeliveries: raw redeliveries counted by clients (reported, not judged).

    Returns:
        ``lost`` counts acked messages some expected recipient never displayed;
        ``duplicated`` counts (message, recipient) pairs displayed more than once;
        ``reordered`` counts displays whose seq is below one displayed earlier
        to the same recipient in the same conversation.
    """
    shown: dict[str, set[str]] = defaultdict(set)
    per_pair: Counter[tuple[str, str]] = Counter()
    highest: dict[tuple[str, str], int] = {}
    reordered = 0
    for d in displays:
        msg_id, recipient = str(d["msg_id"]), str(d["recipient"])
        shown[msg_id].add(recipient)
        per_pair[(msg_id, recipient)] += 1
        stream = (recipient, str(d["conv_id"]))
        seq = int(d["seq"])
        if stream in highest and seq < highest[stream]:
            reordered += 1
        highest[stream] = max(highest.get(stream, seq), seq)
    lost_ids = []
    for m in messages:
        if not m["acked"]:
            continue
        expected = set(membership.get(str(m["conv_id"]), ())) - {str(m["sender"])}
        if not expected <= shown.get(str(m["msg_id"]), set()):
            lost_ids.append(str(m["msg_id"]))
    return Outcome(
        sent=len(messages),
        acked=sum(bool(m["acked"]) for m in messages),
        failed=sum(bool(m["failed"]) for m in messages),
        lost=len(lost_ids),
        duplicated=sum(1 for n in per_pair.values() if n > 1),
        reordered=reordered,
        displayed=len(displays),
        redeliveries=redeliveries,
        lost_ids=tuple(sorted(lost_ids)),
    )
