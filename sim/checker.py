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
    if len(displays):
        pairs = displays[["msg_id", "recipient"]]
        first = ~pairs.duplicated()
        unique_counts = pairs[first].groupby("msg_id").size()
        dup_counts = pairs[~first].groupby("msg_id").size()
        order = displays[["recipient", "conv_id", "seq", "msg_id"]].reset_index(drop=True)
        grouped = order.groupby(["recipient", "conv_id"], sort=False)["seq"]
        previous_max = grouped.cummax().groupby([order["recipient"], order["conv_id"]]).shift(1)
        out_of_order = order["seq"] < previous_max.fillna(-np.inf)
        reorder_counts = order[out_of_order.to_numpy()].groupby("msg_id").size()
    else:
        unique_counts = dup_counts = reorder_counts = pd.Series(dtype=np.int64)
    per["displayed"] = per["msg_id"].map(unique_counts).fillna(0).astype(np.int64)
    per["duplicated"] = per["msg_id"].map(dup_counts).fillna(0).astype(np.int64)
    per["reordered"] = per["msg_id"].map(reorder_counts).fillna(0).astype(np.int64)
    per["lost"] = per["acked"].to_numpy() & (per["displayed"] < per["expected"]).to_numpy()
    return Outcome(
        sent=len(per),
        acked=int(per["acked"].sum()),
        failed=int(per["failed"].sum()),
        lost=int(per["lost"].sum()),
        duplicated=int(per["duplicated"].sum()),
        reordered=int(per["reordered"].sum()),
        delivered=int(per["displayed"].sum()),
        per_message=per,
    )
