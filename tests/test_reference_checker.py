"""The checker's outcome accounting on hand-made records (DESIGN section 2)."""

from __future__ import annotations

from reference_impl.checker import check


def _msg(msg_id: str, acked: bool = True, failed: bool = False) -> dict[str, object]:
    return {
        "msg_id": msg_id,
        "conv_id": "c",
        "sender": "a",
        "seq": int(msg_id[1:]),
        "send_time_s": 0.0,
        "ack_time_s": 0.1 if acked else None,
        "acked": acked,
        "failed": failed,
    }


def _shown(msg_id: str, recipient: str) -> dict[str, object]:
    seq = int(msg_id[1:])
    return {
        "msg_id": msg_id,
        "conv_id": "c",
        "recipient": recipient,
        "seq": seq,
        "display_time_s": float(seq),
    }


def test_lost_duplicated_reordered_and_failed_are_counted() -> None:
    """m1 reaches everyone; m2 misses c (lost); b sees m1 twice (duplicated) and m3 before
    m2 (reordered); m4 failed and is not judged for loss."""
    messages = [_msg("m1"), _msg("m2"), _msg("m3"), _msg("m4", acked=False, failed=True)]
    displays = [
        _shown("m1", "b"),
        _shown("m1", "c"),
        _shown("m1", "b"),
        _shown("m3", "b"),
        _shown("m2", "b"),
        _shown("m3", "c"),
    ]
    outcome = check(messages, displays, {"c": ["a", "b", "c"]}, redeliveries=3)
    assert (outcome.sent, outcome.acked, outcome.failed) == (4, 3, 1)
    assert outcome.lost_ids == ("m2",)
    assert outcome.duplicated == 1
    assert outcome.reordered == 1
    assert outcome.redeliveries == 3
    assert outcome.as_dict()["lost"] == 1


def test_sender_is_not_an_expected_recipient() -> None:
    """A message displayed to every member but its sender is not lost."""
    outcome = check([_msg("m1")], [_shown("m1", "b")], {"c": ["a", "b"]})
    assert outcome.lost == 0
