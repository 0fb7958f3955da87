"""Validation errors in the user's words: one line per problem, naming the field, the
value given and what is allowed there.

pydantic's locations carry names nobody wrote (a distribution's kind, the class a
broker or store section was validated as, validator names); they are walked down
the scenario's models and left out, and a field given to a broker or store of
another kind is named with the kinds that have it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any, NamedTuple

from pydantic import BaseModel, ValidationError

from sim.scenario.schema import Scenario, field_model, section_kinds


def format_validation_error(exc: ValidationError, origin: str = "scenario") -> str:
    """One readable message per problem: field path, value given, what is allowed."""
    lines = []
    for err in exc.errors(include_url=False):
        loc = _location(err["loc"])
        kind = err["type"]
        given = err.get("input")
        if kind == "extra_forbidden":
            parent = _walk(err["loc"][:-1])
            allowed = list(parent.model.model_fields) if parent.model else []
            name = str(err["loc"][-1])
            close = difflib.get_close_matches(name, allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            if parent.kind is not None:
                lines.append(_foreign_field(loc, name, parent, hint, allowed))
                continue
            lines.append(
                f"{loc}: unknown field{hint}; allowed here: {', '.join(allowed) or '(none)'}"
            )
        elif kind == "enum":
            expected = err.get("ctx", {}).get("expected", "")
            lines.append(f"{loc}: {given!r} is not allowed; allowed: {expected}")
        elif (
            kind in ("union_tag_invalid", "union_tag_not_found")
            and (section := _walk(err["loc"])).kinds
        ):
            allowed_kinds = ", ".join(section.kinds)
            what = section.parts[-1] if section.parts else "section"
            if kind == "union_tag_invalid":
                tag = err.get("ctx", {}).get("tag", given)
                lines.append(f"{loc}.kind: {tag!r} is not allowed; allowed: {allowed_kinds}")
            else:
                lines.append(
                    f"{loc}: a {what} is a mapping with 'kind' one of {allowed_kinds}; "
                    f"got {given!r}"
                )
        elif kind in ("union_tag_invalid", "union_tag_not_found"):
            lines.append(
                f"{loc}: a distribution needs 'dist' set to one of constant, exponential, "
                f"lognormal, gamma, pareto, zipf, empirical, mixture (or a plain number); "
                f"got {given!r}"
            )
        else:
            msg = err["msg"]
            if msg.startswith("Value error, "):
                msg = msg[len("Value error, ") :]
            shown = "" if isinstance(given, dict) else f" (got {given!r})"
            lines.append(f"{loc}: {msg}{shown}")
    head = f"{origin}: invalid scenario" if len(lines) > 1 else origin
    if len(lines) == 1:
        return f"{head}: {lines[0]}"
    return head + "\n  " + "\n  ".join(lines)


#: names pydantic adds to a location for a distribution's kind; nobody wrote them
_DISTRIBUTION_TAGS = frozenset(
    ("constant", "exponential", "lognormal", "gamma", "pareto", "zipf", "empirical", "mixture")
)


class _Walk(NamedTuple):
    """Where an error location leads in the schema."""

    #: the location as a user writes it: without pydantic's union and validator names
    parts: list[str]
    #: the model the location ends in (None: a value, a list, a distribution)
    model: type[BaseModel] | None
    #: the location ends on a section of one class per kind: those classes, by kind
    kinds: dict[str, type[BaseModel]] | None
    #: the location ends in the class of such a section: its kind...
    kind: str | None
    #: ... and the classes of every kind of that section
    siblings: dict[str, type[BaseModel]] | None


def _walk(loc: Iterable[Any]) -> _Walk:
    """Follow an error location (pydantic's ``loc``) down the scenario's models."""
    model: type[BaseModel] | None = Scenario
    kinds: dict[str, type[BaseModel]] | None = None
    kind: str | None = None
    siblings: dict[str, type[BaseModel]] | None = None
    parts: list[str] = []
    for item in loc:
        text = str(item)
        if kinds is not None:
            # pydantic names the class it validated a kind's section as: the kind
            model, kind, siblings, kinds = kinds.get(text), text, kinds, None
            continue
        kind = siblings = None
        if model is not None and isinstance(item, str) and item in model.model_fields:
            field = model.model_fields[item]
            kinds = section_kinds(field)
            model = field_model(field)
        else:
            model = None
            if text.startswith("function-") or text in _DISTRIBUTION_TAGS:
                continue  # pydantic's names for a distribution's kind and validators
        parts.append(text)
    return _Walk(parts, model, kinds, kind, siblings)


def _location(loc: Iterable[Any]) -> str:
    return ".".join(_walk(loc).parts) or "scenario"


def _foreign_field(loc: str, name: str, parent: _Walk, hint: str, allowed: list[str]) -> str:
    """A field the section's kind does not have: which kinds have it, what this one has."""
    section = parent.parts[-1] if parent.parts else "section"
    owners = [k for k, member in (parent.siblings or {}).items() if name in member.model_fields]
    if owners:
        s = "s" if len(owners) > 1 else ""
        hint = f" (it is a field of kind{s} {', '.join(owners)})"
    return (
        f"{loc}: not a field of {section} kind {parent.kind}{hint}; "
        f"fields of {parent.kind}: {', '.join(allowed)}"
    )


__all__ = ["format_validation_error"]
