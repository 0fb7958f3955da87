"""Tests of sim.output.plots, sim.output.timeline_plot and sim.output.report on small synthetic
results."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from sim.core.statistics import summarize
from sim.model.result import SUMMARY_COLUMNS, Result
from sim.output.plots import compare_bars, latency_cdf, latency_values, metric_label
from sim.output.report import write_report
from sim.output.timeline_plot import timeline

MakeResult = Callable[..., Result]


def _synthetic_result(
    name: str,
    seed: int,
    *,
    latency_scale_s: float = 0.05,
    faults: list[tuple[float, float, str, str]] | None = None,
    messages: int = 200,
) -> Result:
    """A Result with the columns of sim/model/result.py filled from a seeded generator."""
    rng = np.random.default_rng(seed)
    send = np.sort(rng.uniform(0.0, 100.0, messages))
    ack_delay = rng.lognormal(np.log(latency_scale_s), 0.4, messages)
    acked = rng.random(messages) > 0.02
    messages_frame = pd.DataFrame(
        {
            "msg_id": np.arange(messages),
            "conv_id": rng.integers(0, 20, messages),
            "sender": rng.integers(0, 50, messages),
            "seq": np.arange(messages),
            "send_time_s": send,
            "ack_time_s": np.where(acked, send + ack_delay, np.nan),
            "acked": acked,
            "failed": ~acked,
            "attempts": rng.integers(1, 3, messages),
            "recipients": np.ones(messages, dtype=int),
            "payload_bytes": rng.integers(50, 500, messages),
        }
    )
    latency = rng.lognormal(np.log(latency_scale_s), 0.5, messages)
    path = np.where(rng.random(messages) < 0.8, "online", "sync")
    deliveries = pd.DataFrame(
        {
            "msg_id": np.arange(messages),
            "conv_id": messages_frame["conv_id"],
            "sender": messages_frame["sender"],
            "recipient": rng.integers(0, 50, messages),
            "seq": np.arange(messages),
            "send_time_s": send,
            "display_time_s": send + latency,
            "latency_s": latency,
            "path": path,
            "attempts": np.ones(messages, dtype=int),
        }
    )
    t_s = np.arange(0.0, 100.0, 5.0)
    timeseries = pd.DataFrame(
        {
            "t_s": t_s,
            "throughput": rng.poisson(20, t_s.size) / 5.0,
            "latency_p50": rng.lognormal(np.log(latency_scale_s), 0.1, t_s.size),
            "latency_p99": rng.lognormal(np.log(3 * latency_scale_s), 0.1, t_s.size),
            "online_users": rng.integers(30, 50, t_s.size),
            "bytes_per_s": rng.uniform(1e3, 2e3, t_s.size),
            "requests_per_s": rng.uniform(5, 10, t_s.size),
            "gateway_queue": rng.uniform(0, 3, t_s.size),
            "gateway_utilisation": rng.uniform(0.2, 0.6, t_s.size),
        }
    )
    fault_rows = faults or []
    faults_frame = pd.DataFrame(fault_rows, columns=["at_s", "until_s", "kind", "target"])
    online = latency[path == "online"]
    summary_values: dict[str, object] = {
        "scenario": name,
        "seed": seed,
        "users": 50,
        "latency_p50": float(np.quantile(online, 0.5)),
        "latency_p95": float(np.quantile(online, 0.95)),
        "latency_p99": float(np.quantile(online, 0.99)),
        "latency_p999": float(np.quantile(online, 0.999)),
        "latency_mean": float(online.mean()),
        "ack_p50": float(np.quantile(ack_delay, 0.5)),
        "ack_p99": float(np.quantile(ack_delay, 0.99)),
        "sync_p50": float(np.quantile(latency[path == "sync"], 0.5)),
        "sync_p99": float(np.quantile(latency[path == "sync"], 0.99)),
        "throughput": messages / 100.0,
        "sent": messages,
        "acked": int(acked.sum()),
        "failed": int((~acked).sum()),
        "delivered": messages,
        "lost": 0,
        "duplicated": 0,
        "reordered": int(rng.integers(0, 3)),
        "redelivered": 1,
        "availability": float(acked.mean()),
        "bytes": 1.5e5,
        "bytes_per_s": 1.5e3 * (1 + rng.random()),
        "requests": 900,
        "empty_polls": 0,
        "cost": 0.02 + 0.001 * rng.random(),
    }
    summary = pd.DataFrame([summary_values], columns=list(SUMMARY_COLUMNS))
    return Result(name, seed, summary, deliveries, messages_frame, timeseries, faults_frame)


@pytest.fixture
def make_result() -> MakeResult:
    return _synthetic_result


@pytest.fixture(scope="module")
def results() -> dict[str, list[Result]]:
    crash = [(30.0, 45.0, "crash", "broker.0"), (60.0, float("nan"), "partition", "store.1")]
    return {
        "websocket_kafka": [
            _synthetic_result("websocket_kafka", s, faults=crash) for s in (1, 2, 3)
        ],
        "http_polling": [
            _synthetic_result("http_polling", s, latency_scale_s=0.4) for s in (1, 2, 3)
        ],
    }


DESCRIPTIONS = {
    "websocket_kafka": "WebSockets <script>alert(1)</script> & Kafka",
    "http_polling": "Polling every 2 s",
}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory, results: dict[str, list[Result]]) -> Path:
    """One report shared by the tests that inspect it: rendering figures is the slow part."""
    out_dir = tmp_path_factory.mktemp("report") / "out"
    path = write_report(out_dir, results, title="Transport <b>study</b>", descriptions=DESCRIPTIONS)
    assert path == out_dir / "report.html"
    return path


def test_latency_cdf_draws_one_line_per_scenario(results: dict[str, list[Result]]) -> None:
    figure = latency_cdf(results)
    assert isinstance(figure, Figure)
    (ax,) = figure.axes
    assert len(ax.lines) == 2
    assert ax.get_xscale() == "log"
    assert "(s)" in ax.get_xlabel()
    legend = ax.get_legend()
    assert legend is not None
    labels = [text.get_text() for text in legend.get_texts()]
    assert any(label.startswith("websocket_kafka") for label in labels)
    assert len(ax.collections) == 4  # a p50 and a p99 marker per scenario


def test_latency_cdf_ends_at_one_and_pools_replications(results: dict[str, list[Result]]) -> None:
    figure = latency_cdf({"ws": results["websocket_kafka"]}, kind="ack", log_x=False)
    line = figure.axes[0].lines[0]
    heights = np.asarray(line.get_ydata())
    assert heights[-1] == pytest.approx(1.0)
    assert np.all(np.diff(heights) >= 0)
    pooled = latency_values(results["websocket_kafka"], "ack")
    single = latency_values(results["websocket_kafka"][0], "ack")
    assert pooled.size > 2 * single.size
    assert not np.isnan(pooled).any()


def test_latency_cdf_of_sync_uses_only_sync_deliveries(results: dict[str, list[Result]]) -> None:
    run = results["http_polling"][0]
    expected = (run.deliveries["path"] == "sync").sum()
    assert latency_values(run, "sync").size == expected


def test_latency_cdf_thins_large_samples_but_keeps_the_extremes(make_result: MakeResult) -> None:
    big = make_result("big", 4, messages=20_000)
    line = latency_cdf({"big": big}, log_x=False).axes[0].lines[0]
    xs = np.asarray(line.get_xdata())
    online = latency_values(big, "online")
    assert xs.size < 2_500
    assert xs[-1] == online.max()


def test_latency_cdf_without_data_is_a_labelled_empty_plot(make_result: MakeResult) -> None:
    run = make_result("empty", 1)
    empty = Result(
        run.scenario_name,
        run.seed,
        run.summary,
        run.deliveries.iloc[0:0],
        run.messages.iloc[0:0],
        run.timeseries,
        run.faults,
    )
    figure = latency_cdf({"empty": [empty], "none": []}, kind="sync")
    ax = figure.axes[0]
    assert len(ax.lines) == 0
    assert any("no sync latencies" in text.get_text() for text in ax.texts)


def test_compare_bars_one_panel_per_metric_with_error_bars(
    results: dict[str, list[Result]],
) -> None:
    stacked = pd.concat([r.summary for runs in results.values() for r in runs])
    table = summarize(stacked)
    figure = compare_bars(table, ["latency_p99", "bytes_per_s", "cost"])
    assert len(figure.axes) == 3
    for ax in figure.axes:
        assert len(ax.patches) == 2  # one bar per scenario
        assert len(ax.containers) == 2  # the bars and the error bars
    assert [ax.get_yscale() for ax in figure.axes] == ["linear"] * 3  # bytes within 10x
    assert figure.axes[0].get_ylabel() == metric_label("latency_p99") == "latency p99 (s)"
    assert figure.axes[1].get_ylabel() == "bytes per second (B/s)"


def test_compare_bars_puts_bytes_spanning_decades_on_a_log_axis() -> None:
    """Polling moves orders of magnitude more bytes than push; a linear axis would hide push."""
    table = pd.DataFrame(
        {
            "scenario": ["push", "polling"],
            "bytes_per_s": [2e3, 9e5],
            "bytes_per_s_ci_low": [-1e3, 8e5],
            "bytes_per_s_ci_high": [5e3, 1e6],
            "throughput": [5.0, 500.0],
        }
    )
    figure = compare_bars(table, ["bytes_per_s", "throughput"])
    assert [ax.get_yscale() for ax in figure.axes] == ["log", "linear"]
    figure.savefig(io.BytesIO(), format="png")  # a lower limit below 0 must not break the axis
    forced = compare_bars(table, ["throughput"], log_scale={"throughput"})
    assert forced.axes[0].get_yscale() == "log"


def test_compare_bars_without_ci_columns_draws_plain_bars() -> None:
    table = pd.DataFrame({"scenario": ["a", "b", "c"], "throughput": [1.0, 2.0, 3.0]})
    figure = compare_bars(table, ["throughput"], log_scale=False)
    (ax,) = figure.axes
    assert len(ax.patches) == 3
    assert len(ax.containers) == 1
    with pytest.raises(ValueError, match="latency_p99"):
        compare_bars(table, ["latency_p99"])


def test_timeline_shades_every_fault_on_every_panel(results: dict[str, list[Result]]) -> None:
    run = results["websocket_kafka"][0]
    figure = timeline(run)
    assert len(figure.axes) == 3
    for ax in figure.axes:
        assert len(ax.lines) == 1
        assert len(ax.patches) == len(run.faults) == 2
    legend = figure.axes[0].get_legend()
    assert legend is not None
    assert [t.get_text() for t in legend.get_texts()] == ["crash broker.0", "partition store.1"]
    spans = []
    for patch in figure.axes[1].patches:
        vertices = np.asarray(patch.get_path().transformed(patch.get_patch_transform()).vertices)
        xs = vertices[:, 0]
        spans.append((float(xs.min()), float(xs.max())))
    # The unrecovered partition is shaded to the end of the last 5 s interval.
    assert spans == [(30.0, 45.0), (60.0, 100.0)]
    assert figure.axes[-1].get_xlabel() == "simulated time (s)"


def test_timeline_without_faults_has_no_patches(results: dict[str, list[Result]]) -> None:
    figure = timeline(results["http_polling"][0], metrics=("throughput", "gateway_utilisation"))
    assert len(figure.axes) == 2
    assert all(len(ax.patches) == 0 for ax in figure.axes)
    assert figure.axes[1].get_ylabel() == "gateway utilisation (0–1)"


def test_timeline_names_an_unknown_metric(results: dict[str, list[Result]]) -> None:
    with pytest.raises(ValueError, match="no_such_column"):
        timeline(results["http_polling"][0], metrics=("no_such_column",))


def test_plots_draw_into_given_axes(results: dict[str, list[Result]]) -> None:
    figure = Figure()
    axes = figure.subplots(1, 2)
    assert latency_cdf(results, ax=axes[0]) is figure
    assert timeline(results["http_polling"][0], metrics=("throughput",), ax=[axes[1]]) is figure


def test_report_is_self_contained_and_complete(
    report: Path, results: dict[str, list[Result]]
) -> None:
    page = report.read_text(encoding="utf-8")
    for name in results:
        assert name in page
        assert (report.parent / f"timeline_{name}.png").stat().st_size > 0
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Kafka" in page
    assert "Transport &lt;b&gt;study&lt;/b&gt;" in page
    sources = re.findall(r'src="([^"]*)"', page)
    assert len(sources) == len(list(report.parent.glob("*.png"))) >= 5
    assert all(src.startswith("data:image/png;base64,") for src in sources)
    assert not any("http" in src for src in sources)
    assert "<link" not in page
    assert " ± " in page
    assert "seeds 1, 2, 3" in page


def test_report_writes_the_summary_table(report: Path, results: dict[str, list[Result]]) -> None:
    table = pd.read_csv(report.parent / "summary.csv")
    assert list(table["scenario"]) == list(results)
    assert list(table["replications"]) == [3, 3]
    assert {"latency_p99", "latency_p99_ci_low", "cost_ci_high"} <= set(table.columns)


def test_report_accepts_a_single_replication(tmp_path: Path, make_result: MakeResult) -> None:
    """One run per scenario has no CI: the table shows the mean alone and nothing breaks."""
    report = write_report(tmp_path, {"solo": [make_result("solo", 9)]}, title="solo")
    page = report.read_text(encoding="utf-8")
    assert "solo" in page
    assert "inf" not in page.split("<h2>Figures</h2>")[0]
