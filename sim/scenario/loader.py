"""Finding, reading and overriding scenarios; turning bad input into one clear message.

A scenario name resolves to ``models/**/NAME.yaml`` (a checkout's ``models/``
folder, the installed ``models`` package data, or the folders listed in
``MSGSIM_MODELS_PATH``); a path to a YAML file works too. In a scenario file the
``architecture`` and ``workload`` sections may be given by name instead of
inline: ``workload: chat_20k`` reads ``models/workloads/chat_20k.yaml``.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from sim.scenario.schema import Scenario


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
            node[last] = value
    return result


def _deep_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_deep_copy(v) for v in value]
    return value


def _check_path(parts: list[str], dotted: str) -> None:
    model: type[BaseModel] | None = Scenario
    walked: list[str] = []
    for part in parts:
        if model is None:
            return  # inside a distribution or a list: validated later
        fields = model.model_fields
        if part not in fields:
            close = difflib.get_close_matches(part, fields, n=1)
            hint = f" (did you mean {'.'.join([*walked, close[0]])!r}?)" if close else ""
            where = ".".join(walked) or "the scenario"
            raise ScenarioError(
                f"unknown field {dotted!r}{hint}; fields of {where}: {', '.join(fields)}"
            )
        walked.append(part)
        annotation = fields[part].annotation
        model = (
            annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel)
            else None
        )


def format_validation_error(exc: ValidationError, origin: str = "scenario") -> str:
    """One readable message per problem: field path, value given, what is allowed."""
    lines = []
    for err in exc.errors(include_url=False):
        loc = _location(err["loc"])
        kind = err["type"]
        given = err.get("input")
        if kind == "extra_forbidden":
            parent = _model_at(err["loc"][:-1])
            allowed = list(parent.model_fields) if parent else []
            close = difflib.get_close_matches(str(err["loc"][-1]), allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            lines.append(
                f"{loc}: unknown field{hint}; allowed here: {', '.join(allowed) or '(none)'}"
            )
        elif kind == "enum":
            expected = err.get("ctx", {}).get("expected", "")
            lines.append(f"{loc}: {given!r} is not allowed; allowed: {expected}")
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


def _location(loc: Iterable[Any]) -> str:
    parts = []
    for item in loc:
        text = str(item)
        # pydantic adds union branch and validator names; they mean nothing to users
        if text.startswith("function-") or text in (
            "constant",
            "exponential",
            "lognormal",
            "gamma",
            "pareto",
            "zipf",
            "empirical",
            "mixture",
        ):
            continue
        parts.append(text)
    return ".".join(parts) or "scenario"


def _model_at(loc: Iterable[Any]) -> type[BaseModel] | None:
    model: type[BaseModel] | None = Scenario
    for item in loc:
        if model is None or not isinstance(item, str) or item not in model.model_fields:
            return None
        annotation = model.model_fields[item].annotation
        model = (
            annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel)
            else None
        )
    return model


def with_overrides(scenario: Scenario, overrides: Mapping[str, Any]) -> Scenario:
    """A new scenario with dotted-path overrides applied and validated."""
    raw = scenario.model_dump(mode="json", by_alias=True)
    return validate(apply_overrides(raw, overrides), scenario.name)
