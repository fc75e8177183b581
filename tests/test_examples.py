"""The examples/ notebooks run, cell by cell, in a kernel of this interpreter, without error.

Each notebook is executed by nbclient as a user would run it (on the embedded demo
catalog); any cell that raises fails the test with the cell's error. The notebooks
are kept in git without outputs, which a second test asserts, so a diff shows
only the code and text that changed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))
KERNEL = "beamcat-tests"


def test_there_is_a_notebook_per_built_workflow():
    assert [p.name for p in NOTEBOOKS] == [
        "diffraction.ipynb",
        "photon.ipynb",
        "radiography.ipynb",
        "spice.ipynb",
        "stem4d.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_are_stored_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code, "a notebook without code"
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]


@pytest.fixture
def kernel(tmp_path, monkeypatch):
    """A kernel spec running this interpreter (``sys.executable``), found through JUPYTER_PATH."""
    spec = tmp_path / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "beamcat tests", "language": "python"})
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    return KERNEL


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_without_error(path, kernel, tmp_path):
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        kernel_name=kernel,
        timeout=600,  # per cell: a limit against a hang, not a pass/fail on speed
        resources={"metadata": {"path": str(tmp_path)}},  # cwd: nothing written beside it
    )
    client.execute()  # raises CellExecutionError naming the cell on any error
    errors = [
        output
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert errors == []
