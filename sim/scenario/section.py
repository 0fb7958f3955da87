"""The base of every scenario section: validated once, immutable, no unknown fields."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A part of a scenario: frozen (change it with ``model_copy`` or the loader's
    overrides), unknown fields refused, enums kept as enum members."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False)


__all__ = ["Section"]
