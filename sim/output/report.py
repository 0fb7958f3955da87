"""A self-contained HTML report of compared scenarios.

The page is meant to be mailed, attached to a design review or archived as a CI
artefact and still open years later: figures are embedded as base64 PNG, styles
are inline, and there is no script and no network reference. The same figures
are also written as PNG files beside it, with the summary table as CSV, for
slides and spreadsheets.
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from sim._version import __version__
from sim.core.statistics import summarize
from sim.model.result import Result
from sim.output.plots import LatencyKind, compare_bars, latency_cdf, latency_values
from sim.output.timeline_plot import timeline

#: Metrics compared side by side in bar charts.
COMPARED_METRICS: tuple[str, ...] = ("latency_p99", "bytes_per_s", "cost")

_PNG_DPI = 110

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 72rem; padding: 0 1rem; color: #1a1a1a; line-height: 1.45; }
h1 { margin-bottom: 0.2rem; }
.generated { color: #555; font-size: 0.9rem; margin-top: 0; }
table { border-collapse: collapse; margin: 0.8rem 0 1.6rem; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.3rem 0.6rem; vertical-align: top; }
th { background: #f0f3f7; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.scroll { overflow-x: auto; }
figure { margin: 1rem 0 2rem; }
figure img { max-width: 100%; height: auto; border: 1px solid #e2e2e2; }
figcaption { color: #444; font-size: 0.9rem; }
.note { color: #555; font-size: 0.85rem; }
"""


@dataclass(frozen=True)
class _Column:
    """One column of the human-readable summary table."""

    metric: str
    heading: str
    render: Callable[[float, float], str]


def _decimals(value: float, significant: int) -> int:
    if value == 0 or not math.isfinite(value):
        return 0
    return max(0, significant - 1 - math.floor(math.log10(abs(value))))


def _places(mean: float, half: float) -> int:
    """Decimals that show two significant digits of the CI, else three of the mean."""
    if math.isfinite(half) and half > 0:
        return _decimals(half, 2)
    return _decimals(mean, 3)


def _plain(mean: float, half: float, scale: float = 1.0, suffix: str = "") -> str:
    """``mean ± half`` rounded to the precision the interval supports."""
    if not math.isfinite(mean):
        return "—"
    mean, half = mean * scale, half * scale
    places = _places(mean, half)
    text = f"{mean:,.{places}f}"
    if math.isfinite(half):
        text += f" ± {half:,.{places}f}"
    return text + suffix


def _milliseconds(mean_s: float, half_s: float) -> str:
    return _plain(mean_s, half_s, scale=1e3)


def _percent(mean: float, half: float) -> str:
    """Availability as a percentage; without a CI three decimals keep 99.995 % visible."""
    if not math.isfinite(mean):
        return "—"
    places = _decimals(half * 100, 2) if math.isfinite(half) and half > 0 else 3
    text = f"{mean * 100:.{places}f}"
    if math.isfinite(half):
        text += f" ± {half * 100:.{places}f}"
    return text + " %"


def _bytes_rate(mean: float, half: float) -> str:
    if not math.isfinite(mean):
        return "—"
    scale, unit = 1.0, "B/s"
    for step, name in ((1e3, "kB/s"), (1e6, "MB/s"), (1e9, "GB/s")):
        if abs(mean) >= step:
            scale, unit = 1.0 / step, name
    return _plain(mean, half, scale=scale, suffix=f" {unit}")


def _number(mean: float, half: float) -> str:
    return _plain(mean, half)


#: Key metrics of the summary table, in display order.
_COLUMNS: tuple[_Column, ...] = (
    _Column("latency_p50", "latency p50 (ms)", _milliseconds),
    _Column("latency_p99", "latency p99 (ms)", _milliseconds),
    _Column("ack_p99", "ack p99 (ms)", _milliseconds),
    _Column("sync_p99", "sync p99 (ms)", _milliseconds),
    _Column("throughput", "throughput (msg/s)", _number),
    _Column("sent", "sent", _number),
    _Column("acked", "acked", _number),
    _Column("failed", "failed", _number),
    _Column("lost", "lost", _number),
    _Column("duplicated", "duplicated", _number),
    _Column("reordered", "reordered", _number),
    _Column("availability", "availability", _percent),
    _Column("bytes_per_s", "client link", _bytes_rate),
    _Column("cost", "cost (instance-s)", _number),
)


