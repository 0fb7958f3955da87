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
    n = len(per)
    displayed = np.zeros(n, dtype=np.int64)
    duplicated = np.zeros(n, dtype=np.int64)
    reordered = np.zeros(n, dtype=np.int64)
    if len(displays):
        # a million-user hour displays ~10^7 times: every step below keeps at most a
        # few 8-byte columns of that length alive at once
        row = _rows(per["msg_id"].to_numpy(), displays["msg_id"].to_numpy())
        recipient = displays["recipient"].to_numpy()
        # duplicates: the same (message, recipient) pair displayed more than once
        width = int(recipient.max()) + 1
        pair = row.astype(np.int64)
        pair *= width
        pair += recipient
        pair.sort()
        first = np.empty(len(pair), dtype=bool)
        first[0] = True
        np.not_equal(pair[1:], pair[:-1], out=first[1:])
        pair //= width  # the row of each pair, in pair order
        displayed = np.bincount(pair, weights=first, minlength=n).astype(np.int64)
        duplicated = np.bincount(pair, minlength=n) - displayed
        del pair, first
        # reordering: within each (recipient, conversation), in display order, a seq
        # below the highest seq displayed before it. Offsetting each group's seqs
        # above every earlier group's lets one running maximum serve all groups.
        conv = displays["conv_id"].to_numpy()
        key = recipient.astype(np.int64)
        key *= int(conv.max()) + 1
        key += conv
        by_group = np.argsort(key, kind="stable")  # stable: display order within a group
        lifted = key[by_group]
        del key
        new_group = np.empty(len(lifted), dtype=bool)
        new_group[0] = True
        np.not_equal(lifted[1:], lifted[:-1], out=new_group[1:])
        seq = displays["seq"].to_numpy()
        np.cumsum(new_group, out=lifted)  # the group's number
        lifted *= int(seq.max()) + 1
        lifted += seq[by_group]
        running = np.maximum.accumulate(lifted)
        late = np.zeros(len(lifted), dtype=bool)
        np.less(lifted[1:], running[:-1], out=late[1:])
        late &= ~new_group
        del lifted, running, new_group
        reordered = np.bincount(row[by_group[late]], minlength=n).astype(np.int64)
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


def _rows(msg_ids: np.ndarray, shown: np.ndarray) -> np.ndarray:
    """Position in ``msg_ids`` of each displayed message id (ids need not be 0..n-1;
    when they are, which is the simulator's numbering, the ids are the positions)."""
    n = len(msg_ids)
    if n and msg_ids[0] == 0 and msg_ids[-1] == n - 1 and np.array_equal(msg_ids, np.arange(n)):
        return shown
    order = np.argsort(msg_ids, kind="stable")
    return order[np.searchsorted(msg_ids, shown, sorter=order)]
