"""The delivery checker: outcome accounting of a run, from what the clients displayed.

It looks only at records any implementation can produce (the sender's view of
each message, every display on every recipient's screen, and the members of each
conversation) and computes, per message:

* ``acked``: the sender got an ack; ``failed``: the sender gave up (an
  availability loss);
* ``lost``: acked, but some member other than the sender never displayed it by
  the end of the run (whose drain brought every user online and let the system
  settle);
* ``duplicated``: displays beyond the first of the same message to the same
  member (the client's dedup should keep this 0);
* ``reordered``: displays to a member that came after a display of a higher seq
  of the same conversation on that member's screen.

Each is decided per (message, member of its conversation other than the
sender): a display to the sender, or to a user outside the conversation, never
stands in for a member's. Those displays are counted apart, as defects of their
own: ``to_sender`` and ``misdelivered`` (a message shown to a non-member is a
privacy breach, not a delivery).

The checker trusts no flag the simulator keeps about delivery: a broken
simulator (dedup or ordering disabled) is caught here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

#: displays judged at once when asking who is a member (bounds the checker's extra
#: memory for that step to a few MB whatever the run's size)
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Outcome:
    """Totals over the checked messages, and the per-message table.

    ``delivered`` counts distinct (message, member) displays; ``misdelivered``
    displays to users outside the message's conversation; ``to_sender`` displays
    of a message to its own sender. Neither of the last two counts as delivered.
    """

    sent: int
    acked: int
    failed: int
    lost: int
    duplicated: int
    reordered: int
    delivered: int
    misdelivered: int
    to_sender: int
    per_message: pd.DataFrame


def check(
    messages: pd.DataFrame,
    displays: pd.DataFrame,
    conv_ptr: np.ndarray,
    conv_members: np.ndarray,
) -> Outcome:
    """Account for every message.

    Args:
        messages: one row per message: ``msg_id, conv_id, sender, seq, acked, failed``.
        displays: one row per display, in the order they happened:
            ``msg_id, recipient, conv_id, seq``.
        conv_ptr: the members of conversation ``c`` are
            ``conv_members[conv_ptr[c]:conv_ptr[c + 1]]`` (``len(conv_ptr)`` is one
            more than the number of conversations).
        conv_members: user ids, conversation after conversation; every member but
            the sender must display each acked message of the conversation.

    Returns:
        The totals and a per-message frame with ``expected, displayed, duplicated,
        reordered, lost, misdelivered, to_sender`` columns added.
    """
    per = messages[["msg_id", "conv_id", "sender", "seq", "acked", "failed"]].copy()
    conv_of = per["conv_id"].to_numpy(dtype=np.int64)
    sender_of = per["sender"].to_numpy(dtype=np.int64)
    n = len(per)
    conv_ptr = np.asarray(conv_ptr, dtype=np.int64)
    row = _rows(per["msg_id"].to_numpy(), displays["msg_id"].to_numpy())
    recipient = displays["recipient"].to_numpy()
    conv = displays["conv_id"].to_numpy()
    seq = displays["seq"].to_numpy()
    # every (conversation, user) pair as one key: conv * width + user
    width = 1 + max(
        int(np.max(conv_members, initial=0)),
        int(np.max(sender_of, initial=0)),
        int(np.max(recipient, initial=0)),
    )
    key = conv_of * width
    key += sender_of
    by_key = np.argsort(key)
    sender_member = np.empty(n, dtype=bool)
    sender_member[by_key] = _found(conv_ptr, conv_members, width, key[by_key])
    del key, by_key
    per["expected"] = np.diff(conv_ptr)[conv_of] - sender_member
    # one column of zeros stands for every count no display gave
    displayed = duplicated = reordered = misdelivered = to_sender = np.zeros(n, dtype=np.int64)
    if len(row):
        # a million-user hour displays ~10^7 times: every step below keeps at most a
        # few 8-byte columns of that length alive at once. One stable sort by
        # (conversation, recipient) serves both the membership test (whose lookups
        # in that order are cache-friendly) and the reordering count below.
        key = conv.astype(np.int64)
        key *= width
        key += recipient
        by_group = np.argsort(key, kind="stable")  # stable: display order within a group
        member = np.empty(len(key), dtype=bool)
        own = np.empty(len(key), dtype=bool)
        for lo in range(0, len(key), _CHUNK):
            at = by_group[lo : lo + _CHUNK]
            member[at] = _found(conv_ptr, conv_members, width, key[at])
            # the sender's own screen (in display order, a chunk at a time)
            np.equal(
                recipient[lo : lo + _CHUNK],
                sender_of[row[lo : lo + _CHUNK]],
                out=own[lo : lo + _CHUNK],
            )
        del key
        outsider = ~member
        outsider &= ~own
        to_sender = np.bincount(row[own], minlength=n).astype(np.int64, copy=False)
        misdelivered = np.bincount(row[outsider], minlength=n).astype(np.int64, copy=False)
        del outsider
        member &= ~own  # from here on only members' displays are judged
        del own
        if member.all():  # every display judged: the usual case, no copies
            del member
            reordered = _late(row, recipient, conv, seq, by_group, width, n)
            del by_group
            displayed, duplicated = _pairs(row, recipient, n)
        elif member.any():
            by_group = by_group[member[by_group]]
            reordered = _late(row, recipient, conv, seq, by_group, width, n)
            del by_group
            displayed, duplicated = _pairs(row[member], recipient[member], n)
    per["displayed"] = displayed
    per["duplicated"] = duplicated
    per["reordered"] = reordered
    per["lost"] = per["acked"].to_numpy() & (displayed < per["expected"].to_numpy())
    per["misdelivered"] = misdelivered
    per["to_sender"] = to_sender
    return Outcome(
        sent=len(per),
        acked=int(per["acked"].sum()),
        failed=int(per["failed"].sum()),
        lost=int(per["lost"].sum()),
        duplicated=int(duplicated.sum()),
        reordered=int(reordered.sum()),
        delivered=int(displayed.sum()),
        misdelivered=int(misdelivered.sum()),
        to_sender=int(to_sender.sum()),
        per_message=per,
    )


def _pairs(row: np.ndarray, recipient: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per message row: distinct recipients that displayed it, and displays beyond the
    first to the same recipient (the same (row, recipient) pair shown again)."""
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
    return displayed, np.bincount(pair, minlength=n) - displayed


