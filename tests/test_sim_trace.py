"""The kernel's trace digest: time, callback and a summary of each call's argument.

The determinism self-checks compare digests of two runs; two runs that call the
same functions at the same times on different messages must not digest alike,
and a digest must not depend on memory addresses or the hash seed, so that it is
the same in every process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from sim.core.kernel import Kernel, call_summary
from sim.core.metrics import Message


def _ignore(_: Any) -> None:
    """A callback that does nothing."""


def _message(msg_id: int) -> Message:
    return Message(
        msg_id, conv=0, slot=0, sender=1, send_s=0.0, payload_bytes=10, up_bytes=20, down_bytes=20
    )


class _Opaque:
    """An argument with no summary of its own: its default repr holds an address."""


def _carrying_run(first_id: int, second_id: int) -> str:
    """Two callbacks at fixed times; only the messages they carry vary."""
    kernel = Kernel(0, trace=True)
    seen: list[int] = []

    def deliver(msg: Message) -> None:
        seen.append(msg.msg_id)

    def ack(pair: tuple[Message, int]) -> None:
        seen.append(pair[1])

    kernel.at(1.0, deliver, _message(first_id))
    kernel.at(2.0, ack, (_message(second_id), 3))
    kernel.at(3.0, _ignore, [_Opaque(), 2.5, "gateway"])
    kernel.run(until=10.0)
    assert kernel.trace is not None
    return kernel.trace.digest


def test_a_traced_kernel_digest_changes_when_a_call_carries_another_message() -> None:
    """Same functions at the same times, different messages: the digests differ
    (a plain message and a message inside a tuple alike)."""
    base = _carrying_run(1, 2)
    assert _carrying_run(1, 2) == base
    assert _carrying_run(7, 2) != base
    assert _carrying_run(1, 7) != base


def test_a_trace_digest_is_the_same_in_another_process() -> None:
    """No memory address or hash seed enters the digest: a fresh interpreter with
    another hash seed computes the same one (an opaque object is its type's name)."""
    code = "import tests.test_sim_trace as t; print(t._carrying_run(1, 2))"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    other = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=Path(__file__).resolve().parent.parent,
    ).stdout.strip()
    assert other == _carrying_run(1, 2)


def test_a_call_summary_keeps_ids_numbers_and_strings_and_names_other_types() -> None:
    """Messages by id, plain values by repr, containers item by item (two levels),
    anything else by its type's name: never an address."""
    assert call_summary(_message(42)) == "msg42"
    assert call_summary((_message(5), 3, 0.5, "a", None)) == "(msg5,3,0.5,'a',None)"
    assert call_summary([(_message(5),)]) == "[(msg5)]"
    assert call_summary(_Opaque()) == "_Opaque"
    assert call_summary((((1,),),)) == "((tuple))"  # nested tuples: two levels deep
