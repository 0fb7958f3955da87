"""What a sweep is: its validated spec, and the runs its design expands into.

A sweep sets dotted scenario paths (``architecture.gateway.instances``) to the
values of a *design*: a grid (the Cartesian product of value lists), an explicit
list of points, or a Latin hypercube over numeric ranges. Every point runs
``replications`` times, and replication ``i`` of every point uses seed
``seed + i``: all points see the same users and messages (common random
numbers), so their differences come from the parameters, not from the draw.

This module holds the description only: the pydantic models of a sweep file and
the messages naming a bad field (:func:`load_sweep`), the expansion of a design
into points (:func:`design_points`), and the plan of every run with its seed and
stable ``run_id`` (:func:`plan_sweep`). Running the plan is :mod:`sim.sweep`;
writing its rows is :mod:`sim.studies.sweep_store`.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sim.scenario.loader import ScenarioError, models_dirs, with_overrides
from sim.scenario.schema import Scenario


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

    :func:`sim.scenario.errors.format_validation_error` knows the scenario's fields, so an
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


__all__ = [
    "Backend",
    "LatinHypercube",
    "RunJob",
    "SweepDesign",
    "SweepPlan",
    "SweepSpec",
    "design_points",
    "latin_hypercube",
    "load_sweep",
    "plan_sweep",
    "resolve_sweep",
    "scenario_hash",
]
