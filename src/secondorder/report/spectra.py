"""Figures of blockwise Hessian spectra: the JS-distance heatmap and one density panel per block."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from secondorder.curvature.lanczos import density
from secondorder.report.plotting import save_figure

__all__ = ["heatmap_figure", "density_grid_figure", "block_densities_figure"]


def heatmap_figure(
    names: Sequence[str],
    matrix: np.ndarray,
    path: str | Path,
    *,
    title: str | None = None,
    vmax: float | None = None,
) -> Path:
    """Save a heatmap of a pairwise distance matrix (like the paper's Figure 4) as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mat = np.asarray(matrix, dtype=np.float64)
    n = len(names)
    size = max(4.0, 0.45 * n + 2.0)
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    im = ax.imshow(mat, cmap="viridis", vmin=0.0, vmax=vmax)
    ax.set_xticks(range(n), labels=list(names), rotation=90, fontsize=8)
    ax.set_yticks(range(n), labels=list(names), fontsize=8)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="JS distance")
    if title:
        ax.set_title(title)
    return save_figure(fig, path, dpi=120)


def density_grid_figure(spectra, path: str | Path, *, title: str | None = None,
                        ncols: int = 6, points: int = 2000) -> Path:
    """One small log-scale density panel per block, each on its own Ritz range (cf. the paper)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from secondorder.curvature.lanczos import density

    blocks = list(spectra.blocks.values())
    ncols = max(1, min(ncols, len(blocks)))
    nrows = math.ceil(len(blocks) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.7 * ncols, 2.2 * nrows + 0.6), squeeze=False)
    sd = math.sqrt(spectra.sigma2)
    for ax, b in zip(axes.flat, blocks, strict=False):
        width = b.lambda_max - b.lambda_min
        if spectra.scale_by_range:
            sd = math.sqrt(spectra.sigma2 * max(1.0, width))
        pad = 0.05 * width + 5.0 * sd
        grid = np.linspace(b.lambda_min - pad, b.lambda_max + pad, points)
        rho = density(b.runs, grid, sigma2=spectra.sigma2, scale_by_range=spectra.scale_by_range)
        top = float(rho.max())
        ax.semilogy(grid, np.maximum(rho, 1e-12 * top), lw=0.8)
        ax.set_ylim(1e-12 * top, 3.0 * top)
        ax.set_title(f"{b.name} (d={b.dim})", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.xaxis.get_offset_text().set_fontsize(6)
    for ax in axes.flat[len(blocks):]:
        ax.axis("off")
    fig.supxlabel("eigenvalue", fontsize=8)
    fig.supylabel("density", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    return save_figure(fig, path, dpi=110)


def block_densities_figure(spec, path: str | Path, *, title: str | None = None) -> Path:
    """Blockwise densities (log scale), one panel per block, each on its own Ritz range."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    blocks = list(spec.blocks.values())
    fig, axes = plt.subplots(1, len(blocks), figsize=(3.2 * len(blocks), 2.8), squeeze=False)
    for ax, b in zip(axes[0], blocks, strict=True):
        pad = 0.05 * (b.lambda_max - b.lambda_min) + 0.05
        grid = np.linspace(b.lambda_min - pad, b.lambda_max + pad, 4000)
        rho = density(b.runs, grid, sigma2=spec.sigma2, scale_by_range=spec.scale_by_range)
        ax.semilogy(grid, np.maximum(rho, 1e-12))
        ax.set_title(f"{b.name} (d={b.dim})", fontsize=9)
        ax.set_xlabel("eigenvalue")
    if title:
        fig.suptitle(title)
    return save_figure(fig, path, dpi=110)