def _cell(row: pd.Series, column: _Column) -> str:
    if column.metric not in row.index:
        return "—"
    mean = float(row[column.metric])
    low_key, high_key = f"{column.metric}_ci_low", f"{column.metric}_ci_high"
    half = math.inf
    if low_key in row.index and high_key in row.index:
        half = (float(row[high_key]) - float(row[low_key])) / 2.0
    return column.render(mean, half)


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_PNG_DPI)
    return buffer.getvalue()


def _slug(name: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "scenario"
    slug, counter = base, 2
    while slug in taken:
        slug, counter = f"{base}_{counter}", counter + 1
    taken.add(slug)
    return slug


def _stacked_summaries(results: Mapping[str, Sequence[Result]]) -> pd.DataFrame:
    """Summary rows of every replication, labelled by the mapping's scenario names."""
    frames = [
        result.summary.assign(scenario=name) for name, runs in results.items() for result in runs
    ]
    return pd.concat(frames, ignore_index=True)


def _seeds_text(seeds: Sequence[int]) -> str:
    return ", ".join(str(seed) for seed in sorted(set(seeds)))


def _scenario_table(
    results: Mapping[str, Sequence[Result]], descriptions: Mapping[str, str]
) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{html.escape(descriptions.get(name, ''))}</td>"
        f'<td class="num">{len(runs)}</td>'
        f"<td>{html.escape(_seeds_text([result.seed for result in runs]))}</td></tr>"
        for name, runs in results.items()
    )
    return (
        "<table><thead><tr><th>scenario</th><th>description</th><th>replications</th>"
        f"<th>seeds</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _summary_table(table: pd.DataFrame, by: str) -> str:
    head = "".join(f"<th>{html.escape(column.heading)}</th>" for column in _COLUMNS)
    body = []
    for _, row in table.iterrows():
        replications = row["replications"] if "replications" in row.index else ""
        cells = "".join(
            f'<td class="num">{html.escape(_cell(row, column))}</td>' for column in _COLUMNS
        )
        body.append(
            f"<tr><td>{html.escape(str(row[by]))}</td>"
            f'<td class="num">{html.escape(str(replications))}</td>{cells}</tr>'
        )
    return (
        '<div class="scroll"><table><thead><tr><th>scenario</th><th>replications</th>'
        f"{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
    )


def _figure_html(png: bytes, caption: str) -> str:
    encoded = base64.b64encode(png).decode("ascii")
    alt = html.escape(caption, quote=True)
    return (
        f'<figure><img alt="{alt}" src="data:image/png;base64,{encoded}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def write_report(
    out_dir: str | Path,
    results: Mapping[str, Sequence[Result]],
    *,
    title: str,
    descriptions: Mapping[str, str] | None = None,
    table: pd.DataFrame | None = None,
) -> Path:
    """Write ``report.html``, ``summary.csv`` and the figures as PNG into ``out_dir``.

    Args:
        out_dir: directory to write into; created if missing, files overwritten.
        results: scenario name -> its replications (seed order, as
            :func:`sim.compare` returns them). The names label every table and
            figure, whatever the ``scenario`` column of the summaries says.
        title: heading of the page.
        descriptions: scenario name -> one-line description shown beside it.
        table: a precomputed summary (one row per scenario, ``scenario`` column,
            as :func:`sim.core.statistics.summarize` makes it); computed from
            ``results`` when omitted.

    Returns:
        Path of ``report.html``.
    """
    empty = [name for name, runs in results.items() if len(runs) == 0]
    if not results or empty:
        raise ValueError(f"every scenario needs at least one result; none for {empty or 'all'}")
    out_path = Path(out_dir)
    out_path.mkdir(parents=True, exist_ok=True)
    if table is None:
        table = summarize(_stacked_summaries(results))
    elif "scenario" not in table.columns:
        raise ValueError(f"table needs a 'scenario' column; columns: {list(table.columns)}")
    table.to_csv(out_path / "summary.csv", index=False)

    figures: list[tuple[str, str, Figure]] = [
        ("latency_cdf_online", "Online delivery latency, replications pooled", latency_cdf(results))
    ]
    for kind, caption in (
        (LatencyKind.SYNC, "Sync latency after reconnect, replications pooled"),
        (LatencyKind.ACK, "Ack latency at the sender, replications pooled"),
    ):
        if any(latency_values(runs, kind).size for runs in results.values()):
            figures.append((f"latency_cdf_{kind.value}", caption, latency_cdf(results, kind)))
    compared = [metric for metric in COMPARED_METRICS if metric in table.columns]
    if compared:
        caption = "Comparison: " + ", ".join(metric.replace("_", " ") for metric in compared)
        figures.append(("compare", caption, compare_bars(table, compared)))
    taken = {name for name, _, _ in figures}
    for name, runs in results.items():
        first = runs[0]
        slug = _slug(f"timeline_{name}", taken)
        caption = f"Timeline of {name}, seed {first.seed}, faults shaded"
        figures.append((slug, caption, timeline(first)))

    sections = []
    for stem, caption, figure in figures:
        png = _png(figure)
        (out_path / f"{stem}.png").write_bytes(png)
        sections.append(_figure_html(png, caption))

    all_seeds = [result.seed for runs in results.values() for result in runs]
    body = (
        "<h2>Scenarios</h2>"
        f"{_scenario_table(results, descriptions or {})}"
        "<h2>Summary</h2>"
        '<p class="note">Mean ± half-width of the confidence interval over replications '
        "(a lone replication shows the mean only). Latencies in milliseconds; counts per run; "
        "client link in bytes per second.</p>"
        f"{_summary_table(table, 'scenario')}"
        "<h2>Figures</h2>"
        f"{''.join(sections)}"
    )
    return _write_page(out_path, title, f"seeds {_seeds_text(all_seeds)}", body)


def write_sweep_report(
    out_dir: str | Path,
    frame: pd.DataFrame,
    params: Sequence[str],
    *,
    title: str,
    points: pd.DataFrame,
) -> Path:
    """Write a sweep's ``report.html`` and its figures as PNG into ``out_dir``.

    Figures: latency against throughput with the knee for every numeric swept
    parameter; with two or more numeric parameters, heatmaps of p99 latency and
    cost over the first two (means over replications and over any other
    parameter). ``points`` is the per-point table (mean ± CI) shown above them.

    Returns:
        Path of ``report.html``.
    """
    from sim.output.study_plots import latency_vs_throughput, sweep_heatmap

    out_path = Path(out_dir)
    out_path.mkdir(parents=True, exist_ok=True)
    numeric = [p for p in params if pd.api.types.is_numeric_dtype(frame[p])]
    figures: list[tuple[str, str, Figure]] = []
    for param in numeric:
        if frame[param].nunique() < 2:
            continue
        others = [p for p in params if p != param]
        pooled = f", pooled over {', '.join(others)}" if others else ""
        figures.append(
            (
                f"latency_vs_throughput_{param.replace('.', '_')}",
                f"p99 latency against throughput as {param} varies (95% CI){pooled}",
                latency_vs_throughput(frame, param),
            )
        )
    if len(numeric) >= 2:
        x, y = numeric[0], numeric[1]
        rest = [p for p in params if p not in (x, y)]
        pooled = f", averaged over {', '.join(rest)}" if rest else ""
        for metric in ("latency_p99", "cost"):
            if metric in frame.columns:
                figures.append(
                    (
                        f"heatmap_{metric}",
                        f"{metric.replace('_', ' ')} by {x} and {y}{pooled}",
                        sweep_heatmap(frame, x, y, metric),
                    )
                )
    sections = []
    for stem, caption, figure in figures:
        png = _png(figure)
        (out_path / f"{stem}.png").write_bytes(png)
        sections.append(_figure_html(png, caption))
    points.to_csv(out_path / "points.csv", index=False)
    seeds = sorted({int(s) for s in frame["seed"]}) if "seed" in frame.columns else []
    table = points.to_html(index=False, border=0, escape=True)
    facts = f"{len(frame)} runs, {frame['point'].nunique()} points; seeds {_seeds_text(seeds)}"
    body = (
        "<h2>Points</h2>"
        '<p class="note">Mean ± half-width of the 95% confidence interval over '
        "replications.</p>"
        f"{table}"
        "<h2>Figures</h2>"
        f"{''.join(sections) or '<p>No numeric parameter to plot.</p>'}"
    )
    return _write_page(out_path, title, facts, body)


def _write_page(out_path: Path, title: str, facts: str, body: str) -> Path:
    """``out_path/report.html``: a self-contained page with the title, a line saying when
    and by which version it was generated (and ``facts``), then ``body``."""
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    page = (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        f'<p class="generated">Generated {generated} by msgsim {html.escape(__version__)}; '
        f"{html.escape(facts)}.</p>"
        f"{body}"
        "</body></html>\n"
    )
    report = out_path / "report.html"
    report.write_text(page, encoding="utf-8")
    return report
