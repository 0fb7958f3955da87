"""The delivery checker counts lost, duplicated and reordered displays from records
alone, per (message, member of its conversation other than the sender): a display to
the sender or to a non-member never stands in for a member's, and is counted apart."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from reference_impl import checker as reference
from sim.model.checker import Outcome, check

MessageRow = tuple[int, int, int, int, bool, bool]
DisplayRow = tuple[int, int, int, int]

#: conversation 0 is 1:1 (users 10 and 11), conversation 1 a group of three
MEMBERS: dict[int, list[int]] = {0: [10, 11], 1: [10, 11, 12]}
OUTSIDER = 13  # a user in neither conversation


def _messages(rows: list[MessageRow]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["msg_id", "conv_id", "sender", "seq", "acked", "failed"])


def _displays(rows: list[DisplayRow]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["msg_id", "recipient", "conv_id", "seq"])


def _check(
    messages: list[MessageRow],
    displays: list[DisplayRow],
    members: Mapping[int, Sequence[int]] = MEMBERS,
) -> Outcome:
    """The simulator's checker, with membership in its CSR layout (conversations 0..n-1)."""
    sizes = [len(members.get(c, ())) for c in range(max(members) + 1)]
    conv_ptr = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    conv_members = np.array(
        [u for c in range(len(sizes)) for u in members.get(c, ())], dtype=np.int64
    )
    return check(_messages(messages), _displays(displays), conv_ptr, conv_members)


def test_every_member_displaying_every_acked_message_means_nothing_lost() -> None:
    msgs = [(0, 0, 10, 1, True, False), (1, 1, 10, 1, True, False)]
    out = _check(msgs, [(0, 11, 0, 1), (1, 11, 1, 1), (1, 12, 1, 1)])
    assert (out.lost, out.duplicated, out.reordered, out.delivered) == (0, 0, 0, 3)
    assert (out.misdelivered, out.to_sender) == (0, 0)


def test_an_acked_message_missing_on_one_members_screen_is_lost() -> None:
    out = _check([(0, 1, 10, 1, True, False)], [(0, 11, 1, 1)])
    assert out.lost == 1


def test_a_member_missing_while_the_sender_saw_it_is_lost() -> None:
    """Two displays, to member 11 and to the sender 10, still leave member 12 without it."""
    out = _check([(0, 1, 10, 1, True, False)], [(0, 11, 1, 1), (0, 10, 1, 1)])
    assert (out.lost, out.delivered, out.to_sender, out.misdelivered) == (1, 1, 1, 0)
    per = out.per_message.set_index("msg_id")
    assert bool(per.loc[0, "lost"]) and per.loc[0, "to_sender"] == 1


def test_a_member_missing_while_a_non_member_saw_it_is_lost() -> None:
    """A display to an outsider does not make up for member 12's missing one."""
    out = _check([(0, 1, 10, 1, True, False)], [(0, 11, 1, 1), (0, OUTSIDER, 1, 1)])
    assert (out.lost, out.delivered) == (1, 1)


def test_a_display_to_a_non_member_is_misdelivered_not_delivered() -> None:
    out = _check([(0, 0, 10, 1, True, False)], [(0, 11, 0, 1), (0, OUTSIDER, 0, 1)])
    assert (out.misdelivered, out.delivered, out.lost, out.to_sender) == (1, 1, 0, 0)
    assert out.per_message.set_index("msg_id").loc[0, "misdelivered"] == 1


def test_a_second_display_to_the_same_member_is_a_duplicate() -> None:
    """Member 11 sees it twice: one duplicate; the sender seeing it twice is no duplicate
    of a member's (it is counted as two displays to the sender)."""
    shown = [(0, 11, 0, 1), (0, 10, 0, 1), (0, 11, 0, 1), (0, 10, 0, 1)]
    out = _check([(0, 0, 10, 1, True, False)], shown)
    assert (out.duplicated, out.delivered, out.lost, out.to_sender) == (1, 1, 0, 2)
    assert out.per_message.set_index("msg_id").loc[0, "duplicated"] == 1


def test_a_lower_seq_displayed_after_a_higher_one_on_a_members_screen_is_reordered() -> None:
    """Member 11 sees seq 2 before seq 1: one reordering. An outsider who sees the same
    pair out of order adds none (its displays are misdelivered, not judged for order)."""
    msgs = [(0, 0, 10, 1, True, False), (1, 0, 10, 2, True, False)]
    shown = [(1, 11, 0, 2), (1, OUTSIDER, 0, 2), (0, 11, 0, 1), (0, OUTSIDER, 0, 1)]
    out = _check(msgs, shown)
    assert (out.reordered, out.misdelivered) == (1, 2)
    per = out.per_message.set_index("msg_id")
    assert per.loc[0, "reordered"] == 1 and per.loc[1, "reordered"] == 0


