"""The learning-rate sweeps of `make tune`: one row per run, F1 on the held-out questions.

Reads `results/<scale>/tuning/<optimizer>/<run>/` (complete runs) and writes
`results/<scale>/tuning/tuning.csv` and `tuning.png`: held-out F1 against the learning rate,
one line per optimizer setting; and `budget.md`: per sweep, how many settings it ran for how many
epochs each, with its best held-out F1 and its lowest training loss. The demo configs cite these
files for the values they use.
"""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

import numpy as np

from secondorder.report.plotting import save_figure
from secondorder.runs import COMPLETE, read_logs

COLUMNS = ("sweep", "optimizer", "epochs", "lr", "hessian_power", "average_abs", "rho",
           "momentum", "heldout_f1", "heldout_exact", "heldout_HasAns_f1", "heldout_NoAns_f1",
           "final_train_loss", "train_time_s", "run_dir")


def tuning_rows(results_root: str | Path, scale: str) -> list[dict]:
    rows = []
    for done in sorted((Path(results_root) / scale / "tuning").glob(f"*/*/{COMPLETE}")):
        logs = read_logs(done.parent)
        opt = logs.config["optimizer"]
        losses = [r["loss"] for r in logs.metrics[-5:]]
        rows.append({
            "sweep": done.parent.parent.name, "optimizer": opt["name"],
            "epochs": logs.config["trainer"]["epochs"], "lr": float(opt["lr"]),
            "hessian_power": opt.get("hessian_power", ""), "average_abs": opt.get("average_abs", ""),
            "rho": opt.get("rho", ""),  # AdaSub's eigenvalue floor
            "momentum": opt.get("momentum", ""),  # SGD's
            "heldout_f1": logs.final["f1"], "heldout_exact": logs.final["exact"],
            "heldout_HasAns_f1": logs.final.get("HasAns_f1"),
            "heldout_NoAns_f1": logs.final.get("NoAns_f1"),
            "final_train_loss": float(np.mean(losses)) if losses else None,
            "train_time_s": logs.final.get("train_time_s"), "run_dir": str(done.parent)})
    return sorted(rows, key=lambda r: (r["sweep"], r["optimizer"], str(r["hessian_power"]),
                                       str(r["average_abs"]),
                                       -1.0 if r["rho"] == "" else float(r["rho"]),
                                       -1.0 if r["momentum"] == "" else float(r["momentum"]),
                                       r["lr"]))


def budget_markdown(rows: list[dict], started: dict[str, int] | None = None) -> str:
    """One line per sweep: its settings x epochs (the tuning budget), the best held-out F1 and the
    lowest final training loss, each with the learning rate that gave it. `started`: runs begun
    per sweep, where more than finished (a diverged run stops without a result)."""
    lines = ["| sweep | optimizer | settings | epochs each | best held-out F1 (lr) "
             "| lowest training loss (lr) |", "|---|---|---|---|---|---|"]
    sweeps: dict[str, list[dict]] = {}
    for r in rows:
        sweeps.setdefault(r["sweep"], []).append(r)
    for sweep, rs in sweeps.items():
        epochs = sorted({int(r["epochs"]) for r in rs})
        best = max(rs, key=lambda r: r["heldout_f1"])
        # settings tied at the best F1 (all abstaining, say) are all named, or "every lr"
        tied = sorted({r["lr"] for r in rs if r["heldout_f1"] > best["heldout_f1"] - 0.01})
        best_lr = ("every lr" if 1 < len(tied) == len({r["lr"] for r in rs})
                   else ", ".join(f"{lr:g}" for lr in tied))
        unfinished = (started or {}).get(sweep, len(rs)) - len(rs)
        settings = f"{len(rs) + unfinished}" + (f" ({unfinished} unfinished)" if unfinished else "")
        finite = [r for r in rs if r["final_train_loss"] is not None
                  and np.isfinite(r["final_train_loss"])]
        low = min(finite, key=lambda r: r["final_train_loss"]) if finite else None
        lowest = f"{low['final_train_loss']:.2f} ({low['lr']:g})" if low else "none finite"
        lines.append(f"| {sweep} | {rs[0]['optimizer']} | {settings} "
                     f"| {', '.join(map(str, epochs))} | {best['heldout_f1']:.1f} "
                     f"({best_lr}) | {lowest} |")
    return "\n".join(lines) + "\n"


def write_tuning(results_root: str | Path, scale: str) -> list[Path]:
    """tuning.csv, budget.md and tuning.png (and .pdf): held-out F1 and final training loss
    against the learning rate; returns the paths written."""
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
    started = {d.name: sum(1 for run in d.iterdir() if (run / "config.yaml").exists())
               for d in out.iterdir() if d.is_dir()}
    (out / "budget.md").write_text(budget_markdown(rows, started))
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
    return [out / "tuning.csv", out / "budget.md", save_figure(fig, out / "tuning.png")]
