"""Figures 1-5 of the report `000_*` and the wall-clock comparison, from run files.

Each figure is written as PNG and PDF to `results/<scale>/figures/`. Curves are the training
loss per logged step (a trailing moving mean of `SMOOTH` records); where an experiment has
several seeds, the first one is drawn. A curve whose runs are missing is left out and named in
the figure's footnote, so a figure never silently shows less than it says.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from secondorder.report.paper import FIGURES, figure_curves
from secondorder.report.plotting import save_figure
from secondorder.report.tables import (
    MEMORY_KEYS,
    SMOOTH,
    eval_curve,
    loss_curve,
    run_costs,
    run_logs,
    smoothed,
)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out_dir: Path, name: str) -> Path:
    save_figure(fig, out_dir / f"{name}.pdf", close=False)
    return save_figure(fig, out_dir / f"{name}.png")


def _first_runs(results_root, scale, curves: dict[str, str]):
    """label -> the first complete run's logs; and the labels that have none."""
    found, missing = {}, []
    for label, experiment in curves.items():
        logs = run_logs(results_root, scale, experiment)
        if logs:
            found[label] = logs[0]
        else:
            missing.append(f"{label} ({scale}/{experiment})")
    return found, missing


def _footnote(fig, missing: list[str]) -> None:
    if missing:
        fig.text(0.01, 0.005, "not run yet: " + "; ".join(missing), fontsize=7, color="0.4",
                 va="bottom", wrap=True)


def _epoch_lines(ax, curve) -> None:
    """Dotted vertical lines at the steps where an epoch ends."""
    epochs = curve["epoch"]
    for k in range(1, int(np.floor(epochs.max() + 1e-9)) + 1):
        ends = np.nonzero(epochs >= k - 1e-9)[0]
        if ends.size and k < epochs.max() + 1e-9:
            ax.axvline(curve["step"][ends[0]], color="0.6", lw=0.7, ls=":")


def loss_figure(results_root, scale: str, name: str, out_dir: Path, *, zoom_last_epoch=False):
    """Training loss per step of the figure's curves (Figures 1, 2, 3, 5)."""
    plt = _pyplot()
    spec = FIGURES[name]
    found, missing = _first_runs(results_root, scale, figure_curves(name, scale))
    panels = 2 if zoom_last_epoch else 1
    fig, axes = plt.subplots(1, panels, figsize=(6.5 * panels, 4.2), squeeze=False)
    for label, logs in found.items():
        c = loss_curve(logs)
        for j, ax in enumerate(axes[0]):
            keep = np.ones_like(c["step"], dtype=bool)
            if j == 1:  # the zoom: the last epoch only
                keep = c["epoch"] > np.ceil(c["epoch"].max() - 1e-9) - 1
            ax.plot(c["step"][keep], smoothed(c["loss"])[keep], label=label, lw=1.2)
    if found:
        _epoch_lines(axes[0][0], loss_curve(next(iter(found.values()))))
    for j, ax in enumerate(axes[0]):
        ax.set_xlabel("optimizer step")
        ax.set_ylabel(f"training loss (moving mean of {SMOOTH} logs)")
        ax.grid(alpha=0.3)
        ax.set_title("last epoch" if j == 1 else "whole run", fontsize=9)
        if found:
            ax.legend(fontsize=8)
    fig.suptitle(f"{spec['title']} ({scale} scale)", fontsize=10)
    _footnote(fig, missing)
    return _save(fig, out_dir, name)


def memory_figure(results_root, scale: str, out_dir: Path, name: str = "figure4"):
    """Peak memory per optimizer as bars, each labelled with its ratio to AdamW (Figure 4)."""
    plt = _pyplot()
    spec = FIGURES[name]
    found, missing = _first_runs(results_root, scale, figure_curves(name, scale))
    costs = {label: run_costs(logs) for label, logs in found.items()}
    costs = {k: v for k, v in costs.items() if "peak_memory_gib" in v}
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    labels = list(costs)
    peaks = [costs[k]["peak_memory_gib"] for k in labels]
    kind = MEMORY_KEYS.get(next((c["memory_kind"] for c in costs.values()), ""), "peak memory")
    bars = ax.bar(range(len(labels)), peaks, color="tab:blue")
    base = peaks[0] if peaks else None
    for bar, peak in zip(bars, peaks, strict=True):
        ax.annotate(f"{peak / base:.2f}× AdamW", (bar.get_x() + bar.get_width() / 2, peak),
                    ha="center", va="bottom", fontsize=9, xytext=(0, 2),
                    textcoords="offset points")
    ax.set_xticks(range(len(labels)), [lb.replace(" ", "\n", 1) for lb in labels], fontsize=8)
    ax.set_ylabel(f"peak memory, GiB ({kind})")
    ax.set_ylim(0, max(peaks, default=1) * 1.15)
    ax.set_title(f"{spec['title']} ({scale} scale)", fontsize=10)
    _footnote(fig, missing)
    return _save(fig, out_dir, name)


def wallclock_figure(results_root, scale: str, out_dir: Path, name: str = "wallclock"):
    """Training loss and dev F1 against training time: who wins per second, not per step."""
    plt = _pyplot()
    spec = FIGURES[name]
    found, missing = _first_runs(results_root, scale, figure_curves(name, scale))
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(15, 4.6))
    colours = plt.get_cmap("tab10").colors  # past 10 lines the colours repeat, dashed
    for i, (label, logs) in enumerate(found.items()):
        colour, style = colours[i % len(colours)], "-" if i < len(colours) else "--"
        c = loss_curve(logs)
        a1.plot(c["time"] / 60, smoothed(c["loss"]), style, label=label, lw=1.2, color=colour)
        e = eval_curve(logs)
        a2.plot(e["time"] / 60, e["f1"], "o" + style, color=colour, label=label, ms=4)
    a1.set_ylabel(f"training loss (moving mean of {SMOOTH} logs)")
    a2.set_ylabel("dev F1")
    for ax in (a1, a2):
        ax.set_xlabel("training time (minutes, evaluation excluded)")
        ax.grid(alpha=0.3)
    if found:  # one legend for both panels, beside them, where it hides no line
        a2.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.suptitle(f"{spec['title']} ({scale} scale)", fontsize=10)
    _footnote(fig, missing)
    return _save(fig, out_dir, name)


def write_figures(results_root, scale: str) -> list[Path]:
    """Every figure of the report at `scale`: results/<scale>/figures/<name>.{png,pdf}."""
    out_dir = Path(results_root) / scale / "figures"
    return [
        loss_figure(results_root, scale, "figure1", out_dir),
        loss_figure(results_root, scale, "figure2", out_dir),
        loss_figure(results_root, scale, "figure3", out_dir),
        memory_figure(results_root, scale, out_dir),
        loss_figure(results_root, scale, "figure5", out_dir, zoom_last_epoch=True),
        wallclock_figure(results_root, scale, out_dir),
    ]