def test_an_unacked_undisplayed_message_is_failed_not_lost() -> None:
    out = _check([(0, 0, 10, 1, False, True)], [])
    assert (out.lost, out.failed, out.acked) == (0, 1, 0)


def test_order_is_judged_per_recipient_and_conversation() -> None:
    msgs = [(0, 0, 10, 1, True, False), (1, 1, 10, 1, True, False)]
    # seq 1 of conversation 1 after seq 1 of conversation 0: different conversations, in order
    out = _check(msgs, [(0, 11, 0, 1), (1, 11, 1, 1), (1, 12, 1, 1)])
    assert out.reordered == 0


# --- agreement with the reference implementation's checker --------------------------

USERS = 5  # users 0..4; each conversation is a non-empty subset of them


@st.composite
def histories(
    draw: st.DrawFn,
) -> tuple[dict[int, list[int]], list[MessageRow], list[DisplayRow]]:
    """Random conversations, messages and display histories, displays to senders and
    non-members included. A (message, recipient) pair is shown at most twice, where the
    two checkers' duplicate counts (extra displays, pairs shown again) mean the same."""
    n_convs = draw(st.integers(1, 3))
    members = {
        c: sorted(draw(st.sets(st.integers(0, USERS - 1), min_size=1, max_size=USERS)))
        for c in range(n_convs)
    }
    messages: list[MessageRow] = []
    for msg_id in range(draw(st.integers(0, 6))):
        conv = draw(st.integers(0, n_convs - 1))
        sender = draw(st.sampled_from(members[conv]))
        acked = draw(st.booleans())
        seq = draw(st.integers(1, 4)) if acked else -1
        messages.append((msg_id, conv, sender, seq, acked, not acked))
    displays: list[DisplayRow] = []
    if messages:
        pairs = draw(
            st.lists(
                st.tuples(st.integers(0, len(messages) - 1), st.integers(0, USERS - 1)),
                max_size=20,
            )
        )
        for msg_id, recipient in pairs:
            if sum(1 for d in displays if d[:2] == (msg_id, recipient)) < 2:
                _, conv, _, seq, _, _ = messages[msg_id]
                displays.append((msg_id, recipient, conv, seq))
    return members, messages, displays


def _reference(
    members: Mapping[int, Sequence[int]],
    messages: list[MessageRow],
    displays: list[DisplayRow],
) -> reference.Outcome:
    """The reference checker on the same history, as its string-keyed records."""
    return reference.check(
        [
            {"msg_id": str(m), "conv_id": str(c), "sender": str(s), "seq": q}
            | {"acked": a, "failed": f}
            for m, c, s, q, a, f in messages
        ],
        [
            {"msg_id": str(m), "recipient": str(r), "conv_id": str(c), "seq": q}
            for m, r, c, q in displays
        ],
        {str(c): [str(u) for u in users] for c, users in members.items()},
    )


@given(histories())
def test_the_simulators_checker_agrees_with_the_reference_checker(
    history: tuple[dict[int, list[int]], list[MessageRow], list[DisplayRow]],
) -> None:
    """Lost agrees on the whole history; duplicated and reordered agree with the
    reference's counts over members' displays (the reference judges every screen for
    those, so it is given members' displays only: a loss it sees does not change);
    the displays left out are exactly the misdelivered and to-sender ones."""
    members, messages, displays = history
    ours = _check(messages, displays, members)
    whole = _reference(members, messages, displays)
    assert ours.lost == whole.lost
    sender = {m[0]: m[2] for m in messages}
    conv = {m[0]: m[1] for m in messages}
    to_members = [d for d in displays if d[1] != sender[d[0]] and d[1] in members[conv[d[0]]]]
    judged = _reference(members, messages, to_members)
    assert (ours.lost, ours.duplicated, ours.reordered) == (
        judged.lost,
        judged.duplicated,
        judged.reordered,
    )
    assert ours.delivered + ours.duplicated == judged.displayed
    assert ours.to_sender == sum(1 for d in displays if d[1] == sender[d[0]])
    assert ours.misdelivered == len(displays) - len(to_members) - ours.to_sender
