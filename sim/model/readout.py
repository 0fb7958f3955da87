"""Turning a finished model's recorders into :class:`sim.Result` frames and the summary."""

from __future__ import annotations

import math
from operator import attrgetter
from typing import Protocol

import numpy as np
import pandas as pd

from sim._version import __version__ as msgsim_version
from sim.core.kernel import Kernel
from sim.core.metrics import PATH_NAMES, PATH_ONLINE, PATH_SYNC, Recorder
from sim.core.statistics import mser5_truncation
from sim.model import checker
from sim.model.faults.injector import FAULT_COLUMNS, FaultInjector, fault_rows
from sim.model.result import SUMMARY_COLUMNS, Result
from sim.model.server.assembly import Server
from sim.scenario.schema import Scenario
from sim.workload.attack import AttackTraffic
from sim.workload.population import Conversations


class Model(Protocol):
    """What the readout needs of a finished run (:class:`sim.model.run.Model` has it):
    the run's parts, its samples, and two questions about who is still waiting."""

    scenario: Scenario
    seed: int
    kernel: Kernel
    recorder: Recorder
    convs: Conversations
    server: Server
    faults: FaultInjector
    attack: AttackTraffic | None
    horizon_s: float
    #: whether ``run.warmup_s`` was given (else MSER-5 detects it afterwards)
    warmup_given: bool
    #: one row per sampling interval: counts at its start, rates over it
    series: list[dict[str, float]]
    #: station integrals at each interval boundary, for a warm-up detected afterwards
    integral_history: dict[int, dict[str, tuple[float, float]]]
    #: station integrals at the measurement window's ends, by ``"name:from"``/``"name:to"``
    window_integrals: dict[str, tuple[float, float]]

    def waiting_users(self) -> np.ndarray: ...

    def behind_users(self) -> np.ndarray: ...

    def release(self) -> None: ...


def _quantile(values: np.ndarray, q: float) -> float:
    return float(np.quantile(values, q)) if len(values) else float("nan")


#: the fields of a ``Message`` the messages frame takes, read in one pass
_MESSAGE_FIELDS = (
    ("msg_id", np.int64),
    ("conv", np.int64),
    ("sender", np.int64),
    ("seq", np.int64),
    ("send_s", float),
    ("ack_s", float),
    ("acked", bool),
    ("failed", bool),
    ("attempts", np.int64),
    ("payload_bytes", np.int64),
)


def messages_frame(model: Model) -> pd.DataFrame:
    msgs = model.recorder.messages
    n = len(msgs)
    sizes = model.convs.sizes()
    # one pass over the messages (attrgetter reads every field in C), then columns
    read = attrgetter(*(name for name, _ in _MESSAGE_FIELDS))
    rows = np.fromiter(map(read, msgs), dtype=list(_MESSAGE_FIELDS), count=n)
    col = {name: np.ascontiguousarray(rows[name]) for name, _ in _MESSAGE_FIELDS}
    del rows
    conv = col["conv"]
    frame = pd.DataFrame(
        {
            "msg_id": col["msg_id"],
            "conv_id": conv,
            "sender": col["sender"],
            "seq": col["seq"],
            "send_time_s": col["send_s"],
            "ack_time_s": np.where(col["acked"], col["ack_s"], np.nan),
            "acked": col["acked"],
            "failed": col["failed"],
            "attempts": col["attempts"],
            "recipients": sizes[conv] - 1 if n else np.empty(0, dtype=np.int64),
            "payload_bytes": col["payload_bytes"],
        },
        copy=False,  # each column is built here: no copy, no consolidation
    )
    attack = model.attack
    if attack is not None and n:
        flags = np.frombuffer(bytes(attack.is_attacker), dtype=np.uint8).astype(bool)
        frame["attacker"] = flags[frame["sender"].to_numpy()]
    else:
        frame["attacker"] = np.zeros(n, dtype=bool)
    return frame


def out_of_order(messages: pd.DataFrame) -> int:
    """Pairs of consecutive messages of one sender in one conversation whose seqs
    (the order everyone displays) disagree with the order they were sent in.

    The client's seq ordering hides nothing here: a broker that reorders (SQS
    standard, competing RabbitMQ consumers) makes the conversation itself show a
    sender's messages in another order than they were written.
    """
    stored = messages[messages["seq"].to_numpy() > 0]
    if len(stored) < 2:
        return 0
    order = np.lexsort(
        (stored["msg_id"].to_numpy(), stored["sender"].to_numpy(), stored["conv_id"].to_numpy())
    )
    conv = stored["conv_id"].to_numpy()[order]
    sender = stored["sender"].to_numpy()[order]
    seq = stored["seq"].to_numpy()[order]
    same = (conv[1:] == conv[:-1]) & (sender[1:] == sender[:-1])
    return int(np.count_nonzero(same & (seq[1:] < seq[:-1])))


