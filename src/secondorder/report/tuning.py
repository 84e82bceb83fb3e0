"""The learning-rate sweeps of `make tune`: one row per run, F1 on the held-out questions.

Reads `results/<scale>/tuning/<optimizer>/<run>/` (complete runs) and writes
`results/<scale>/tuning/tuning.csv` and `tuning.png`: held-out F1 against the learning rate,
one line per optimizer setting. The demo configs cite this file for the values they use.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from secondorder.report.plotting import save_figure
from secondorder.runs import COMPLETE, read_logs

COLUMNS = ("optimizer", "lr", "hessian_power", "average_abs", "heldout_f1", "heldout_exact",
           "heldout_HasAns_f1", "heldout_NoAns_f1", "final_train_loss", "train_time_s", "run_dir")


def tuning_rows(results_root: str | Path, scale: str) -> list[dict]:
    rows = []
    for done in sorted((Path(results_root) / scale / "tuning").glob(f"*/*/{COMPLETE}")):
        logs = read_logs(done.parent)
        opt = logs.config["optimizer"]
        losses = [r["loss"] for r in logs.metrics[-5:]]
        rows.append({
            "optimizer": opt["name"], "lr": float(opt["lr"]),
            "hessian_power": opt.get("hessian_power", ""), "average_abs": opt.get("average_abs", ""),
            "heldout_f1": logs.final["f1"], "heldout_exact": logs.final["exact"],
            "heldout_HasAns_f1": logs.final.get("HasAns_f1"),
            "heldout_NoAns_f1": logs.final.get("NoAns_f1"),
            "final_train_loss": float(np.mean(losses)) if losses else None,
            "train_time_s": logs.final.get("train_time_s"), "run_dir": str(done.parent)})
    return sorted(rows, key=lambda r: (r["optimizer"], str(r["hessian_power"]),
                                       str(r["average_abs"]), r["lr"]))


def write_tuning(results_root: str | Path, scale: str) -> list[Path]:
    """tuning.csv and tuning.png (and .pdf); returns the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = tuning_rows(results_root, scale)
    out = Path(results_root) / scale / "tuning"
    out.mkdir(parents=True, exist_ok=True)
    with (out / "tuning.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    groups: dict[str, list[dict]] = {}
    for r in rows:
        label = r["optimizer"] if r["optimizer"] != "adahessian" else (
            f"adahessian k={r['hessian_power']}, " + ("|z*Hz| (official code)"
                                                      if r["average_abs"] else "z*Hz (Eq. 7)"))
        groups.setdefault(label, []).append(r)
    for label, rs in groups.items():
        ax.plot([r["lr"] for r in rs], [r["heldout_f1"] for r in rs], "o-", label=label)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("F1 on held-out training questions")
    ax.set_title(f"make tune ({scale} scale): one epoch per run", fontsize=10)
    ax.grid(alpha=0.3)
    if groups:
        ax.legend(fontsize=8)
    save_figure(fig, out / "tuning.pdf", close=False)
    return [out / "tuning.csv", save_figure(fig, out / "tuning.png")]
