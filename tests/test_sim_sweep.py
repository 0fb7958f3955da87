"""Sweeps: designs expand as documented, bad specs fail before any run, every backend gives
the same table, and an interrupted sweep resumes without re-running finished runs."""

from __future__ import annotations

import importlib
import math
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from sim.cli.sweep import main as sweep_main
from sim.cli.sweep import with_command_line
from sim.model.result import Result
from sim.scenario.loader import ScenarioError, load_scenario
from sim.scenario.schema import Scenario
from sim.studies.sweep import (
    LatinHypercube,
    SweepDesign,
    SweepRunError,
    design_points,
    execute_run,
    latin_hypercube,
    load_sweep,
    plan_sweep,
    run_sweep,
    sweep,
)

ROOT = Path(__file__).resolve().parent.parent
THREE_BY_THREE = ROOT / "models" / "sweeps" / "three_by_three.yaml"
SMALL = {
    "workload.users": 300,
    "run.duration_s": 20,
    "run.warmup_s": 5,
    "run.drain_s": 5,
}


def _comparable(frame: pd.DataFrame) -> pd.DataFrame:
    """The table without the wall-clock column, in run_id order."""
    return frame.drop(columns="finished_at").sort_values("run_id", ignore_index=True)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def serial_table() -> pd.DataFrame:
    """The 3 x 3 x 3 sweep run serially in this process: the reference every backend matches."""
    return run_sweep(load_sweep(THREE_BY_THREE).model_copy(update={"backend": "serial"}))


# ---------------------------------------------------------------- designs


def test_a_grid_is_the_cartesian_product_with_the_last_path_varying_fastest() -> None:
    design = SweepDesign(grid={"a.x": [1, 2], "b.y": ["p", "q", "r"]})
    points = design_points(design)
    assert points == [
        {"a.x": 1, "b.y": "p"},
        {"a.x": 1, "b.y": "q"},
        {"a.x": 1, "b.y": "r"},
        {"a.x": 2, "b.y": "p"},
        {"a.x": 2, "b.y": "q"},
        {"a.x": 2, "b.y": "r"},
    ]


def test_a_list_of_points_runs_as_listed_and_shows_the_values_a_point_left_out() -> None:
    base = load_scenario("websocket_microservices", SMALL)
    plan = plan_sweep(
        base,
        [{"architecture.gateway.instances": 3}, {"workload.users": 400}],
        replications=2,
        seed=7,
    )
    assert [(job.point, job.replication, job.seed) for job in plan.jobs] == [
        (0, 0, 7),
        (0, 1, 8),
        (1, 0, 7),
        (1, 1, 8),
    ]
    assert plan.jobs[0].params == {"architecture.gateway.instances": 3, "workload.users": 300}
    assert plan.jobs[2].params == {
        "architecture.gateway.instances": base.architecture.gateway.instances,
        "workload.users": 400,
    }
    assert plan.jobs[2].scenario.workload.users == 400


def test_latin_hypercube_puts_exactly_one_sample_in_each_stratum_of_every_dimension() -> None:
    samples = 20
    lhs = LatinHypercube(
        samples=samples,
        seed=3,
        ranges={"x": (0.5, 2.5), "y": (-10.0, 30.0), "n": (1, 20)},
        integer=("n",),
    )
    points = latin_hypercube(lhs)
    assert len(points) == samples
    for path in ("x", "y"):
        low, high = lhs.ranges[path]
        strata = sorted(math.floor((p[path] - low) / (high - low) * samples) for p in points)
        assert strata == list(range(samples)), path
    # 20 whole values 1..20 in 20 strata: each value exactly once
    assert sorted(p["n"] for p in points) == list(range(1, 21))
    assert all(isinstance(p["n"], int) for p in points)


def test_latin_hypercube_depends_on_its_seed_alone_and_leaves_global_random_state_alone() -> None:
    lhs = LatinHypercube(samples=8, seed=11, ranges={"x": (0.0, 1.0), "y": (5.0, 6.0)})
    before = pickle.dumps(np.random.get_state())
    first = latin_hypercube(lhs)
    assert pickle.dumps(np.random.get_state()) == before
    assert latin_hypercube(lhs) == first
    assert latin_hypercube(lhs.model_copy(update={"seed": 12})) != first


