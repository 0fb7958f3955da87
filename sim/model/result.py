"""The outcome of one simulation run, as pandas frames.

A :class:`Result` is what :func:`sim.run` returns. Every frame uses seconds for
times, bytes for sizes and per-second rates, and the column names say so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

#: Columns of :attr:`Result.summary`, in order. Latencies are seconds.
SUMMARY_COLUMNS: tuple[str, ...] = (
    "scenario",
    "seed",
    "users",
    "latency_p50",
    "latency_p95",
    "latency_p99",
    "latency_p999",
    "latency_mean",
    "ack_p50",
    "ack_p99",
    "sync_p50",
    "sync_p99",
    "throughput",
    "sent",
    "acked",
    "failed",
    "delivered",
    "lost",
    "duplicated",
    "reordered",
    "misdelivered",
    "redelivered",
    "availability",
    "bytes",
    "bytes_per_s",
    "requests",
    "empty_polls",
    "cost",
    "out_of_order",
    "write_errors",
    "rate_limited",
    "blocked_users",
    "attack_sent",
    "attack_delivered",
)
"""``cost`` is instance-seconds over the measurement window (every instance and
node of the architecture times ``duration_s - warmup_s``); ``bytes`` are
application-layer bytes on the client link in that window. Latencies, counts and
availability describe legitimate users: when the workload has an attack, the
attackers' messages are counted apart (``attack_sent``, ``attack_delivered``).
``lost``, ``duplicated`` and ``reordered`` are judged per (message, member of its
conversation other than the sender): a display to the sender or to a non-member
never stands in for a member's. ``misdelivered``: displays of the window's
messages to users outside their conversation (a defect: the system showed a
conversation to someone outside it; 0 in a correct run), counted apart and not
in ``delivered``. ``out_of_order``: consecutive messages of one
sender in one conversation shown in another order than they were sent;
``write_errors``: writes or publishes the store or broker refused or timed out;
``rate_limited``: sends refused by token buckets; ``blocked_users``: users the
abuse detector blocked."""


@dataclass(frozen=True)
class Result:
    """Everything one run measured.

    Attributes:
        scenario_name: name of the scenario that was run.
        seed: the root seed of the run.
        summary: one row, columns :data:`SUMMARY_COLUMNS`.
        deliveries: one row per (message, recipient) display:
            ``msg_id, conv_id, sender, recipient, seq, send_time_s, display_time_s,
            latency_s, path`` (``online`` or ``sync``), ``attempts``.
        messages: one row per message the workload sent:
            ``msg_id, conv_id, sender, seq, send_time_s, ack_time_s, acked, failed,
            attempts, recipients, payload_bytes``.
        timeseries: one row per interval of ``run.interval_s``: ``t_s`` (interval
            start), ``throughput`` (msg/s accepted), ``latency_p50``, ``latency_p99``
            (online deliveries displayed in the interval), ``online_users``,
            ``bytes_per_s`` (client link), ``requests_per_s``, and per tier
            ``{tier}_queue`` (mean queue length), ``{tier}_utilisation`` (0..1).
        faults: one row per injected fault: ``at_s, until_s, kind, target``.
        stations: one row per tier instance, over the measurement window: ``tier,
            instance, workers, jobs, p_wait, mean_wait_s, mean_service_s,
            utilisation, mean_queue_length, max_queue_length``.
        meta: run facts (wall-clock seconds, events processed, simulated seconds);
            ``meta["whole_run"]`` has the checker's totals over every message of the
            run (``sent, acked, failed, lost, duplicated, reordered``), with the
            displays it judged as defects apart: ``misdelivered`` (to users outside
            the message's conversation) and ``to_sender`` (a message delivered back to
            its own sender's screen). Neither counts as a member's display.
    """

    scenario_name: str
    seed: int
    summary: pd.DataFrame
    deliveries: pd.DataFrame
    messages: pd.DataFrame
    timeseries: pd.DataFrame
    faults: pd.DataFrame
    stations: pd.DataFrame = field(default_factory=pd.DataFrame)
    meta: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        row = self.summary.iloc[0]
        return (
            f"<Result {self.scenario_name} seed={self.seed}: sent={int(row['sent'])} "
            f"acked={int(row['acked'])} lost={int(row['lost'])} "
            f"p99={row['latency_p99']:.4f}s>"
        )