def deliveries_frame(model: Model, messages: pd.DataFrame) -> pd.DataFrame:
    """One row per display; ids as 32-bit integers (a million-user hour has ~10^7 rows).

    The recorder's columns become the frame's, without a copy; the recorder takes
    no more displays once its run is over."""
    rec = model.recorder
    msg_id = np.frombuffer(rec.d_msg, dtype=np.int32)
    display = np.frombuffer(rec.d_time, dtype=float)
    ref = np.frombuffer(rec.d_ref, dtype=float)
    path = np.frombuffer(rec.d_path, dtype=np.int8)

    def column(name: str, dtype: type) -> np.ndarray:
        return messages[name].to_numpy().astype(dtype, copy=False)[msg_id]

    return pd.DataFrame(
        {
            "msg_id": msg_id,
            "conv_id": column("conv_id", np.int32),
            "sender": column("sender", np.int32),
            "recipient": np.frombuffer(rec.d_recipient, dtype=np.int32),
            "seq": column("seq", np.int32),
            "send_time_s": column("send_time_s", np.float64),
            "display_time_s": display,
            "latency_s": display - ref,
            "path": pd.Categorical.from_codes(path, categories=list(PATH_NAMES)),
            "attempts": column("attempts", np.int16),
        },
        # no copy and no consolidation: the recorder's columns are the frame's columns
        copy=False,
    )


def stations_frame(model: Model, warmup_s: float) -> pd.DataFrame:
    """Per instance: utilisation and queue length over ``[warmup_s, duration_s)``; job
    counts and waits from the warm-up given (from 0 when the warm-up was detected)."""
    window = model.scenario.run.duration_s - warmup_s
    interval = model.scenario.run.interval_s
    history = model.integral_history.get(round(warmup_s / interval))
    rows = []
    for s in model.server.stations:
        if history is not None:
            b0, q0 = history[s.name]
        else:
            b0, q0 = model.window_integrals.get(f"{s.name}:from", (0.0, 0.0))
        b1, q1 = model.window_integrals.get(f"{s.name}:to", s.integrals(model.kernel.now))
        rows.append(
            {
                "tier": s.tier,
                "instance": s.index,
                "workers": s.workers,
                "jobs": s.measured,
                "p_wait": s.waited / s.measured if s.measured else np.nan,
                "mean_wait_s": s.wait_sum_s / s.measured if s.measured else np.nan,
                "mean_service_s": s.service_sum_s / s.measured if s.measured else np.nan,
                "utilisation": (b1 - b0) / (s.workers * window),
                "mean_queue_length": (q1 - q0) / window,
                "max_queue_length": s.max_queue,
            }
        )
    return pd.DataFrame(rows)


