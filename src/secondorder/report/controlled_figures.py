"""Figures of the controlled experiments of `002_*`: the quadratic cases (Figure 8) and the
scaled MLP (Figure 5 / Table 3)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from secondorder.report.plotting import save_figure

__all__ = ["figure_8", "figure_5"]


def figure_8(results: Mapping[int, Any], path: str | Path) -> Path:
    """Log gradient norm vs iteration, one panel per case (like the paper's Figure 8);
    `results`: case -> `secondorder.experiments.quadratic.CaseResult`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = sorted(results)
    fig, axes = plt.subplots(1, len(cases), figsize=(4.2 * len(cases), 3.6), squeeze=False)
    for ax, c in zip(axes[0], cases, strict=True):
        r = results[c]
        for label, norms in r.curves.items():
            y = np.asarray(norms, dtype=np.float64)
            y = np.where(y > 0, y, np.nan)
            ax.semilogy(np.arange(y.size), y, label=f"{label}, lr={r.lrs[label]:.3g}")
        ax.set_title(r.title, fontsize=9)
        ax.set_xlabel("Iteration")
        ax.set_ylabel("Gradient norm")
        ax.legend(fontsize=7)
    return save_figure(fig, path, dpi=120)


def figure_5(result: Any, path: str | Path) -> Path:
    """JS0 vs c and best test accuracy of SGD / Adam vs c (Figure 5(c) and Table 3);
    `result`: a `secondorder.experiments.mlp.MLPResult`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9.5, 3.6))
    a1.plot(result.cs, result.js0, "o-")
    a1.axhline(math.sqrt(math.log(2.0)), ls="--", c="gray", lw=0.8, label="sqrt(ln 2)")
    a1.set_xlabel("degree of block heterogeneity c")
    a1.set_ylabel("JS0 (mean pairwise JS distance)")
    a1.legend(fontsize=8)
    a1.set_title("JS0 of layer spectra at init", fontsize=10)
    for key, label, marker in (("sgd", "SGD", "o-"), ("adam", "Adam", "s-")):
        acc = np.asarray(result.best_acc[key], dtype=np.float64)
        line = a2.plot(result.cs, acc, marker, label=label)[0]
        bad = np.isnan(acc)
        if bad.any():
            a2.plot(
                np.asarray(result.cs)[bad],
                np.zeros(bad.sum()),
                "x",
                ms=9,
                color=line.get_color(),
                label=f"{label}: every lr diverged",
            )
    a2.set_xlabel("degree of block heterogeneity c")
    a2.set_ylabel("best test accuracy")
    a2.set_ylim(0.0, 1.02)
    a2.legend(fontsize=8)
    a2.set_title(f"digits, {result.settings.get('epochs')} epochs, best lr", fontsize=10)
    return save_figure(fig, path, dpi=120)
