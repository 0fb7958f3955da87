"""Every notebook runs top to bottom, is stored without outputs, and uses only ``sim``'s
public names.

Notebooks are documentation that runs: each one is executed in a real Jupyter
kernel with small parameters (``MSGSIM_NOTEBOOK_SMALL=1``), so that an API change
that breaks one fails here. They are stored without outputs and execution counts,
so that their diffs show only what was written. They reach the package only through
``import sim`` and the names of ``sim.__all__``: the folders inside ``sim/`` are
internal and move, and a notebook that named one would break, or teach its reader
a path that no longer exists.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

import sim

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
KERNEL_NAME = "python3"
CELL_TIMEOUT_S = 600

#: the packages inside ``sim/`` (core, model, studies, ...): internal, free to move
INTERNAL_PACKAGES = sorted(init.parent.name for init in (ROOT / "sim").glob("*/__init__.py"))
#: ``sim.core``, ``sim.model.checker``, ... named anywhere: in code, in a string, in prose
INTERNAL_PATH = re.compile(rf"(?<![\w.])sim\.(?:{'|'.join(INTERNAL_PACKAGES)})\b[\w.]*")
#: an import of ``sim`` other than ``import sim`` itself
OTHER_IMPORT = re.compile(r"^\s*(?:from\s+sim\b.*|import\s+sim\.\S*|import\s+sim\s+as\b.*)$", re.M)
#: ``sim.NAME`` and, for a namespace such as ``sim.plots``, ``sim.NAME.MEMBER``
PUBLIC_NAME = re.compile(r"(?<![\w.])sim\.(\w+)(?:\.(\w+))?")

each_notebook = pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])


def _use_this_interpreter_as_kernel(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    """Make kernel ``python3`` run ``sys.executable``, whatever else is installed.

    A ``python3`` kernelspec in the user's Jupyter folders could point at another
    interpreter, one that cannot import ``sim``; ``JUPYTER_PATH`` is searched before
    every other folder, so a spec written there wins. ``IPYTHONDIR`` keeps the
    user's IPython profile and startup files out of the kernel.
    """
    spec_dir = home / "jupyter" / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (msgsim tests)",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    monkeypatch.setenv("JUPYTER_PATH", str(home / "jupyter"))
    monkeypatch.setenv("IPYTHONDIR", str(home / "ipython"))


@each_notebook
def test_notebook_executes_without_errors_with_small_parameters(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run in a fresh kernel from the notebook's folder; any cell error fails the test.

    The kernel imports the ``sim`` of this checkout, the one under test: from the
    notebook's folder it would otherwise find whichever ``sim`` is installed, which
    in a second working tree of the repository is another tree's.
    """
    _use_this_interpreter_as_kernel(monkeypatch, tmp_path)
    monkeypatch.setenv("MSGSIM_NOTEBOOK_SMALL", "1")  # the kernel inherits the environment
    search_path = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(search_path))
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_S,
        kernel_name=KERNEL_NAME,
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()  # raises CellExecutionError, with the traceback, on the first failing cell
    errors = [
        f"cell {index}: {output.get('ename')}: {output.get('evalue')}"
        for index, cell in enumerate(notebook.cells)
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert not errors, f"{path.name}: {errors}"


@each_notebook
def test_notebook_is_stored_without_outputs_or_execution_counts(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    dirty = [
        index
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]
    assert not dirty, (
        f"{path.name}: code cells {dirty} hold outputs or execution counts; "
        "clear them before saving (JupyterLab: Edit > Clear Outputs of All Cells)"
    )


@each_notebook
def test_notebook_has_one_parameters_cell_that_honours_small_mode(path: Path) -> None:
    """Sizes live in one cell tagged ``parameters``, which reads ``MSGSIM_NOTEBOOK_SMALL``.

    Without it the execution test above would run the notebook at full size.
    """
    notebook = nbformat.read(path, as_version=4)
    tagged = [
        cell
        for cell in notebook.cells
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", [])
    ]
    assert len(tagged) == 1, f"{path.name}: {len(tagged)} cells tagged 'parameters', expected 1"
    assert "MSGSIM_NOTEBOOK_SMALL" in tagged[0].source, (
        f"{path.name}: the parameters cell does not read MSGSIM_NOTEBOOK_SMALL"
    )


def internal_references(text: str) -> list[str]:
    """Internal module paths that ``text`` imports or names."""
    return INTERNAL_PATH.findall(text) + [m.strip() for m in OTHER_IMPORT.findall(text)]


def unknown_public_names(text: str) -> list[str]:
    """``sim.X`` (and ``sim.NAMESPACE.X``) in ``text`` that are not public names."""
    unknown = []
    for match in PUBLIC_NAME.finditer(text):
        name, member = match.groups()
        namespace = getattr(sim, name, None) if name in sim.__all__ else None
        if name not in sim.__all__ or (
            member is not None
            and isinstance(namespace, type(sim))
            and member not in namespace.__all__
        ):
            unknown.append(match.group(0))
    return unknown


def test_the_rules_catch_internal_paths_and_unknown_names() -> None:
    """The checks below can fail: each form of reaching past the facade is caught."""
    assert internal_references("from sim.core.statistics import summarize") != []
    assert internal_references("import sim.output.plots") != []
    assert internal_references("table = sim.studies.experiment.summaries(r)") != []
    assert internal_references("from sim import run") != []
    assert internal_references("import sim\nsim.run(sc)\nmsgsim.core") == []
    assert unknown_public_names("sim.simulate(sc)") == ["sim.simulate"]
    assert unknown_public_names("sim.plots.no_such_figure(res)") == ["sim.plots.no_such_figure"]
    assert unknown_public_names("sim.plots.timeline(res); sim.Result.summary") == []


@each_notebook
def test_notebook_names_no_internal_module(path: Path) -> None:
    """No cell, code or prose, imports or names a module inside ``sim/``; code imports
    the package as ``import sim`` only."""
    notebook = nbformat.read(path, as_version=4)
    found = [
        f"cell {index} ({cell.cell_type}): {reference}"
        for index, cell in enumerate(notebook.cells)
        for reference in internal_references(cell.source)
    ]
    assert not found, f"{path.name} reaches past the public API of sim: {found}"


@each_notebook
def test_notebook_uses_only_documented_names(path: Path) -> None:
    """Every ``sim.NAME`` a cell uses or mentions is in ``sim.__all__`` (and every
    ``sim.plots.NAME`` in that namespace's ``__all__``), so ``docs/api.md`` covers it."""
    notebook = nbformat.read(path, as_version=4)
    unknown = [
        f"cell {index}: {name}"
        for index, cell in enumerate(notebook.cells)
        for name in unknown_public_names(cell.source)
    ]
    assert not unknown, f"{path.name} uses names that sim does not export: {unknown}"
