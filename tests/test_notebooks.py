"""Notebooks in git: no outputs, a parameters cell with the book's raw knobs, in the toc."""

import ast
import json
from pathlib import Path

import pytest

from lib.core.paths import REPO_ROOT
from lib.reproduce import chapters_in_toc, parameter_names

NOTEBOOKS = sorted((REPO_ROOT / "chapters").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stripped_of_outputs(path: Path):
    nb = json.loads(path.read_text())
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code":
            assert not cell.get("outputs"), f"{path.name} cell {i} has outputs: strip them"
            assert cell.get("execution_count") is None, f"{path.name} cell {i} has a count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_cell_has_a_unique_id(path: Path):
    """nbformat 4.5 cell ids (a missing one is a warning now and an error in later nbformat;
    JupyterLab and papermill key cells by them)."""
    nb = json.loads(path.read_text())
    ids = [cell.get("id") for cell in nb["cells"]]
    missing = [i for i, cid in enumerate(ids) if not cid]
    assert not missing, (f"{path.name}: cells {missing} have no id "
                         "(nbformat.validator.normalize adds them)")
    assert len(set(ids)) == len(ids), f"{path.name}: cell ids repeat"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_first_code_cell_is_the_parameters_cell_with_raw_knobs(path: Path):
    import nbformat

    nb = nbformat.read(path, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert "parameters" in first.metadata.get("tags", []), "first code cell must be tagged"
    names = parameter_names(nb)
    assert {"scale", "device", "seed"} <= set(names)
    for node in ast.parse(first.source).body:  # raw knobs only: papermill won't recompute
        assert isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant), (
            f"{path.name}: the parameters cell may hold only literal assignments")
    assert dict(zip(names, [n.value.value for n in ast.parse(first.source).body],
                    strict=True))["scale"] == "tutorial"


def test_every_notebook_is_in_the_toc_and_the_toc_is_not_empty():
    listed = chapters_in_toc()
    assert "foundations" in listed
    assert sorted(listed) == sorted(p.stem for p in NOTEBOOKS), "a chapter outside the toc?"
