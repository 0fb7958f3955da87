"""Finding, reading and overriding scenarios; turning bad input into one clear message.

A scenario name resolves to ``models/**/NAME.yaml`` (a checkout's ``models/``
folder, the installed ``models`` package data, or the folders listed in
``MSGSIM_MODELS_PATH``); a path to a YAML file works too. In a scenario file the
``architecture`` and ``workload`` sections may be given by name instead of
inline: ``workload: chat_20k`` reads ``models/workloads/chat_20k.yaml``.

The broker and the store are one class per ``kind``: a field of another kind
is refused with a message naming the field and the kind, and an override that
changes the kind (``architecture.broker.kind=kafka``) drops the fields of the
old kind that the new one lacks, unless the overrides set them themselves.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from sim.scenario.errors import format_validation_error
from sim.scenario.schema import Scenario, field_model, kinds_at, section_kinds


class ScenarioError(ValueError):
    """A user error in a scenario: names the field, the value and what is allowed."""


@dataclass(frozen=True)
class PresetInfo:
    name: str
    path: Path
    description: str
    kind: str


def models_dirs() -> list[Path]:
    """Folders searched for presets, in order."""
    dirs: list[Path] = []
    for entry in os.environ.get("MSGSIM_MODELS_PATH", "").split(os.pathsep):
        if entry:
            dirs.append(Path(entry))
    checkout = Path(__file__).resolve().parent.parent / "models"
    if checkout.is_dir():
        dirs.append(checkout)
    else:  # installed without a checkout: the models package data
        try:
            installed = Path(str(resources.files("models")))
        except ModuleNotFoundError:
            installed = None
        if installed is not None and installed.is_dir():
            dirs.append(installed)
    return dirs


def _yaml_files(subdir: str | None = None) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for root in models_dirs():
        base = root / subdir if subdir else root
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*.yaml")):
            if "calibration" in path.relative_to(root).parts:
                continue
            found.setdefault(path.stem, path)
    return found


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ScenarioError(f"{path}: not valid YAML{where}: {problem}") from None
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot be read: {exc.strerror}") from None
    if not isinstance(data, dict):
        raise ScenarioError(f"{path}: expected a mapping of scenario sections at the top level")
    return data


def _scenario_files() -> dict[str, Path]:
    files = _yaml_files()
    return {
        name: path
        for name, path in files.items()
        if path.parent.name not in ("workloads", "architectures", "sweeps")
    }


def list_presets() -> list[PresetInfo]:
    """Every scenario preset with its one-line description, sorted by name."""
    infos = []
    for name, path in sorted(_scenario_files().items()):
        data = _read_yaml(path)
        description = str(data.get("description", "")).strip()
        infos.append(PresetInfo(name, path, description, path.parent.name))
    return infos


def resolve(name_or_path: str | os.PathLike[str]) -> Path:
    """The YAML file a scenario name or path refers to."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or candidate.exists():
        if not candidate.is_file():
            raise ScenarioError(f"scenario file {str(candidate)!r} does not exist")
        return candidate
    files = _scenario_files()
    name = str(name_or_path)
    if name in files:
        return files[name]
    close = difflib.get_close_matches(name, files, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ScenarioError(
        f"unknown preset {name!r}.{hint} Known presets: {', '.join(sorted(files))} "
        f"(or give a path to a .yaml file)"
    )


def _section_by_name(section: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    folder = {"architecture": "architectures", "workload": "workloads"}[section]
    files = _yaml_files(folder)
    if value not in files:
        raise ScenarioError(
            f"{section}: unknown {section} preset {value!r}; known: "
            f"{', '.join(sorted(files)) or '(none)'}"
        )
    return _read_yaml(files[value])


def load_scenario(
    name_or_path: str | os.PathLike[str] | Mapping[str, Any],
    overrides: Mapping[str, Any] | None = None,
) -> Scenario:
    """Load and validate a scenario.

    Args:
        name_or_path: a preset name, a path to a YAML file, or an already parsed mapping.
        overrides: dotted paths to new values, applied before validation,
            e.g. ``{"workload.users": 10_000, "architecture.gateway.instances": 8}``.

    Raises:
        ScenarioError: a bad preset name, YAML, field or value, with one message
            that names the field, the value given and what is allowed.
    """
    if isinstance(name_or_path, Mapping):
        raw = dict(name_or_path)
        origin = "scenario"
    else:
        path = resolve(name_or_path)
        raw = _read_yaml(path)
        raw.setdefault("name", path.stem)
        origin = str(path)
    for section in ("architecture", "workload"):
        if section in raw:
            raw[section] = _section_by_name(section, raw[section])
    if overrides:
        raw = apply_overrides(raw, overrides)
    return validate(raw, origin)


def validate(raw: Mapping[str, Any], origin: str = "scenario") -> Scenario:
    """Validate a raw mapping as a :class:`Scenario`, or raise :class:`ScenarioError`."""
    try:
        return Scenario.model_validate(raw)
    except ValidationError as exc:
        raise ScenarioError(format_validation_error(exc, origin)) from None


def parse_assignment(text: str) -> tuple[str, Any]:
    """Parse a CLI ``key=value``; the value is read as YAML (``8``, ``true``, ``{dist: ...}``)."""
    if "=" not in text:
        raise ScenarioError(f"--set expects key=value, got {text!r}")
    key, _, value = text.partition("=")
    key = key.strip()
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError:
        parsed = value
    return key, parsed


def apply_overrides(raw: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``raw`` with each dotted path set to its value.

    Unknown paths are rejected here, with the nearest known field suggested.
    """
    result = _deep_copy(raw)
    given: list[tuple[str, ...]] = []  # the paths set so far by these overrides
    for dotted, value in overrides.items():
        parts = dotted.split(".")
        _check_path(parts, dotted)
        node: Any = result
        for part in parts[:-1]:
            if isinstance(node, list):
                node = node[int(part)]
                continue
            child = node.get(part)
            if not isinstance(child, dict | list):
                child = {}
                node[part] = child
            node = child
        last = parts[-1]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            if last == "kind":
                _drop_othersection_kinds(node, parts[:-1], value, given)
            node[last] = value
        given.append(tuple(parts))
    return result


def _drop_othersection_kinds(
    section: dict[str, Any], path: list[str], kind: Any, given: list[tuple[str, ...]]
) -> None:
    """Switching the kind of a section that is one class per kind (broker, store) drops
    the fields the section had that the new kind lacks: they were the old kind's. Fields
    that the overrides set themselves stay, to be validated against the new kind."""
    found = kinds_at(path)
    if found is None:
        return
    kinds, default = found
    new = kinds.get(str(kind))
    if new is None or str(section.get("kind", default)) == str(kind):
        return  # an unknown kind (refused by validation), or no change
    prefix = tuple(path)
    for key in list(section):
        here = (*prefix, key)
        overridden = any(p[: len(here)] == here or here[: len(p)] == p for p in given)
        if key not in new.model_fields and not overridden:
            del section[key]


def _deep_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_deep_copy(v) for v in value]
    return value


def _check_path(parts: list[str], dotted: str) -> None:
    model: type[BaseModel] | None = Scenario
    kinds: dict[str, type[BaseModel]] | None = None
    walked: list[str] = []
    for part in parts:
        if kinds is not None:
            # a section of one class per kind: a field of any kind passes here, and
            # validation refuses it if the section's kind lacks it
            fields = {n: f for member in kinds.values() for n, f in member.model_fields.items()}
        elif model is not None:
            fields = model.model_fields
        else:
            return  # inside a distribution or a list: validated later
        if part not in fields:
            close = difflib.get_close_matches(part, fields, n=1)
            hint = f" (did you mean {'.'.join([*walked, close[0]])!r}?)" if close else ""
            where = ".".join(walked) or "the scenario"
            which = " (of all kinds)" if kinds is not None else ""
            raise ScenarioError(
                f"unknown field {dotted!r}{hint}; fields of {where}{which}: {', '.join(fields)}"
            )
        walked.append(part)
        kinds = section_kinds(fields[part])
        model = field_model(fields[part])


def with_overrides(scenario: Scenario, overrides: Mapping[str, Any]) -> Scenario:
    """A new scenario with dotted-path overrides applied and validated."""
    raw = scenario.model_dump(mode="json", by_alias=True)
    return validate(apply_overrides(raw, overrides), scenario.name)
