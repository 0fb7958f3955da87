"""The project's own files stay consistent: dependencies, README, documented defaults."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel

from sim.scenario.schema import Scenario

ROOT = Path(__file__).resolve().parent.parent

#: conda-forge spells some packages differently, and splits dask[distributed]
CONDA_NAMES = {"dask[distributed]": ["dask", "distributed"]}


def _requirement(spec: str) -> tuple[str, str]:
    match = re.match(r"^\s*([A-Za-z0-9_.\-\[\]]+)\s*(.*)$", spec)
    assert match, spec
    return match.group(1).lower(), match.group(2).replace(" ", "")


def test_environment_yml_lists_the_same_dependencies_and_bounds_as_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted: dict[str, str] = {}
    specs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        specs.extend(extra)
    for spec in specs:
        name, bound = _requirement(spec)
        for conda_name in CONDA_NAMES.get(name, [name]):
            wanted[conda_name] = bound
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    have: dict[str, str] = {}
    for dep in env["dependencies"]:
        if isinstance(dep, str) and not dep.startswith(("python", "pip")):
            name, bound = _requirement(dep)
            have[name] = bound
    assert have == wanted


def test_readme_starts_with_the_two_commands() -> None:
    head = "\n".join((ROOT / "README.md").read_text().splitlines()[:30])
    assert "make demo" in head and "make test" in head


def _default_fields(model: type[BaseModel], prefix: str = "") -> list[str]:
    paths = []
    for name, field in model.model_fields.items():
        annotation: Any = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            paths.extend(_default_fields(annotation, f"{prefix}{name}."))
        elif field.discriminator == "kind":  # a class per kind (broker, store): all fields
            for member in get_args(annotation):
                paths.extend(_default_fields(member, f"{prefix}{name}."))
        elif name not in ("name", "description", "faults"):
            paths.append(f"{prefix}{name}")
    return list(dict.fromkeys(paths))


def test_every_default_parameter_has_a_row_in_docs_parameters() -> None:
    text = (ROOT / "docs" / "parameters.md").read_text()
    missing = [path for path in _default_fields(Scenario) if f"`{path}`" not in text]
    assert not missing, f"defaults without a documented source: {missing}"


def test_one_version_source_read_by_the_packaging_metadata() -> None:
    """``sim/_version.py`` is the only place the version is written."""
    from importlib import metadata

    import sim
    from sim._version import __version__

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {
        "attr": "sim._version.__version__"
    }
    assert sim.__version__ == __version__ == metadata.version("msgsim")
    written = [
        p.relative_to(ROOT)
        for p in (ROOT / "sim").rglob("*.py")
        if re.search(r"^__version__\s*=", p.read_text(), re.M)
    ]
    assert written == [Path("sim/_version.py")]


def test_license_file_matches_pyproject_and_changelog_names_the_version() -> None:
    from sim._version import __version__

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"## [{__version__}]" in changelog and "## [Unreleased]" in changelog
