"""The learning-rate sweeps of `make tune`: one row per run, F1 on the held-out questions.

Reads `results/<scale>/tuning/<optimizer>/<run>/` (complete runs) and writes
`results/<scale>/tuning/tuning.csv` and `tuning.png`: held-out F1 against the learning rate,
one line per optimizer setting. The demo configs cite this file for the values they use.
"""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

import numpy as np

from secondorder.report.plotting import save_figure
from secondorder.runs import COMPLETE, read_logs

COLUMNS = ("optimizer", "lr", "hessian_power", "average_abs", "rho", "momentum", "heldout_f1",
           "heldout_exact", "heldout_HasAns_f1", "heldout_NoAns_f1", "final_train_loss",
           "train_time_s", "run_dir")


def tuning_rows(results_root: str | Path, scale: str) -> list[dict]:
    rows = []
    for done in sorted((Path(results_root) / scale / "tuning").glob(f"*/*/{COMPLETE}")):
        logs = read_logs(done.parent)
        opt = logs.config["optimizer"]
        losses = [r["loss"] for r in logs.metrics[-5:]]
        rows.append({
            "optimizer": opt["name"], "lr": float(opt["lr"]),
            "hessian_power": opt.get("hessian_power", ""), "average_abs": opt.get("average_abs", ""),
            "rho": opt.get("rho", ""),  # AdaSub's eigenvalue floor
            "momentum": opt.get("momentum", ""),  # SGD's
            "heldout_f1": logs.final["f1"], "heldout_exact": logs.final["exact"],
            "heldout_HasAns_f1": logs.final.get("HasAns_f1"),
            "heldout_NoAns_f1": logs.final.get("NoAns_f1"),
            "final_train_loss": float(np.mean(losses)) if losses else None,
            "train_time_s": logs.final.get("train_time_s"), "run_dir": str(done.parent)})
    return sorted(rows, key=lambda r: (r["optimizer"], str(r["hessian_power"]),
                                       str(r["average_abs"]),
                                       -1.0 if r["rho"] == "" else float(r["rho"]),
                                       -1.0 if r["momentum"] == "" else float(r["momentum"]),
                                       r["lr"]))


def write_tuning(results_root: str | Path, scale: str) -> list[Path]:
    """tuning.csv and tuning.png (and .pdf): held-out F1 and final training loss against the
    learning rate; returns the paths written."""
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
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(14, 4.6))
    groups: dict[str, list[dict]] = {}
    for r in rows:
        label = {
            "adahessian": f"adahessian k={r['hessian_power']}, "
                          + ("|z*Hz| (official code)" if r["average_abs"] else "z*Hz (Eq. 7)"),
            "adasub": f"adasub rho={r['rho']}",
            "sgd": f"sgd momentum={r['momentum']}",
        }.get(r["optimizer"], r["optimizer"])
        groups.setdefault(label, []).append(r)
    # a colour and marker per line (20 colours; beyond them the pairs repeat, no line is dropped)
    colours = plt.get_cmap("tab20").colors
    styles = zip(itertools.cycle(colours), itertools.cycle("osd^v<>PX*"), strict=False)
    for (label, rs), (colour, marker) in zip(groups.items(), styles, strict=False):
        lrs = [r["lr"] for r in rs]
        ax.plot(lrs, [r["heldout_f1"] for r in rs], marker + "-", color=colour, label=label,
                alpha=0.8)
        ax2.plot(lrs, [r["final_train_loss"] for r in rs], marker + "-", color=colour, label=label)
    ax.set_ylabel("F1 on held-out training questions")
    ax2.set_ylabel("training loss, mean of the last 5 logs")
    for a in (ax, ax2):
        a.set_xscale("log")
        a.set_xlabel("learning rate")
        a.grid(alpha=0.3)
    if groups:  # one legend for both panels, beside them
        ax2.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.suptitle(f"make tune ({scale} scale): one epoch per run", fontsize=10)
    save_figure(fig, out / "tuning.pdf", close=False)
    return [out / "tuning.csv", save_figure(fig, out / "tuning.png")]
