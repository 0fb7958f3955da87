"""Parameter sweeps: many variants of one scenario, each replicated, run in parallel.

A sweep is described by :mod:`sim.studies.sweep_spec` (a grid, a list of points or a
Latin hypercube, with replications and common random numbers) and its rows are
written by :mod:`sim.studies.sweep_store`; this module runs it. Every public name of
both stays importable from here.

A run is a pure function of (scenario, seed), so a sweep's table is identical on
every backend: ``serial``, ``processes`` (worker processes on this machine) and
``dask`` (a local cluster, or an existing one given by its scheduler address).
Workers send back one summary row per run, never a whole :class:`sim.Result`.
With an output directory, each finished run is written at once as its own
Parquet file, so an interrupted sweep keeps every finished run and
``resume=True`` runs only the missing ones.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Generator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import ValidationError
from tqdm.auto import tqdm

from sim._version import __version__
from sim.model.run import simulate
from sim.scenario.loader import ScenarioError, load_scenario, with_overrides
from sim.scenario.schema import Scenario
from sim.studies.sweep_spec import (
    Backend,
    LatinHypercube,
    RunJob,
    SweepDesign,
    SweepPlan,
    SweepSpec,
    _spec_error,
    design_points,
    latin_hypercube,
    load_sweep,
    plan_sweep,
    resolve_sweep,
    scenario_hash,
)
from sim.studies.sweep_store import ID_COLUMNS, PART_PREFIX, PROVENANCE_COLUMNS, PartStore, _schema

ScenarioLike = Scenario | str | os.PathLike[str]


# ----------------------------------------------------------------- execution


def _native(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def execute_run(job: RunJob) -> dict[str, Any]:
    """Simulate one run and return its row: small, so it travels cheaply from a worker.

    ``msgsim_version`` is the version of the worker that ran it, which is what
    matters when a remote cluster has another installation.
    """
    result = simulate(job.scenario, job.seed, progress=False)
    metrics = {str(k): _native(v) for k, v in result.summary.iloc[0].items() if k not in ID_COLUMNS}
    return {
        "run_id": job.run_id,
        "point": job.point,
        "replication": job.replication,
        "seed": job.seed,
        **job.params,
        **metrics,
        "scenario_hash": job.scenario_hash,
        "msgsim_version": __version__,
    }


class SweepRunError(RuntimeError):
    """A run of a sweep raised; the runs finished before it are kept."""


def _failed(job: RunJob, exc: BaseException) -> SweepRunError:
    return SweepRunError(
        f"run {job.run_id} (point {job.point}, replication {job.replication}, seed {job.seed}, "
        f"{job.params}) failed: {exc!r}"
    )


def _run_serial(jobs: Sequence[RunJob]) -> Generator[dict[str, Any], None, None]:
    for job in jobs:
        try:
            row = execute_run(job)
        except Exception as exc:
            raise _failed(job, exc) from exc
        yield row


def _run_processes(
    jobs: Sequence[RunJob], workers: int | None
) -> Generator[dict[str, Any], None, None]:
    """Runs on local worker processes; on interrupt or failure, pending runs are cancelled,
    running ones finish, and every finished row is still handed over before re-raising."""
    max_workers = workers or min(len(jobs), os.cpu_count() or 1)
    pool = ProcessPoolExecutor(max_workers=max_workers)
    futures: dict[Future[dict[str, Any]], RunJob] = {}
    handed: set[Future[dict[str, Any]]] = set()
    try:
        futures = {pool.submit(execute_run, job): job for job in jobs}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in sorted(done, key=lambda f: futures[f].run_id):
                handed.add(future)
                error = future.exception()
                if error is not None:
                    raise _failed(futures[future], error) from error
                yield future.result()
    except GeneratorExit:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        for future in futures:
            if future not in handed and not future.cancelled() and future.exception() is None:
                yield future.result()
        raise
    pool.shutdown(wait=True)


def _run_dask(
    jobs: Sequence[RunJob], scheduler: str | None, workers: int | None
) -> Generator[dict[str, Any], None, None]:
    """Runs on a Dask cluster: the one at ``scheduler``, or a local one owned by the sweep.

    Keys are the run ids, so a run submitted twice to one cluster is computed once.
    On interrupt or failure the runs not yet handed over are cancelled.
    """
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise ScenarioError(
            "backend 'dask' needs dask.distributed: pip install 'msgsim[cluster]'"
        ) from None
    with contextlib.ExitStack() as stack:
        if scheduler:
            try:
                client = stack.enter_context(Client(scheduler, timeout="10s"))
            except (OSError, TimeoutError) as exc:
                raise ScenarioError(
                    f"cannot reach the Dask scheduler at {scheduler!r}: {exc}"
                ) from None
        else:
            cluster = stack.enter_context(
                LocalCluster(
                    n_workers=workers or 2,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                    # closing a local cluster can log harmless heartbeat errors from
                    # its workers; a run that fails still raises through its future
                    silence_logs=logging.CRITICAL,
                )
            )
            client = stack.enter_context(Client(cluster))
        futures = {
            client.submit(execute_run, job, key=f"msgsim-run-{job.run_id}", pure=False): job
            for job in jobs
        }
        handed: set[Any] = set()
        try:
            for future in as_completed(list(futures)):
                handed.add(future)
                if future.status == "error":
                    error = future.exception()
                    raise _failed(futures[future], error) from error
                yield future.result()
        except BaseException:
            # results not yet fetched stay behind: after Ctrl+C the workers holding
            # them may be gone, and waiting for them could block forever
            client.cancel([f for f in futures if f not in handed])
            raise


def _frame(table: pa.Table) -> pd.DataFrame:
    frame = table.to_pandas()
    return frame.sort_values(["point", "replication"], ignore_index=True)


def sweep(
    scenario: ScenarioLike,
    grid: Mapping[str, Sequence[Any]] | None = None,
    points: Sequence[Mapping[str, Any]] | None = None,
    lhs: LatinHypercube | Mapping[str, Any] | None = None,
    replications: int = 3,
    seed: int | None = None,
    backend: Backend | str = Backend.PROCESSES,
    scheduler: str | None = None,
    workers: int | None = None,
    out: str | os.PathLike[str] | None = None,
    resume: bool = False,
    progress: bool | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Run every point of a design ``replications`` times; one tidy row per run.

    Args:
        scenario: a :class:`Scenario`, a preset name or a path to a YAML file.
        grid: dotted path to a list of values; the points are their Cartesian product.
        points: an explicit list of points, each a mapping of dotted paths to values.
        lhs: a Latin hypercube (``samples``, ``seed``, ``ranges``, ``integer``).
        replications: runs per point; replication ``i`` uses seed ``seed + i``.
        seed: base seed; default the scenario's ``run.seed``.
        backend: ``serial``, ``processes`` (default) or ``dask``.
        scheduler: a Dask scheduler address; without it ``dask`` starts a local
            cluster of ``workers`` (default 2) single-threaded processes.
        workers: worker processes for ``processes`` (default: one per core, at most
            one per run) or for a local Dask cluster (default 2).
        out: a directory (``results.parquet``) receiving one Parquet file per
            finished run; ``pandas.read_parquet(out)`` reads the table.
        resume: skip the runs already in ``out``.
        progress: a progress bar over runs (default: when there is more than one run).
        overrides: dotted paths applied to every point first.

    Returns:
        One row per run, by point then replication: ``run_id, point, replication,
        seed``, one column per swept path (named by the path), the run's summary
        metrics (:data:`sim.model.result.SUMMARY_COLUMNS`, seconds and bytes), then
        ``scenario_hash, msgsim_version, finished_at`` (UTC).

    Raises:
        ScenarioError: a bad design, point, option or output, before any run starts.
        SweepRunError: a run failed; the runs finished before it are kept in ``out``.
    """
    try:
        design = SweepDesign.model_validate({"grid": grid, "points": points, "lhs": lhs})
    except ValidationError as exc:
        raise _spec_error(exc, "sweep", SweepDesign) from None
    try:
        chosen = Backend(backend)
    except ValueError:
        allowed = ", ".join(b.value for b in Backend)
        raise ScenarioError(f"backend {backend!r} is not known; allowed: {allowed}") from None
    if scheduler is not None and chosen is not Backend.DASK:
        raise ScenarioError(f"scheduler is used by backend 'dask' only; backend is {chosen.value}")
    if workers is not None and workers < 1:
        raise ScenarioError(f"workers must be >= 1, got {workers}")
    if isinstance(scenario, Scenario):
        base = with_overrides(scenario, overrides) if overrides else scenario
    else:
        base = load_scenario(scenario, overrides)
    plan = plan_sweep(base, design_points(design), replications, seed)
    store = PartStore(Path(out)) if out is not None else None
    finished = store.open(plan, resume) if store is not None else set()
    pending = [job for job in plan.jobs if job.run_id not in finished]
    schema = store.schema() if store is not None else None
    rows: list[dict[str, Any]] = []
    if chosen is Backend.SERIAL or not pending:
        runs = _run_serial(pending)
    elif chosen is Backend.PROCESSES:
        runs = _run_processes(pending, workers)
    else:
        runs = _run_dask(pending, scheduler, workers)
    show = progress if progress is not None else len(plan.jobs) > 1
    with (
        contextlib.closing(runs),
        tqdm(
            total=len(plan.jobs),
            initial=len(finished),
            desc=base.name,
            unit="run",
            disable=not show,
        ) as bar,
    ):
        for row in runs:
            row["finished_at"] = datetime.now(UTC)
            if schema is None:
                schema = _schema(plan, row)
            if set(row) != set(schema.names):
                raise ScenarioError(
                    f"output {str(out)!r} was written with other columns "
                    f"({sorted(set(schema.names) ^ set(row))}); choose another output path"
                )
            if store is not None:
                store.write(pa.Table.from_pylist([row], schema=schema), row["run_id"])
            else:
                rows.append(row)
            bar.update()
    if store is not None:
        return _frame(store.read(schema))
    return _frame(pa.Table.from_pylist(rows, schema=schema))


def run_sweep(
    spec: SweepSpec,
    out: str | os.PathLike[str] | None = None,
    resume: bool = False,
    progress: bool | None = None,
) -> pd.DataFrame:
    """Run a sweep file's spec (see :func:`load_sweep`); arguments as for :func:`sweep`."""
    return sweep(
        spec.scenario,
        grid=spec.grid,
        points=spec.points,
        lhs=spec.lhs,
        replications=spec.replications,
        seed=spec.seed,
        backend=spec.backend,
        scheduler=spec.scheduler,
        workers=spec.workers,
        out=out,
        resume=resume,
        progress=progress,
        overrides=spec.overrides,
    )


__all__ = [
    "ID_COLUMNS",
    "PART_PREFIX",
    "PROVENANCE_COLUMNS",
    "Backend",
    "LatinHypercube",
    "PartStore",
    "RunJob",
    "ScenarioLike",
    "SweepDesign",
    "SweepPlan",
    "SweepRunError",
    "SweepSpec",
    "design_points",
    "execute_run",
    "latin_hypercube",
    "load_sweep",
    "plan_sweep",
    "resolve_sweep",
    "run_sweep",
    "scenario_hash",
    "sweep",
]
