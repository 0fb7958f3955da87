"""The delivery checker: outcome accounting of a run, from what the clients displayed.

It looks only at records any implementation can produce (the sender's view of
each message and every display on every recipient's screen) and computes, per
message:

* ``acked``: the sender got an ack; ``failed``: the sender gave up (an
  availability loss);
* ``lost``: acked, but some member other than the sender never displayed it by
  the end of the run (whose drain brought every user online and let the system
  settle);
* ``duplicated``: displays beyond the first of the same message to the same
  recipient (the client's dedup should keep this 0);
* ``reordered``: displays that came after a display of a higher seq of the same
  conversation on the same recipient's screen.

The checker trusts no flag the simulator keeps about delivery: a broken
simulator (dedup or ordering disabled) is caught here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Outcome:
    """Totals over the checked messages, and the per-message table."""

    sent: int
    acked: int
    failed: int
    lost: int
    duplicated: int
    reordered: int
    delivered: int
    per_message: pd.DataFrame


def check(
    messages: pd.DataFrame,
    displays: pd.DataFrame,
    conversation_sizes: np.ndarray,
) -> Outcome:
    """Account for every message.

    Args:
        messages: one row per message: ``msg_id, conv_id, sender, seq, acked, failed``.
        displays: one row per display, in the order they happened:
            ``msg_id, recipient, conv_id, seq``.
        conversation_sizes: members of each conversation, indexed by ``conv_id``
            (every member but the sender must display each acked message).

    Returns:
        The totals and a per-message frame with ``expected, displayed, duplicated,
        reordered, lost`` columns added.
    """
    per = messages[["msg_id", "conv_id", "sender", "seq", "acked", "failed"]].copy()
    per["expected"] = conversation_sizes[per["conv_id"].to_numpy()] - 1
    msg_ids = per["msg_id"].to_numpy()
    displayed = np.zeros(len(per), dtype=np.int64)
    duplicated = np.zeros(len(per), dtype=np.int64)
    reordered = np.zeros(len(per), dtype=np.int64)
    if len(displays):
        # position of each displayed message in ``per`` (msg_ids need not be 0..n-1)
        order = np.argsort(msg_ids, kind="stable")
        shown = displays["msg_id"].to_numpy()
        row = order[np.searchsorted(msg_ids, shown, sorter=order)]
        recipient = displays["recipient"].to_numpy().astype(np.int64)
        # duplicates: the same (message, recipient) pair displayed more than once
        pair = row.astype(np.int64) * (int(recipient.max()) + 1) + recipient
        sorted_pairs = np.sort(pair)
        first = np.ones(len(sorted_pairs), dtype=bool)
        first[1:] = sorted_pairs[1:] != sorted_pairs[:-1]
        unique_rows = (sorted_pairs[first] // (int(recipient.max()) + 1)).astype(np.int64)
        np.add.at(displayed, unique_rows, 1)
        dup_rows = (sorted_pairs[~first] // (int(recipient.max()) + 1)).astype(np.int64)
        np.add.at(duplicated, dup_rows, 1)
        # reordering: within each (recipient, conversation), in display order, a seq
        # below the highest seq displayed before it. Offsetting each group's seqs
        # above every earlier group's lets one running maximum serve all groups.
        conv = displays["conv_id"].to_numpy().astype(np.int64)
        seq = displays["seq"].to_numpy().astype(np.int64)
        by_group = np.lexsort((np.arange(len(seq)), conv, recipient))
        g_rec, g_conv = recipient[by_group], conv[by_group]
        new_group = np.ones(len(by_group), dtype=bool)
        new_group[1:] = (g_rec[1:] != g_rec[:-1]) | (g_conv[1:] != g_conv[:-1])
        group_id = np.cumsum(new_group)
        span = int(seq.max()) + 1
        lifted = seq[by_group] + group_id * span
        running = np.maximum.accumulate(lifted)
        before = np.empty_like(running)
        before[0] = -1
        before[1:] = running[:-1]
        late = (lifted < before) & ~new_group
        np.add.at(reordered, row[by_group][late], 1)
    per["displayed"] = displayed
    per["duplicated"] = duplicated
    per["reordered"] = reordered
    per["lost"] = per["acked"].to_numpy() & (displayed < per["expected"].to_numpy())
    return Outcome(
        sent=len(per),
        acked=int(per["acked"].sum()),
        failed=int(per["failed"].sum()),
        lost=int(per["lost"].sum()),
        duplicated=int(duplicated.sum()),
        reordered=int(reordered.sum()),
        delivered=int(displayed.sum()),
        per_message=per,
    )
