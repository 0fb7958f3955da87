"""The incremental Parquet output of a sweep: one file per finished run.

An output directory is a pyarrow dataset of ``part-RUN_ID.parquet`` files, each
written under a temporary name and renamed when complete, so an interrupted
sweep keeps every finished run and never leaves a half-written part. Opening a
directory for resume returns the run ids already finished; opening a non-empty
one without resume, or one holding runs of another sweep, is refused. Every
part shares one schema: identity, parameters, metrics, provenance.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from sim.scenario.loader import ScenarioError
from sim.studies.sweep_spec import SweepPlan

#: Columns that identify a run and where it came from, besides its parameters.
ID_COLUMNS: tuple[str, ...] = ("run_id", "point", "replication", "seed")
PROVENANCE_COLUMNS: tuple[str, ...] = ("scenario_hash", "msgsim_version", "finished_at")
PART_PREFIX = "part-"


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


__all__ = ["ID_COLUMNS", "PART_PREFIX", "PROVENANCE_COLUMNS", "PartStore"]
