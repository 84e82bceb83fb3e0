"""Figures from run files: training-loss curves (the report's Figures 1-3 and 5) and peak
memory per optimizer (Figure 4)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from secondorder.report.plotting import save_figure
from secondorder.runs import read_jsonl


def _smooth(values: list[float], window: int) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    if window <= 1 or len(values) < window:
        return values
    kernel = np.ones(window) / window
    return np.convolve(values, kernel, mode="valid")


def loss_figure(runs: dict[str, Path], path: str | Path, *, smooth: int = 5, title: str = ""):
    """Training loss vs epoch, one line per run (label → run directory)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for label, run_dir in runs.items():
        records = read_jsonl(Path(run_dir) / "metrics.jsonl")
        if not records:
            continue
        epochs = [r["epoch"] for r in records]
        losses = _smooth([r["loss"] for r in records], smooth)
        ax.plot(epochs[len(epochs) - len(losses):], losses, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"training loss (moving mean of {smooth} logs)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, path)


def memory_figure(peaks: dict[str, float], path: str | Path, *, unit: str = "GiB", title: str = ""):
    """Bar chart of peak memory per optimizer (label → peak)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    labels = list(peaks)
    ax.bar(labels, [peaks[k] for k in labels], color="tab:blue")
    ax.set_ylabel(f"peak memory ({unit})")
    ax.set_title(title)
    return save_figure(fig, path)
