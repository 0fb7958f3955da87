"""Every notebook runs top to bottom, and is stored without outputs.

Notebooks are documentation that runs: each one is executed in a real Jupyter
kernel with small parameters (``MSGSIM_NOTEBOOK_SMALL=1``), so that an API change
that breaks one fails here. They are stored without outputs and execution counts,
so that their diffs show only what was written.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
KERNEL_NAME = "python3"
CELL_TIMEOUT_S = 600

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
    """Run in a fresh kernel from the notebook's folder; any cell error fails the test."""
    _use_this_interpreter_as_kernel(monkeypatch, tmp_path)
    monkeypatch.setenv("MSGSIM_NOTEBOOK_SMALL", "1")  # the kernel inherits the environment
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