def test_replication_i_of_every_point_uses_seed_base_plus_i_and_run_ids_are_stable() -> None:
    base = load_scenario("websocket_microservices", SMALL)
    points = design_points(SweepDesign(grid={"architecture.gateway.instances": [1, 2, 3]}))
    plan = plan_sweep(base, points, replications=3, seed=5)
    again = plan_sweep(load_scenario("websocket_microservices", SMALL), points, 3, 5)
    assert {job.point for job in plan.jobs} == {0, 1, 2}
    assert all(job.seed == 5 + job.replication for job in plan.jobs)
    assert [job.run_id for job in plan.jobs] == [job.run_id for job in again.jobs]
    assert len({job.run_id for job in plan.jobs}) == 9


def test_a_worker_returns_one_small_row_not_the_whole_result() -> None:
    base = load_scenario("websocket_microservices", SMALL)
    plan = plan_sweep(base, [{"architecture.gateway.instances": 2}], replications=1, seed=1)
    row = execute_run(plan.jobs[0])
    assert all(v is None or isinstance(v, bool | int | float | str) for v in row.values())
    assert row["architecture.gateway.instances"] == 2
    assert {"run_id", "latency_p99", "lost", "scenario_hash", "msgsim_version"} <= row.keys()


# -------------------------------------------------------------- bad specs

GOOD = """
scenario: websocket_microservices
overrides: {workload.users: 300, run.duration_s: 20, run.warmup_s: 5, run.drain_s: 5}
grid: {architecture.gateway.instances: [1, 2]}
replications: 1
"""


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (GOOD + "gird: {}\n", "gird: unknown field (did you mean 'grid'?)"),
        (GOOD + "points: [{workload.users: 500}]\n", "exactly one of grid, points or lhs"),
        (GOOD.replace("grid: {architecture.gateway.instances: [1, 2]}", ""), "got none"),
        (GOOD.replace("replications: 1", "replications: 0"), "replications:"),
        (GOOD + "backend: gpu\n", "backend: 'gpu' is not allowed"),
        (GOOD + "scheduler: tcp://localhost:8786\n", "scheduler:"),
        (GOOD + "workers: 0\n", "workers:"),
        (GOOD.replace("[1, 2]", "[]"), "grid: 'architecture.gateway.instances' has an empty"),
        (GOOD.replace("scenario: websocket_microservices\n", ""), "scenario: Field required"),
        (
            GOOD.replace("grid: {architecture.gateway.instances: [1, 2]}", "lhs: {sample: 4}"),
            "lhs.sample: unknown field (did you mean 'samples'?)",
        ),
        (
            GOOD.replace(
                "grid: {architecture.gateway.instances: [1, 2]}",
                "lhs: {samples: 4, ranges: {workload.users: [500, 100]}}",
            ),
            "lhs.ranges: 'workload.users' needs low <= high",
        ),
        (
            GOOD.replace(
                "grid: {architecture.gateway.instances: [1, 2]}",
                "lhs: {samples: 4, ranges: {workload.users: [100, 500]}, integer: [users]}",
            ),
            "integer: 'users' has no range",
        ),
    ],
)
def test_a_bad_sweep_file_names_the_field(tmp_path: Path, text: str, named: str) -> None:
    path = _write(tmp_path / "bad.yaml", text)
    with pytest.raises(ScenarioError, match=r"bad\.yaml") as info:
        load_sweep(path)
    assert named in str(info.value)


