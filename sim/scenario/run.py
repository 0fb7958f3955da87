"""The run section: how long, which seed, what is measured."""

from __future__ import annotations

from pydantic import Field, model_validator

from sim.scenario.section import Section


class Run(Section):
    duration_s: float = Field(default=600.0, gt=0, description="workload sends until then")
    warmup_s: float | None = Field(
        default=None,
        ge=0,
        description="excluded from statistics; default: detected from the run by MSER-5",
    )
    drain_s: float = Field(
        default=120.0, ge=0, description="after duration_s: everyone online, system settles"
    )
    seed: int = Field(default=1, ge=0)
    interval_s: float = Field(default=10.0, gt=0, description="timeseries bin width")

    @model_validator(mode="after")
    def _warmup_inside(self) -> Run:
        if self.warmup_s is not None and self.warmup_s >= self.duration_s:
            raise ValueError(
                f"run.warmup_s must be < run.duration_s, got warmup_s={self.warmup_s}, "
                f"duration_s={self.duration_s}"
            )
        return self


__all__ = ["Run"]
