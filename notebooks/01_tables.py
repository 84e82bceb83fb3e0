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
# Thin notebook: it calls `secondorder.report.tables` on the run files in `results/`, as
# `make report` does, so both show the same tables. `SCALE = "paper"` reads `results/paper/`
# (albert-base-v2 runs), `"demo"` reads `results/demo/` (`make reproduce`).

# %%
import os
from pathlib import Path

from IPython.display import Markdown, display

from secondorder.report.tables import comparison_table

SCALE = os.environ.get("SECONDORDER_SCALE", "demo")
RESULTS = Path(os.environ.get("SECONDORDER_RESULTS", Path("..") / "results"))

# %%
for table in ("table1", "table3"):
    rows, markdown = comparison_table(table, RESULTS, SCALE)
    display(Markdown(markdown))
