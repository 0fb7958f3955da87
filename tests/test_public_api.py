"""The public API is ``sim.__all__``: every name there exists, is documented, and is
cheap to import.

Users (notebooks, scripts, the docs' examples) reach msgsim only through
``import sim`` and these names, while the modules inside ``sim/`` move. So each
public name must exist and say what it does (a docstring, or a line in the
docstring of the module or namespace holding it), the namespaces (``sim.plots``,
``sim.stats``, ...) are held to the same rule, ``import sim`` must not load the
plotting library that only ``sim.plots`` and ``sim.write_report`` need, and the
examples in the documentation must not import internal modules either.
"""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

import sim

ROOT = Path(__file__).resolve().parent.parent
NAMESPACES = sorted(
    name for name in sim.__all__ if isinstance(getattr(sim, name), types.ModuleType)
)
#: docs that teach the public API; docs/architecture.md describes the internals themselves
USER_DOCS = sorted(
    [ROOT / "README.md", ROOT / "notebooks" / "README.md"]
    + [path for path in (ROOT / "docs").glob("*.md") if path.name != "architecture.md"]
)
INTERNAL_PACKAGES = sorted(init.parent.name for init in (ROOT / "sim").glob("*/__init__.py"))
INTERNAL_PATH = re.compile(rf"(?<![\w.])sim\.(?:{'|'.join(INTERNAL_PACKAGES)})\b[\w.]*")
PYTHON_BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def own_docstring(value: object) -> str | None:
    """The docstring written for ``value`` itself, not the signature a dataclass puts
    there when it has none (a class does not inherit ``__doc__``)."""
    doc = getattr(value, "__doc__", None)
    if not doc or (isinstance(value, type) and doc.startswith(f"{value.__name__}(")):
        return None
    return doc


def undocumented(holder: types.ModuleType, names: list[str]) -> list[str]:
    """Names of ``holder`` with no docstring of their own; a constant (a string, a
    tuple) has none, so the docstring of ``holder`` must name it instead."""
    missing = []
    for name in names:
        value = getattr(holder, name)
        if callable(value) or isinstance(value, types.ModuleType):
            if own_docstring(value) is None:
                missing.append(name)
        elif name not in (holder.__doc__ or ""):
            missing.append(name)
    return missing


def test_the_docstring_check_can_fail() -> None:
    """A function without a docstring, a bare dataclass and an unlisted constant are caught."""

    def bare() -> None:
        pass

    probe = types.ModuleType("probe", "Lists nothing.")
    info = type("Info", (), {"__doc__": "Info(name: 'str')"})  # as @dataclass writes it
    probe.__dict__.update(bare=bare, LIMIT=3, Info=info)
    assert undocumented(probe, ["bare", "LIMIT", "Info"]) == ["bare", "LIMIT", "Info"]


def test_every_public_name_exists() -> None:
    missing = [name for name in sim.__all__ if not hasattr(sim, name)]
    assert not missing, f"sim.__all__ lists names sim does not have: {missing}"
    assert len(set(sim.__all__)) == len(sim.__all__), "sim.__all__ lists a name twice"


def test_every_public_name_has_a_docstring() -> None:
    missing = undocumented(sim, list(sim.__all__))
    assert not missing, f"public names without a docstring: {missing}"


def test_the_module_docstring_lists_every_public_name() -> None:
    listed = set(re.findall(r"^\s{4}(\w+): ", sim.__doc__ or "", re.M))
    assert listed == set(sim.__all__), (
        f"in __all__, not in the docstring: {sorted(set(sim.__all__) - listed)}; "
        f"in the docstring, not in __all__: {sorted(listed - set(sim.__all__))}"
    )


@pytest.mark.parametrize("name", NAMESPACES)
def test_every_namespace_member_exists_and_is_documented(name: str) -> None:
    """``sim.plots`` and its siblings: a module object whose docstring lists its
    ``__all__``, every member documented."""
    namespace = getattr(sim, name)
    assert namespace.__name__ == f"sim.{name}"
    members = list(namespace.__all__)
    assert members, f"sim.{name} has no members"
    assert not [m for m in members if not hasattr(namespace, m)]
    assert not undocumented(namespace, members), f"sim.{name}: {undocumented(namespace, members)}"
    listed = set(re.findall(r"^(\w+): ", inspect.getdoc(namespace) or "", re.M))
    assert listed == set(members), f"sim.{name}'s docstring lists {sorted(listed)}, has {members}"


def test_the_expected_namespaces_exist() -> None:
    assert NAMESPACES == ["calibration", "plots", "stats", "theory"]


def _fresh_interpreter(code: str) -> str:
    """Run ``code`` in a new interpreter importing this tree's ``sim``; its stdout."""
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_import_sim_only_imports() -> None:
    """``import sim`` loads no plotting library and makes no namespace; the first use
    of ``sim.plots`` makes it, loads matplotlib, and keeps it for later lookups."""
    out = _fresh_interpreter(
        "import sys, sim\n"
        "print(sim.__file__)\n"
        "print('matplotlib' in sys.modules, 'sim.output' in sys.modules)\n"
        "print(sorted(n for n in ('plots', 'stats', 'theory', 'calibration') if n in vars(sim)))\n"
        "figures = sim.plots\n"
        "print('matplotlib' in sys.modules, sim.plots is figures)\n"
    )
    where, before, made, after = out.splitlines()
    assert Path(where).is_relative_to(ROOT / "sim")
    assert before == "False False", "import sim loaded matplotlib or sim.output"
    assert made == "[]", f"import sim made namespaces {made}"
    assert after == "True True"


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = sim.no_such_name  # type: ignore[attr-defined]


@pytest.mark.parametrize("path", USER_DOCS, ids=[p.relative_to(ROOT).as_posix() for p in USER_DOCS])
def test_user_docs_name_no_internal_module(path: Path) -> None:
    found = INTERNAL_PATH.findall(path.read_text())
    assert not found, f"{path.name} names internal modules, not the public API: {found}"


@pytest.mark.parametrize(
    "path",
    sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")]),
    ids=lambda path: path.name,
)
def test_python_examples_import_only_sim(path: Path) -> None:
    blocks = PYTHON_BLOCK.findall(path.read_text())
    found = [line for block in blocks for line in INTERNAL_PATH.findall(block)]
    found += re.findall(r"^[ \t]*from sim\b.*$", "\n".join(blocks), re.M)
    assert not found, f"{path.name}: examples reach past `import sim`: {found}"
