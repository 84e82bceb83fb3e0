"""What each table and figure of the report `000_*` is made of: rows and curves -> experiments.

Experiment names are relative to a scale: run `results/<scale>/<experiment>/<run>/` comes from
`configs/experiment/<scale>/<experiment>.yaml`. Table rows come from
`results/published/<table>.csv` (the paper's numbers, with the experiment of each row); the
figures are listed here. `scripts/reproduce.py` trains what they need; `scripts/report.py`
draws them.
"""

from __future__ import annotations

import csv
from pathlib import Path

from secondorder.paths import project_root

TABLES = ("table1", "table3")


def published_root() -> Path:
    """results/published of the checkout (`secondorder.paths`): the paper's numbers."""
    return project_root() / "results" / "published"

# the AdamW runs whose epoch-2 checkpoints the hand-offs start from: trained first
HANDOFF_SOURCES = ("table1_adamw", "table1_adamw_report_code")

TABLE1_CURVES = {  # Figure 1 and the wall-clock figure: the Table I optimizers
    "AdamW": "table1_adamw",
    "AdaHessian k=0.25": "table1_adahessian_k025",
    "AdaHessian k=0.5": "table1_adahessian_k05",
    "AdaHessian k=0.5, no clipping": "table1_adahessian_k05_no_clip",
    "hand-off (AdamW, then AdaHessian lr 3e-4)": "table3_handoff_lr3e-4",
    "AdaSub (15k questions)": "table1_adasub",
    "AdaSub (15k questions, 10 epochs)": "table1_adasub_10ep",
    "AdamW (15k questions, 10 epochs)": "table1_adamw_15k_10ep",
    "Sophia-H": "table1_sophia_h",
    "SOAP": "table1_soap",
    "Shampoo": "table1_shampoo",
}
PAPER_FIGURE1 = ("AdamW", "AdaHessian k=0.25", "AdaHessian k=0.5")  # the report's Figure 1
FIGURES: dict[str, dict] = {
    "figure1": {
        "title": "Figure 1: training loss, AdamW vs AdaHessian",
        "curves": {k: TABLE1_CURVES[k] for k in (*PAPER_FIGURE1, "AdaHessian k=0.5, no clipping")},
    },
    "figure2": {
        "title": "Figure 2: AdaHessian k=1, training loss at three learning rates",
        "curves": {"lr 5e-5": "figure2_adahessian_k1_lr5e-5",
                   "lr 3e-3": "figure2_adahessian_k1_lr3e-3",
                   "lr 1.5e-2": "figure2_adahessian_k1_lr1.5e-2"},
    },
    "figure3": {
        "title": "Figure 3: AdaHessian k=0.5, training loss at three learning rates",
        "curves": {"lr 5e-5": "figure3_adahessian_k05_lr5e-5",
                   "lr 3e-3": "figure3_adahessian_k05_lr3e-3",
                   "lr 1.5e-2": "figure3_adahessian_k05_lr1.5e-2"},
    },
    "figure4": {
        "title": "Figure 4: peak memory per optimizer",
        "curves": {**{k: TABLE1_CURVES[k] for k in PAPER_FIGURE1},
                   "AdaSub": TABLE1_CURVES["AdaSub (15k questions)"]},
    },
    "figure5": {
        "title": "Figure 5: the AdamW -> AdaHessian hand-off",
        "curves": {"AdamW": "table1_adamw",
                   "hand-off, AdaHessian lr 3e-3": "table3_handoff_lr3e-3",
                   "hand-off, AdaHessian lr 3e-4": "table3_handoff_lr3e-4",
                   "hand-off, AdaHessian lr 3e-5": "table3_handoff_lr3e-5"},
    },
    "wallclock": {
        "title": "Training loss and dev F1 against training time (Table I optimizers)",
        "curves": TABLE1_CURVES,
    },
}


def published(table: str, published_dir: str | Path | None = None,
              scale: str | None = None) -> list[dict[str, str]]:
    """The paper's rows of `table` (row, experiment, f1, exact, scales); with `scale`, only the
    rows that exist at that scale (`scales` empty: every scale; else space-separated names)."""
    with open(Path(published_dir or published_root()) / f"{table}.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return [r for r in rows if scale is None or not r.get("scales")
            or scale in r["scales"].split()]


def table_experiments(table: str, published_dir: str | Path | None = None,
                      scale: str | None = None) -> list[str]:
    return list(dict.fromkeys(r["experiment"] for r in published(table, published_dir, scale)))


def figure_curves(name: str, scale: str | None = None,
                  published_dir: str | Path | None = None) -> dict[str, str]:
    """The curves (label -> experiment) of figure `name` that exist at `scale` (a table row
    of other scales only, `scales` in results/published, is left out)."""
    elsewhere = {r["experiment"] for t in TABLES for r in published(t, published_dir)
                 if scale and r.get("scales") and scale not in r["scales"].split()}
    return {k: e for k, e in FIGURES[name]["curves"].items() if e not in elsewhere}


def needed_experiments(parts: tuple[str, ...] = ("table1", "table3", "figures"),
                       published_dir: str | Path | None = None,
                       scale: str | None = None) -> dict[str, str]:
    """Experiment -> "all" (every seed: Table I rows) or "first" (the first seed only), in an
    order that trains each hand-off's AdamW run first."""
    need: dict[str, str] = {}
    if "table1" in parts:
        need.update(dict.fromkeys(table_experiments("table1", published_dir, scale), "all"))
    if "table3" in parts:
        for e in table_experiments("table3", published_dir, scale):
            need.setdefault(e, "first")
    if "figures" in parts:
        for name in FIGURES:
            for e in figure_curves(name, scale, published_dir).values():
                need.setdefault(e, "first")
    first = [e for e in need if e in HANDOFF_SOURCES]
    return {e: need[e] for e in first + [e for e in need if e not in first]}
