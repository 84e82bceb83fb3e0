"""Each notebook is a jupytext pair: the .ipynb (to open) and the .py (to review) hold the same cells."""

from __future__ import annotations

from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext")

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
PAIRS = sorted(NOTEBOOKS.glob("*.py"))


def test_every_notebook_has_both_files():
    assert [p.stem for p in PAIRS] == ["01_tables", "02_figures", "03_spectra"]
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == [p.stem for p in PAIRS]


@pytest.mark.parametrize("script", PAIRS, ids=lambda p: p.stem)
def test_pair_has_the_same_cells(script):
    def cells(path):
        return [(c.cell_type, c.source.strip()) for c in jupytext.read(path).cells]

    assert cells(script) == cells(script.with_suffix(".ipynb")), (
        f"{script.name} and its .ipynb differ: run `jupytext --sync {script}`"
    )
