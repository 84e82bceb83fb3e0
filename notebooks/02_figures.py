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
# # Figures 1-5 and the wall-clock comparison
#
# Thin notebook over `secondorder.report.figures`, the same code as `make report`: it writes
# `results/<scale>/figures/*.{png,pdf}` and shows them. Which runs each figure draws:
# `secondorder.report.paper.FIGURES`.

# %%
import os
from pathlib import Path

from IPython.display import Image, display

from secondorder.report.figures import write_figures

SCALE = os.environ.get("SECONDORDER_SCALE", "demo")
RESULTS = Path(os.environ.get("SECONDORDER_RESULTS", Path("..") / "results"))

# %%
for path in write_figures(RESULTS, SCALE):
    display(Image(str(path)))
