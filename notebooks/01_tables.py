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
# # Tables I and III: our runs next to the report's numbers
#
# Thin notebook: it calls `secondorder.report` on the run files in `results/`, exactly as
# `make report` does. Open with Jupyter + jupytext (`jupytext --to notebook 01_tables.py`).
# `SCALE = "paper"` reads `results/paper/` (albert-base-v2 runs), `"demo"` reads
# `results/demo/`.

# %%
from pathlib import Path

from IPython.display import Markdown, display

from secondorder.report.tables import comparison_table

SCALE = "demo"
RESULTS = Path("..") / "results"

# %%
for table in ("table1", "table3"):
    rows, markdown = comparison_table(table, RESULTS, SCALE, paper_dir=RESULTS / "paper")
    display(Markdown(markdown))
