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
# # Figures 1-5: training loss and peak memory per optimizer
#
# Thin notebook over `secondorder.report.figures`, the same code as `make report`.

# %%
from pathlib import Path

from IPython.display import Image, display

from secondorder.report.figures import loss_figure, memory_figure
from secondorder.report.tables import comparison_table, run_costs, runs_of

SCALE = "demo"
RESULTS = Path("..") / "results"
OUT = Path("figures")
OUT.mkdir(exist_ok=True)

# %%
rows, _ = comparison_table("table1", RESULTS, SCALE, paper_dir=RESULTS / "paper")
runs = {r["row"]: runs_of(RESULTS, SCALE, r["experiment"]) for r in rows}
runs = {label: dirs[0] for label, dirs in runs.items() if dirs}
display(Image(loss_figure(runs, OUT / "loss.png", title=f"training loss ({SCALE})")))

# %%
peaks = {label: run_costs(d).get("peak_memory_gib") for label, d in runs.items()}
peaks = {k: v for k, v in peaks.items() if v is not None}
if peaks:
    display(Image(memory_figure(peaks, OUT / "memory.png", title=f"peak memory ({SCALE})")))
