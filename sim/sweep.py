"""Parameter sweeps: many variants of one scenario, each replicated, run in parallel.

A sweep sets dotted scenario paths (``architecture.gateway.instances``) to the
values of a *design*: a grid (the Cartesian product of value lists), an explicit
list of points, or a Latin hypercube over numeric ranges. Every point runs
``replications`` times, and replication ``i`` of every point uses seed
``seed + i``: all points see the same users and messages (common random
numbers), so their differences come from the parameters, not from the draw.

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
import difflib
import hashlib
import itertools
import json
import logging
import os
from collections.abc import Generator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from tqdm.auto import tqdm

from sim.engine import simulate
from sim.loader import ScenarioError, load_scenario, models_dirs, with_overrides
from sim.scenario import Scenario

ScenarioLike = Scenario | str | os.PathLike[str]

#: Columns that identify a run and where it came from, besides its parameters.
ID_COLUMNS: tuple[str, ...] = ("run_id", "point", "replication", "seed")
PROVENANCE_COLUMNS: tuple[str, ...] = ("scenario_hash", "msgsim_version", "finished_at")
PART_PREFIX = "part-"


class Backend(StrEnum):
    """Where the runs of a sweep execute."""

    SERIAL = "serial"
    PROCESSES = "processes"
    DASK = "dask"


# ------------------------------------------------------------------ the spec


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LatinHypercube(_Spec):
    """A Latin hypercube design: ``samples`` points, one per stratum in every dimension.

    Each range ``[low, high]`` is cut into ``samples`` equal strata and every
    stratum holds exactly one sample, so a few points cover each parameter's
    whole range. Paths listed in ``integer`` take whole values ``low..high``
    (both included), each equally likely. The design depends on ``seed`` alone.
    """

    samples: int = Field(ge=1)
    seed: int = Field(default=0, ge=0)
    ranges: dict[str, tuple[float, float]] = Field(min_length=1)
    integer: tuple[str, ...] = ()

    @field_validator("ranges")
    @classmethod
    def _low_below_high(cls, ranges: dict[str, tuple[float, float]]) -> Any:
        for path, (low, high) in ranges.items():
            if not low <= high:
                raise ValueError(f"{path!r} needs low <= high, got [{low}, {high}]")
        return ranges

    @model_validator(mode="after")
    def _integer_paths_have_ranges(self) -> LatinHypercube:
        for path in self.integer:
            if path not in self.ranges:
                raise ValueError(f"integer: {path!r} has no range in lhs.ranges")
            low, high = self.ranges[path]
            if low != int(low) or high != int(high):
                raise ValueError(f"integer: {path!r} needs whole bounds, got [{low}, {high}]")
        for path, (low, high) in self.ranges.items():
            if low == high and path not in self.integer and self.samples > 1:
                raise ValueError(f"ranges: {path!r} is empty, got [{low}, {high}]")
        return self


class SweepDesign(_Spec):
    """Which points a sweep runs: exactly one of ``grid``, ``points`` or ``lhs``."""

    grid: dict[str, list[Any]] | None = None
    points: list[dict[str, Any]] | None = Field(default=None, min_length=1)
    lhs: LatinHypercube | None = None

    @field_validator("grid")
    @classmethod
    def _grid_lists_not_empty(cls, grid: dict[str, list[Any]] | None) -> Any:
        if grid is not None:
            if not grid:
                raise ValueError("needs at least one dotted path with a list of values")
            for path, values in grid.items():
                if not values:
                    raise ValueError(f"{path!r} has an empty list of values")
        return grid

    @model_validator(mode="after")
    def _exactly_one_design(self) -> SweepDesign:
        given = [name for name in ("grid", "points", "lhs") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(
                "a sweep needs exactly one of grid, points or lhs; "
                f"got {', '.join(given) if given else 'none'}"
            )
        return self


class SweepSpec(SweepDesign):
    """A sweep file: the scenario, the design, and how to run it.

    Attributes:
        name: names the default output (``out/NAME.parquet``); default: the file name.
        scenario: a preset name or a path (relative to the sweep file, or absolute).
        overrides: dotted paths applied to every point before the point's own values.
        replications: runs per point; replication ``i`` uses seed ``seed + i``.
        seed: base seed; default: the scenario's ``run.seed``.
        backend: ``serial``, ``processes`` or ``dask``.
        scheduler: address of a running Dask scheduler (``tcp://host:8786``), for ``dask``.
        workers: worker processes (``processes``) or local Dask workers (``dask``).
    """

    name: str = "sweep"
    description: str = ""
    scenario: str
    overrides: dict[str, Any] = Field(default_factory=dict)
    replications: int = Field(default=3, ge=1)
    seed: int | None = Field(default=None, ge=0)
    backend: Backend = Backend.PROCESSES
    scheduler: str | None = None
    workers: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _scheduler_needs_dask(self) -> SweepSpec:
        if self.scheduler is not None and self.backend is not Backend.DASK:
            raise ValueError(
                f"scheduler: a scheduler address is used by backend 'dask' only; "
                f"backend is {self.backend.value!r}"
            )
        return self


def _spec_error(exc: ValidationError, origin: str, model: type[BaseModel]) -> ScenarioError:
    """One message per problem, naming the sweep field, in the scenario loader's words.

    :func:`sim.loader.format_validation_error` knows the scenario's fields, so an
    unknown field of the sweep format is named here, with the fields allowed there.
    """
    lines = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(part) for part in err["loc"])
        given = err.get("input")
        if err["type"] == "extra_forbidden":
            inside_lhs = len(err["loc"]) > 1 and err["loc"][0] == "lhs"
            allowed = list((LatinHypercube if inside_lhs else model).model_fields)
            close = difflib.get_close_matches(str(err["loc"][-1]), allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            lines.append(f"{loc}: unknown field{hint}; allowed here: {', '.join(allowed)}")
        elif err["type"] == "enum":
            expected = err.get("ctx", {}).get("expected", "")
            lines.append(f"{loc}: {given!r} is not allowed; allowed: {expected}")
        else:
            msg = str(err["msg"]).removeprefix("Value error, ")
            shown = (
                "" if isinstance(given, dict) or err["type"] == "missing" else f" (got {given!r})"
            )
            lines.append(f"{loc}: {msg}{shown}" if loc else msg)
    if len(lines) == 1:
        return ScenarioError(f"{origin}: {lines[0]}")
    return ScenarioError(f"{origin}: invalid sweep\n  " + "\n  ".join(lines))


def resolve_sweep(name_or_path: str | os.PathLike[str]) -> Path:
    """The sweep file a path or a name (``models/sweeps/NAME.yaml``) refers to."""
    candidate = Path(name_or_path)
    if candidate.is_file():
        return candidate
    if candidate.suffix not in (".yaml", ".yml"):
        for root in models_dirs():
            found = root / "sweeps" / f"{candidate.name}.yaml"
            if found.is_file():
                return found
    raise ScenarioError(f"sweep file {str(name_or_path)!r} does not exist")


def load_sweep(name_or_path: str | os.PathLike[str]) -> SweepSpec:
    """Read and validate a sweep file.

    A relative ``scenario`` path is taken relative to the sweep file when it
    exists there, so a sweep and its scenario can be moved together.

    Raises:
        ScenarioError: bad YAML, an unknown field or a bad value, naming the field.
    """
    path = resolve_sweep(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ScenarioError(f"{path}: not valid YAML{where}: {problem}") from None
    if not isinstance(raw, dict):
        raise ScenarioError(f"{path}: expected a mapping of sweep fields at the top level")
    raw.setdefault("name", path.stem)
    scenario = raw.get("scenario")
    if isinstance(scenario, str) and Path(scenario).suffix in (".yaml", ".yml"):
        beside = path.parent / scenario
        if not Path(scenario).is_absolute() and beside.is_file():
            raw["scenario"] = str(beside)
    try:
        return SweepSpec.model_validate(raw)
    except ValidationError as exc:
        raise _spec_error(exc, str(path), SweepSpec) from None


# ---------------------------------------------------------------- the design


def latin_hypercube(lhs: LatinHypercube) -> list[dict[str, Any]]:
    """The design's points, from a numpy Generator seeded with ``lhs.seed`` alone.

    Dimension by dimension, a random permutation assigns strata to samples and a
    uniform draw places each sample inside its stratum.
    """
    rng = np.random.default_rng(lhs.seed)
    n = lhs.samples
    columns: dict[str, list[Any]] = {}
    for path, (low, high) in lhs.ranges.items():
        unit = (rng.permutation(n) + rng.random(n)) / n  # one per stratum of [0, 1)
        if path in lhs.integer:
            whole = np.floor(low + unit * (high + 1 - low))
            columns[path] = [int(v) for v in np.minimum(whole, high)]
        else:
            columns[path] = [float(v) for v in low + unit * (high - low)]
    return [{path: values[i] for path, values in columns.items()} for i in range(n)]


def design_points(design: SweepDesign) -> list[dict[str, Any]]:
    """Every point of the design, in order: a grid varies its last path fastest."""
    if design.grid is not None:
        paths = list(design.grid)
        return [
            dict(zip(paths, values, strict=True))
            for values in itertools.product(*design.grid.values())
        ]
    if design.points is not None:
        return [dict(point) for point in design.points]
    assert design.lhs is not None  # guaranteed by SweepDesign's validator
    return latin_hypercube(design.lhs)


def scenario_hash(scenario: Scenario) -> str:
    """sha256 of the scenario's canonical JSON: what a run simulated, exactly."""
    text = json.dumps(scenario.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _run_id(scenario_digest: str, params: Mapping[str, Any], seed: int) -> str:
    key = {"scenario_hash": scenario_digest, "params": dict(params), "seed": seed}
    text = json.dumps(key, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _value_at(tree: Any, path: str) -> Any:
    """The value at a dotted path of a scenario dump, or None where the path is absent."""
    for part in path.split("."):
        try:
            tree = tree[int(part)] if isinstance(tree, list) else tree[part]
        except (KeyError, IndexError, ValueError, TypeError):
            return None
    return tree


@dataclass(frozen=True)
class RunJob:
    """One run of a sweep: what a worker needs, and what identifies its row."""

    run_id: str
    point: int
    replication: int
    seed: int
    params: dict[str, Any]
    scenario: Scenario
    scenario_hash: str


@dataclass(frozen=True)
class SweepPlan:
    """Every run of a sweep, validated, with the Arrow types of its parameter columns."""

    jobs: list[RunJob]
    param_types: dict[str, pa.DataType]


def _column_type(values: Sequence[Any]) -> tuple[pa.DataType, list[Any]]:
    """One Arrow type per parameter column, so every part file has the same schema.

    Whole numbers stay integers, numbers become floats, text stays text; anything
    else (a distribution, a list) is stored as its JSON text.
    """
    given = [v for v in values if v is not None]
    if all(isinstance(v, bool) for v in given):
        return pa.bool_(), list(values)
    if all(isinstance(v, int) and not isinstance(v, bool) for v in given):
        return pa.int64(), list(values)
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in given):
        return pa.float64(), [None if v is None else float(v) for v in values]
    if all(isinstance(v, str) for v in given):
        return pa.string(), list(values)
    return pa.string(), [None if v is None else json.dumps(v, sort_keys=True) for v in values]


def plan_sweep(
    base: Scenario,
    points: Sequence[Mapping[str, Any]],
    replications: int,
    seed: int | None = None,
) -> SweepPlan:
    """Build and validate every point's scenario before any run starts.

    Args:
        base: the scenario every point starts from (sweep-wide overrides applied).
        points: dotted-path overrides, one mapping per point.
        replications: runs per point (>= 1).
        seed: base seed; replication ``i`` uses ``seed + i``. Default ``base.run.seed``.

    Raises:
        ScenarioError: a point sets an unknown path or a bad value (named, with the
            point), or two points describe the same scenario.
    """
    if replications < 1:
        raise ScenarioError(f"replications must be >= 1, got {replications}")
    base_seed = base.run.seed if seed is None else seed
    if base_seed < 0:
        raise ScenarioError(f"seed must be >= 0, got {base_seed}")
    paths = list(dict.fromkeys(path for point in points for path in point))
    scenarios: list[tuple[Scenario, str]] = []
    first_with: dict[str, int] = {}
    given: list[dict[str, Any]] = []
    for index, point in enumerate(points):
        try:
            scenario = with_overrides(base, point) if point else base
        except ScenarioError as exc:
            hint = ""
            if "fractional part" in str(exc):
                hint = " (list the path under lhs.integer for whole values)"
            raise ScenarioError(f"sweep point {index} {dict(point)}: {exc}{hint}") from None
        digest = scenario_hash(scenario)
        if digest in first_with:
            raise ScenarioError(
                f"sweep points {first_with[digest]} and {index} describe the same scenario "
                f"({dict(point)}); each point must differ"
            )
        first_with[digest] = index
        scenarios.append((scenario, digest))
        # a path a point leaves out (in a list of points) shows the value it ran with
        dump = scenario.model_dump(mode="json")
        given.append(
            {path: point[path] if path in point else _value_at(dump, path) for path in paths}
        )
    param_types: dict[str, pa.DataType] = {}
    columns: dict[str, list[Any]] = {}
    for path in paths:
        param_types[path], columns[path] = _column_type([values[path] for values in given])
    jobs = []
    for index, (scenario, digest) in enumerate(scenarios):
        params = {path: columns[path][index] for path in paths}
        for replication in range(replications):
            run_seed = base_seed + replication
            jobs.append(
                RunJob(
                    run_id=_run_id(digest, given[index], run_seed),
                    point=index,
                    replication=replication,
                    seed=run_seed,
                    params=params,
                    scenario=scenario,
                    scenario_hash=digest,
                )
            )
    return SweepPlan(jobs, param_types)


# ----------------------------------------------------------------- execution


def _native(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def execute_run(job: RunJob) -> dict[str, Any]:
    """Simulate one run and return its row: small, so it travels cheaply from a worker.

    ``msgsim_version`` is the version of the worker that ran it, which is what
    matters when a remote cluster has another installation.
    """
    from sim import __version__

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


# -------------------------------------------------------------------- output


def _arrow_type(value: Any) -> pa.DataType:
    if isinstance(value, bool):
        return pa.bool_()
    if isinstance(value, int):
        return pa.int64()
    if isinstance(value, float) or value is None:
        return pa.float64()
    return pa.string()


def _schema(plan: SweepPlan, row: Mapping[str, Any]) -> pa.Schema:
    """The table's schema: identity, parameters, metrics (typed from one row), provenance."""
    fields = [
        pa.field("run_id", pa.string()),
        pa.field("point", pa.int64()),
        pa.field("replication", pa.int64()),
        pa.field("seed", pa.int64()),
    ]
    fields += [pa.field(path, kind) for path, kind in plan.param_types.items()]
    skip = {*ID_COLUMNS, *PROVENANCE_COLUMNS, *plan.param_types}
    fields += [pa.field(k, _arrow_type(v)) for k, v in row.items() if k not in skip]
    fields += [
        pa.field("scenario_hash", pa.string()),
        pa.field("msgsim_version", pa.string()),
        pa.field("finished_at", pa.timestamp("us", tz="UTC")),
    ]
    return pa.schema(fields)


class PartStore:
    """A directory of Parquet files, one per finished run: together, a pyarrow dataset.

    One file per run makes every write independent: a run is on disk as soon as
    it finishes, and a crash can only lose the file being written, which is
    written under a temporary name (ignored by readers) and renamed when complete.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def parts(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return sorted(self.root.glob(f"{PART_PREFIX}*.parquet"))

    def open(self, plan: SweepPlan, resume: bool) -> set[str]:
        """Check the directory may be written, and return the run ids already finished."""
        if self.root.exists() and not self.root.is_dir():
            raise ScenarioError(f"output {str(self.root)!r} is a file; give a directory path")
        for stale in self.root.glob(".*.tmp") if self.root.is_dir() else ():
            stale.unlink()
        parts = self.parts()
        entries = list(self.root.iterdir()) if self.root.is_dir() else []
        if entries and not resume:
            raise ScenarioError(
                f"output {str(self.root)!r} already holds {len(parts)} finished run(s); pass "
                "--resume (resume=True) to finish that sweep, or choose another output path"
            )
        if not parts:
            self.root.mkdir(parents=True, exist_ok=True)
            return set()
        found = {part.name.removeprefix(PART_PREFIX).removesuffix(".parquet") for part in parts}
        foreign = found - {job.run_id for job in plan.jobs}
        if foreign:
            raise ScenarioError(
                f"output {str(self.root)!r} holds {len(foreign)} run(s) of another sweep "
                "(different scenario, parameters or seeds); choose another output path"
            )
        return found

    def schema(self) -> pa.Schema | None:
        parts = self.parts()
        return pq.read_schema(parts[0]) if parts else None

    def write(self, table: pa.Table, run_id: str) -> None:
        final = self.root / f"{PART_PREFIX}{run_id}.parquet"
        temporary = self.root / f".{final.name}.tmp"
        try:
            pq.write_table(table, temporary)
            os.replace(temporary, final)
        except BaseException:  # interrupted mid-write: leave no half-written file behind
            temporary.unlink(missing_ok=True)
            raise

    def read(self, schema: pa.Schema | None = None) -> pa.Table:
        return pads.dataset(self.parts(), format="parquet", schema=schema).to_table()


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
        metrics (:data:`sim.result.SUMMARY_COLUMNS`, seconds and bytes), then
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
    "Backend",
    "LatinHypercube",
    "PartStore",
    "RunJob",
    "SweepDesign",
    "SweepPlan",
    "SweepRunError",
    "SweepSpec",
    "design_points",
    "execute_run",
    "latin_hypercube",
    "load_sweep",
    "plan_sweep",
    "run_sweep",
    "scenario_hash",
    "sweep",
]