def _late(
    row: np.ndarray,
    recipient: np.ndarray,
    conv: np.ndarray,
    seq: np.ndarray,
    by_group: np.ndarray,
    width: int,
    n: int,
) -> np.ndarray:
    """Per message row: displays that came after a higher seq's display on the same
    recipient's screen in the same conversation.

    ``by_group`` lists the judged displays (positions in the other columns, which
    hold every display) by (conversation, recipient), in display order within each
    group; ``width`` exceeds every user id. Offsetting each group's seqs above every
    earlier group's lets one running maximum serve all groups.
    """
    lifted = conv[by_group].astype(np.int64)
    lifted *= width
    lifted += recipient[by_group]
    new_group = np.empty(len(lifted), dtype=bool)
    new_group[0] = True
    np.not_equal(lifted[1:], lifted[:-1], out=new_group[1:])
    np.cumsum(new_group, out=lifted)  # the group's number
    lifted *= int(seq.max()) + 1
    lifted += seq[by_group]
    running = np.maximum.accumulate(lifted)
    late = np.zeros(len(lifted), dtype=bool)
    np.less(lifted[1:], running[:-1], out=late[1:])
    late &= ~new_group
    del lifted, running, new_group
    return np.bincount(row[by_group[late]], minlength=n).astype(np.int64)


def _found(
    conv_ptr: np.ndarray, conv_members: np.ndarray, width: int, queries: np.ndarray
) -> np.ndarray:
    """Whether each of the ascending ``conv * width + user`` ``queries`` is a membership.

    The queries are judged a chunk at a time against the sorted keys of just the
    conversations the chunk spans: no key array as long as all memberships, and
    the binary searches walk memory in order (several times faster than in random
    order on arrays of millions).
    """
    found = np.zeros(len(queries), dtype=bool)
    convs = len(conv_ptr) - 1
    for lo in range(0, len(queries), _CHUNK):
        chunk = queries[lo : lo + _CHUNK]
        first, last = int(chunk[0]) // width, min(int(chunk[-1]) // width, convs - 1)
        if first > last:
            continue
        ptr = conv_ptr[first : last + 2]
        keys = np.repeat(np.arange(first, last + 1, dtype=np.int64), np.diff(ptr))
        keys *= width
        keys += conv_members[ptr[0] : ptr[-1]]
        if not len(keys):
            continue
        keys.sort()
        at = np.searchsorted(keys, chunk)
        np.minimum(at, len(keys) - 1, out=at)
        found[lo : lo + len(chunk)] = keys[at] == chunk
    return found


def _rows(msg_ids: np.ndarray, shown: np.ndarray) -> np.ndarray:
    """Position in ``msg_ids`` of each displayed message id (ids need not be 0..n-1;
    when they are, which is the simulator's numbering, the ids are the positions)."""
    n = len(msg_ids)
    if n and msg_ids[0] == 0 and msg_ids[-1] == n - 1 and np.array_equal(msg_ids, np.arange(n)):
        return shown
    order = np.argsort(msg_ids, kind="stable")
    return order[np.searchsorted(msg_ids, shown, sorter=order)]
