# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
# ---

# %% [markdown]
# # Blockwise Hessian spectra (`002_*`)
#
# Shows what `make spectrum` / `scripts/spectrum.py` wrote to `results/spectrum/<name>/`:
# the JS-distance heatmap, the density grid and JS0. It computes nothing itself.

# %%
import json
from pathlib import Path

from IPython.display import Image, display

SPECTRA = Path("..") / "results" / "spectrum"

# %%
for summary in sorted(SPECTRA.rglob("summary.json")):
    folder = summary.parent
    info = json.loads(summary.read_text())
    print(folder.relative_to(SPECTRA), "JS0 =", info.get("js0"))
    for name in ("js_heatmap.png", "densities.png"):
        if (folder / name).exists():
            display(Image(folder / name))