def timeseries_frame(model: Model, deliveries: pd.DataFrame) -> pd.DataFrame:
    rec = model.recorder
    frame = pd.DataFrame(model.series)
    if frame.empty:
        return frame
    interval = model.scenario.run.interval_s
    n = len(frame)
    frame["throughput"] = np.asarray(rec.accepted_bins[:n], dtype=float) / interval
    frame["bytes_per_s"] = np.asarray(rec.bytes_bins[:n]) / interval
    frame["requests_per_s"] = np.asarray(rec.request_bins[:n], dtype=float) / interval
    frame["errors_per_s"] = np.asarray(rec.error_bins[:n], dtype=float) / interval
    frame["retries_per_s"] = np.asarray(rec.retry_bins[:n], dtype=float) / interval
    frame["connects_per_s"] = np.asarray(rec.connect_bins[:n], dtype=float) / interval
    is_online = deliveries["path"].cat.codes.to_numpy() == PATH_ONLINE
    bins = (deliveries["display_time_s"].to_numpy()[is_online] // interval).astype(np.int64)
    lat = deliveries["latency_s"].to_numpy()[is_online]
    p50 = np.full(n, np.nan)
    p99 = np.full(n, np.nan)
    if len(lat):
        order = np.argsort(bins, kind="stable")
        bins, lat = bins[order], lat[order]
        edges = np.searchsorted(bins, np.arange(n + 1))
        for i in range(n):
            chunk = lat[edges[i] : edges[i + 1]]
            if len(chunk):
                p50[i], p99[i] = np.quantile(chunk, [0.5, 0.99])
    frame["latency_p50"] = p50
    frame["latency_p99"] = p99
    first = ["t_s", "throughput", "latency_p50", "latency_p99", "online_users", "bytes_per_s"]
    return frame[first + [c for c in frame.columns if c not in first]]


def _counters(model: Model) -> dict[str, float]:
    """Run-wide counts of the recorder and of every part of the server (whole run)."""
    return {**model.recorder.counters(), **model.server.counters()}


def _settled(model: Model) -> bool:
    """Did the drain let the system settle? Nobody is still waiting offline for a
    message, no write is in progress, and no message was accepted or displayed in
    the last quarter of the drain (polls and token refreshes may go on: they carry
    nothing), and no connected user is still behind in a conversation. Otherwise
    "lost" includes a backlog that more time would clear."""
    run = model.scenario.run
    rec = model.recorder
    quiet_from = run.duration_s + run.drain_s * 0.75
    if len(model.waiting_users()) or len(model.behind_users()):
        return False
    if any(m.writing for m in rec.messages):
        return False
    if len(rec.d_time) and rec.d_time[-1] >= quiet_from:  # displays come in time order
        return False
    first = int(quiet_from / run.interval_s)
    return not any(rec.accepted_bins[first:])


def build_result(model: Model, wall_s: float, release: bool = False) -> Result:
    """The run's frames, summary and meta; with ``release``, the model lets go of its
    messages and components as soon as they are read (see :meth:`Model.release`)."""
    scenario = model.scenario
    run = scenario.run
    messages = messages_frame(model)
    # MSER-5 on the sender's ack latency, message by message in send order: the
    # warm-up the data itself suggests; applied when run.warmup_s is not given
    # (columns and masks throughout, not filtered frames: a million-user hour has 1.5
    # million messages and ~10^7 displays, and every filtered frame is a copy)
    send_s = messages["send_time_s"].to_numpy()
    ack_s = messages["ack_time_s"].to_numpy()
    acked_all = messages["acked"].to_numpy()
    before_end = np.flatnonzero((send_s < run.duration_s) & acked_all)
    ack_series = ack_s[before_end] - send_s[before_end]
    cut = mser5_truncation(ack_series) if len(ack_series) >= 10 else 0
    mser5_warmup_s = float(send_s[before_end[cut]]) if cut else 0.0
    del before_end, ack_series
    if run.warmup_s is not None:
        warmup_s = run.warmup_s
    else:
        # cut at the next interval boundary, so interval counters split exactly
        bins = math.ceil(mser5_warmup_s / run.interval_s - 1e-9)
        warmup_s = min(bins * run.interval_s, run.duration_s / 2)
    window_s = run.duration_s - warmup_s
    rec = model.recorder
    # what needs the run's components and messages, read before they are let go
    instances = len(model.server.stations)  # every instance and node, for the whole window
    blocked_users = model.server.detector.blocked_users if model.server.detector else 0
    faults = pd.DataFrame(
        fault_rows(scenario.faults, model.faults, model.server), columns=list(FAULT_COLUMNS)
    )
    stations = stations_frame(model, warmup_s)
    counters = _counters(model)
    settled = _settled(model)
    events = model.kernel.events_scheduled
    trace = model.kernel.trace
    trace_meta = {"events": trace.events, "digest": trace.digest} if trace is not None else None
    if release:
        model.release()
    deliveries = deliveries_frame(model, messages)
    convs = model.convs
    if model.attack is not None:
        # legitimate users' accounting: attackers are not members anyone waits for
        # (a blocked attacker never displays anything again), nor recipients
        flags = np.frombuffer(bytes(model.attack.is_attacker), dtype=np.uint8).astype(bool)
        legit = ~flags[convs.conv_members]
        conv_of_member = np.repeat(np.arange(convs.count), np.diff(convs.conv_ptr))
        conv_ptr = np.zeros(convs.count + 1, dtype=np.int64)
        np.cumsum(np.bincount(conv_of_member[legit], minlength=convs.count), out=conv_ptr[1:])
        del conv_of_member
        shown = deliveries[~flags[deliveries["recipient"].to_numpy()]]
        outcome = checker.check(messages, shown, conv_ptr, convs.conv_members[legit])
        del shown, legit
    else:
        outcome = checker.check(messages, deliveries, convs.conv_ptr, convs.conv_members)
    if model.warmup_given:
        link_bytes, link_requests = rec.bytes_measured, rec.requests_measured
    else:  # interval counters from the detected warm-up (a bin boundary) to the end
        first = round(warmup_s / run.interval_s)
        last = math.ceil(run.duration_s / run.interval_s - 1e-9)
        link_bytes = float(sum(rec.bytes_bins[first:last]))
        link_requests = int(sum(rec.request_bins[first:last]))
    in_window_all = (send_s >= warmup_s) & (send_s < run.duration_s)
    attacker = messages["attacker"].to_numpy()
    # the summary describes legitimate users; the attackers' traffic is counted apart
    in_window = in_window_all & ~attacker
    per = outcome.per_message

    def total(column: str, mask: np.ndarray = in_window) -> int:
        return int(per[column].to_numpy()[mask].sum())

    attack_window = in_window_all & attacker
    path = deliveries["path"].cat.codes.to_numpy()
    sent_s = deliveries["send_time_s"].to_numpy()
    latency = deliveries["latency_s"].to_numpy()
    legit = ~attacker[deliveries["msg_id"].to_numpy()] if attacker.any() else True
    online = latency[
        (path == PATH_ONLINE) & (sent_s >= warmup_s) & (sent_s < run.duration_s) & legit
    ]
    reconnect_s = deliveries["display_time_s"].to_numpy() - latency
    sync = latency[
        (path == PATH_SYNC) & (reconnect_s >= warmup_s) & (reconnect_s < run.duration_s) & legit
    ]
    del reconnect_s
    acked_in_window = in_window & acked_all
    ack_lat = ack_s[acked_in_window] - send_s[acked_in_window]
    sent = int(np.count_nonzero(in_window))
    acked_count = total("acked")
    summary = {
        "scenario": scenario.name,
        "seed": model.seed,
        "users": scenario.workload.users,
        "latency_p50": _quantile(online, 0.5),
        "latency_p95": _quantile(online, 0.95),
        "latency_p99": _quantile(online, 0.99),
        "latency_p999": _quantile(online, 0.999),
        "latency_mean": float(online.mean()) if len(online) else float("nan"),
        "ack_p50": _quantile(ack_lat, 0.5),
        "ack_p99": _quantile(ack_lat, 0.99),
        "sync_p50": _quantile(sync, 0.5),
        "sync_p99": _quantile(sync, 0.99),
        "throughput": acked_count / window_s,
        "sent": sent,
        "acked": acked_count,
        "failed": total("failed"),
        "delivered": total("displayed"),
        "lost": total("lost"),
        "duplicated": total("duplicated"),
        "reordered": total("reordered"),
        "misdelivered": total("misdelivered"),
        "redelivered": model.recorder.redelivered,
        "availability": acked_count / sent if sent else float("nan"),
        "bytes": link_bytes,
        "bytes_per_s": link_bytes / window_s,
        "requests": link_requests,
        "empty_polls": model.recorder.empty_polls,
        "cost": instances * window_s,
        "out_of_order": out_of_order(messages[["msg_id", "conv_id", "sender", "seq"]][in_window]),
        "write_errors": model.recorder.write_errors,
        "rate_limited": model.recorder.rate_limited,
        "blocked_users": blocked_users,
        "attack_sent": int(np.count_nonzero(attack_window)),
        "attack_delivered": total("displayed", attack_window),
    }
    summary_frame = pd.DataFrame([summary], columns=list(SUMMARY_COLUMNS))
    meta = {
        "msgsim_version": msgsim_version,
        "wall_s": wall_s,
        "simulated_s": model.horizon_s,
        "warmup_s": warmup_s,
        "warmup_detected": run.warmup_s is None,
        "mser5_warmup_s": mser5_warmup_s,
        "duration_s": run.duration_s,
        "events": events,
        "messages": len(messages),
        "deliveries": len(deliveries),
        "whole_run": {
            "sent": outcome.sent,
            "acked": outcome.acked,
            "failed": outcome.failed,
            "lost": outcome.lost,
            "duplicated": outcome.duplicated,
            "reordered": outcome.reordered,
            "misdelivered": outcome.misdelivered,
            "to_sender": outcome.to_sender,
        },
        "counters": counters,
        "push_notifications": model.recorder.push_notifications,
        "rate_limited": model.recorder.rate_limited,
        "retries": model.recorder.retries,
        "lost_in_flight": model.recorder.lost_in_flight,
        "conversations": model.convs.count,
        "settled": settled,
        "trace": trace_meta,
    }
    return Result(
        scenario_name=scenario.name,
        seed=model.seed,
        summary=summary_frame,
        deliveries=deliveries,
        messages=messages,
        timeseries=timeseries_frame(model, deliveries),
        faults=faults,
        stations=stations,
        meta=meta,
    )
