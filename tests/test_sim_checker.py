"""The delivery checker counts lost, duplicated and reordered displays from records alone."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sim.model.checker import check


def _messages(rows: list[tuple[int, int, int, int, bool, bool]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["msg_id", "conv_id", "sender", "seq", "acked", "failed"])


def _displays(rows: list[tuple[int, int, int, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["msg_id", "recipient", "conv_id", "seq"])


SIZES = np.array([2, 3])  # conversation 0 is 1:1, conversation 1 a group of three


def test_every_member_displaying_every_acked_message_means_nothing_lost() -> None:
    msgs = _messages([(0, 0, 10, 1, True, False), (1, 1, 10, 1, True, False)])
    shown = _displays([(0, 11, 0, 1), (1, 11, 1, 1), (1, 12, 1, 1)])
    out = check(msgs, shown, SIZES)
    assert (out.lost, out.duplicated, out.reordered, out.delivered) == (0, 0, 0, 3)


def test_an_acked_message_missing_on_one_members_screen_is_lost() -> None:
    msgs = _messages([(0, 1, 10, 1, True, False)])
    out = check(msgs, _displays([(0, 11, 1, 1)]), SIZES)
    assert out.lost == 1


def test_an_unacked_undisplayed_message_is_failed_not_lost() -> None:
    msgs = _messages([(0, 0, 10, 1, False, True)])
    out = check(msgs, _displays([]), SIZES)
    assert (out.lost, out.failed, out.acked) == (0, 1, 0)


def test_a_second_display_to_the_same_recipient_is_a_duplicate() -> None:
    msgs = _messages([(0, 0, 10, 1, True, False)])
    out = check(msgs, _displays([(0, 11, 0, 1), (0, 11, 0, 1)]), SIZES)
    assert (out.duplicated, out.delivered, out.lost) == (1, 1, 0)


def test_a_lower_seq_displayed_after_a_higher_one_is_reordered() -> None:
    msgs = _messages([(0, 0, 10, 1, True, False), (1, 0, 10, 2, True, False)])
    out = check(msgs, _displays([(1, 11, 0, 2), (0, 11, 0, 1)]), SIZES)
    assert out.reordered == 1
    per = out.per_message.set_index("msg_id")
    assert per.loc[0, "reordered"] == 1 and per.loc[1, "reordered"] == 0


def test_order_is_judged_per_recipient_and_conversation() -> None:
    msgs = _messages([(0, 0, 10, 1, True, False), (1, 1, 10, 1, True, False)])
    # seq 1 of conversation 1 after seq 1 of conversation 0: different conversations, in order
    out = check(msgs, _displays([(0, 11, 0, 1), (1, 11, 1, 1), (1, 12, 1, 1)]), SIZES)
    assert out.reordered == 0