@pytest.mark.parametrize(
    ("design", "named"),
    [
        (
            {"grid": {"architecture.gatway.instances": [1, 2]}},
            "unknown field 'architecture.gatway.instances' (did you mean 'architecture.gateway'",
        ),
        ({"grid": {"architecture.gateway.instances": [2, 0]}}, "architecture.gateway.instances"),
        ({"points": [{"workload.users": 400}, {"workload.users": 400}]}, "same scenario"),
        (
            {"lhs": {"samples": 3, "ranges": {"architecture.gateway.instances": [1, 4]}}},
            "list the path under lhs.integer",
        ),
    ],
)
def test_a_bad_point_fails_before_any_run_starts(
    tmp_path: Path, design: dict[str, Any], named: str
) -> None:
    out = tmp_path / "never.parquet"
    with pytest.raises(ScenarioError) as info:
        sweep("websocket_microservices", **design, overrides=SMALL, backend="serial", out=out)
    assert named in str(info.value)
    assert not out.exists()


def test_the_command_exits_2_with_one_line_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path / "bad.yaml", GOOD.replace("replications: 1", "replicatons: 1"))
    assert sweep_main([str(path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "replicatons: unknown field (did you mean 'replications'?)" in err
    assert "Traceback" not in err


def test_a_scheduler_on_the_command_line_selects_the_dask_backend() -> None:
    spec = load_sweep(THREE_BY_THREE)
    chosen = with_command_line(spec, None, "tcp://10.0.0.1:8786", 4)
    assert (chosen.backend, chosen.scheduler, chosen.workers) == ("dask", "tcp://10.0.0.1:8786", 4)
    with pytest.raises(ScenarioError, match="--scheduler needs --backend dask"):
        with_command_line(spec, "serial", "tcp://10.0.0.1:8786", None)


# --------------------------------------------------------------- backends


def test_the_three_by_three_sweep_has_one_row_per_run_with_common_seeds(
    serial_table: pd.DataFrame,
) -> None:
    assert len(serial_table) == 27 * 3
    assert serial_table["run_id"].is_unique
    assert serial_table["point"].nunique() == 27
    assert (serial_table["seed"] == 1 + serial_table["replication"]).all()
    params = ["architecture.gateway.instances", "architecture.auth.algorithm"]
    assert serial_table.groupby("point")[params].nunique().eq(1).all().all()
    assert serial_table["sent"].gt(0).all()
    assert serial_table["scenario_hash"].nunique() == 27


def test_processes_backend_writes_the_same_table_as_serial(
    serial_table: pd.DataFrame, tmp_path: Path
) -> None:
    out = tmp_path / "processes.parquet"
    spec = load_sweep(THREE_BY_THREE).model_copy(update={"backend": "processes", "workers": 2})
    returned = run_sweep(spec, out=out, progress=False)
    written = pd.read_parquet(out)
    pd.testing.assert_frame_equal(_comparable(returned), _comparable(serial_table))
    pd.testing.assert_frame_equal(_comparable(written), _comparable(serial_table))


def test_dask_local_cluster_with_two_worker_processes_writes_the_same_table_as_serial(
    serial_table: pd.DataFrame, tmp_path: Path
) -> None:
    pytest.importorskip("dask.distributed")
    out = tmp_path / "dask.parquet"
    spec = load_sweep(THREE_BY_THREE).model_copy(update={"backend": "dask", "workers": 2})
    run_sweep(spec, out=out, progress=False)
    pd.testing.assert_frame_equal(_comparable(pd.read_parquet(out)), _comparable(serial_table))


# ----------------------------------------------------------------- resume


def _parts(out: Path) -> dict[str, tuple[int, int]]:
    """Each part file with its inode and modification time: a rewrite changes both."""
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.glob("part-*.parquet")}


def test_a_sweep_killed_midway_resumes_without_rerunning_finished_runs(
    serial_table: pd.DataFrame, tmp_path: Path
) -> None:
    out = tmp_path / "killed.parquet"
    command = [sys.executable, "-m", "sim.cli.sweep", str(THREE_BY_THREE)]
    command += ["--backend", "processes", "--workers", "2", "--out", str(out), "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    while len(_parts(out)) < 6 and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 130, err
    assert "--resume" in err
    before = _parts(out)
    assert 6 <= len(before) < 81
    assert not list(out.glob(".*"))  # no half-written part survives

    with pytest.raises(ScenarioError, match="--resume"):
        run_sweep(load_sweep(THREE_BY_THREE), out=out, progress=False)
    assert _parts(out) == before

    spec = load_sweep(THREE_BY_THREE).model_copy(update={"workers": 2})
    resumed = run_sweep(spec, out=out, resume=True, progress=False)
    after = _parts(out)
    assert len(after) == 81
    assert {name: after[name] for name in before} == before  # finished runs not rerun
    pd.testing.assert_frame_equal(_comparable(resumed), _comparable(serial_table))
    pd.testing.assert_frame_equal(_comparable(pd.read_parquet(out)), _comparable(serial_table))


def test_a_run_that_raises_keeps_the_finished_runs_and_resume_runs_only_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = importlib.import_module("sim.studies.sweep")
    real = module.simulate
    crash_at: list[int] = [4]
    simulated: list[int] = []

    def counted(scenario: Scenario, seed: int, progress: bool) -> Result:
        simulated.append(scenario.architecture.gateway.instances)
        if scenario.architecture.gateway.instances in crash_at:
            raise RuntimeError("simulated crash")
        return real(scenario, seed, progress=progress)

    monkeypatch.setattr(module, "simulate", counted)
    out = tmp_path / "crash.parquet"
    grid = {"architecture.gateway.instances": [1, 2, 4, 5]}
    options: dict[str, Any] = {"replications": 1, "overrides": SMALL, "backend": "serial"}
    with pytest.raises(SweepRunError, match="point 2"):
        sweep("websocket_microservices", grid=grid, out=out, **options)
    assert len(_parts(out)) == 2

    crash_at.clear()
    simulated.clear()
    frame = sweep("websocket_microservices", grid=grid, out=out, resume=True, **options)
    assert simulated == [4, 5]  # only the runs that had not finished
    assert frame["architecture.gateway.instances"].tolist() == [1, 2, 4, 5]


def test_resume_refuses_an_output_written_by_another_sweep(tmp_path: Path) -> None:
    out = tmp_path / "other.parquet"
    grid = {"architecture.gateway.instances": [1]}
    sweep("websocket_microservices", grid=grid, replications=1, overrides=SMALL, out=out)
    other = {**SMALL, "workload.users": 301}
    with pytest.raises(ScenarioError, match="another sweep"):
        sweep(
            "websocket_microservices",
            grid=grid,
            replications=1,
            overrides=other,
            out=out,
            resume=True,
        )


def test_the_command_prints_a_table_per_point_and_where_the_parquet_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path / "small.yaml", GOOD.replace("replications: 1", "replications: 2"))
    out = tmp_path / "small.parquet"
    assert sweep_main([str(path), "--backend", "serial", "--out", str(out), "--quiet"]) == 0
    shown = capsys.readouterr().out
    assert "gateway.instances" in shown and "online p99 (ms)" in shown
    assert f"4 runs in {out}/" in shown
    assert len(pd.read_parquet(out)) == 4


def test_the_command_writes_a_report_with_the_sweep_figures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = GOOD.replace(
        "grid: {architecture.gateway.instances: [1, 2]}",
        "grid: {architecture.gateway.instances: [1, 2], workload.users: [200, 300]}",
    ).replace("replications: 1", "replications: 2")
    path = _write(tmp_path / "two.yaml", text)
    out = tmp_path / "two.parquet"
    assert sweep_main([str(path), "--backend", "serial", "--out", str(out), "--quiet"]) == 0
    report_dir = tmp_path / "two-report"
    assert f"wrote {report_dir / 'report.html'}" in capsys.readouterr().out
    page = (report_dir / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 4  # two load curves, two heatmaps
    assert (report_dir / "heatmap_latency_p99.png").stat().st_size > 5_000
    points = pd.read_csv(report_dir / "points.csv")
    assert len(points) == 4 and set(points["runs"]) == {2}
    out_none = tmp_path / "none.parquet"
    assert (
        sweep_main(
            [
                str(path),
                "--backend",
                "serial",
                "--out",
                str(out_none),
                "--quiet",
                "--report",
                "none",
            ]
        )
        == 0
    )
    assert not (tmp_path / "none-report").exists()
