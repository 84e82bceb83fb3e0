"""Full and blockwise Hessian spectra of a model's loss by stochastic Lanczos quadrature
(Zhang et al. 2024, Sections 2.2-2.3): one SLQ estimate per diagonal block ``H_ll`` of
:class:`secondorder.curvature.operators.ModelHessian`, on a common grid for the JS distances.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from secondorder.curvature.blocks import resolve_blocks
from secondorder.curvature.lanczos import (
    DEFAULT_SIGMA2,
    LanczosRecurrence,
    Quadrature,
    adaptive_grid,
    density,
    extreme_eigenvalues,
    random_start,
    slq,
    tridiagonal_quadrature,
)
from secondorder.curvature.operators import LossFn, ModelHessian

__all__ = ["SpectrumEstimate", "BlockwiseSpectra", "blockwise_spectra", "full_spectrum",
           "common_grid"]


@dataclass
class SpectrumEstimate:
    """SLQ result for one operator: quadrature runs, extreme Ritz values, density on ``grid``."""

    name: str
    dim: int
    runs: list[Quadrature]
    lambda_min: float
    lambda_max: float
    density: np.ndarray | None = None
    params: list[str] = field(default_factory=list)

    def to_json(self, with_density: bool = True) -> dict:
        out = {
            "name": self.name,
            "dim": self.dim,
            "params": self.params,
            "lambda_min": self.lambda_min,
            "lambda_max": self.lambda_max,
            "nodes": [r.nodes.tolist() for r in self.runs],
            "weights": [r.weights.tolist() for r in self.runs],
        }
        if with_density and self.density is not None:
            out["density"] = self.density.tolist()
        return out


@dataclass
class BlockwiseSpectra:
    """Blockwise spectra on a common grid (densities integrate to 1 on it)."""

    grid: np.ndarray
    blocks: dict[str, SpectrumEstimate]
    sigma2: float
    scale_by_range: bool

    @property
    def densities(self) -> dict[str, np.ndarray]:
        return {k: v.density for k, v in self.blocks.items()}

    def to_json(self, with_density: bool = True) -> dict:
        return {
            "grid": self.grid.tolist() if with_density else None,
            "sigma2": self.sigma2,
            "scale_by_range": self.scale_by_range,
            "blocks": {k: v.to_json(with_density) for k, v in self.blocks.items()},
        }


def common_grid(
    all_runs: Iterable[Sequence], num_points: int = 20_000, pad: float | None = None
) -> np.ndarray:
    """Uniform grid spanning the nodes of every run of every block (see ``default_grid``)."""
    runs = [r for rs in all_runs for r in rs]
    lo, hi = extreme_eigenvalues(runs)
    if pad is None:
        pad = 0.05 * (hi - lo) + 10.0 * DEFAULT_SIGMA2**0.5
    return np.linspace(lo - pad, hi + pad, int(num_points))


def blockwise_spectra(
    model: nn.Module,
    loss_fn: LossFn,
    batches: Sequence,
    blocks: Mapping[str, Sequence[str]],
    *,
    num_steps: int = 100,
    num_runs: int = 10,
    seed: int = 0,
    grid: np.ndarray | str | None = None,
    grid_points: int = 20_000,
    sigma2: float = DEFAULT_SIGMA2,
    scale_by_range: bool = False,
    distribution: str = "rademacher",
    reorthogonalize: bool = True,
    average: bool = True,
    progress: bool = False,
    desc: str = "blockwise SLQ",
) -> BlockwiseSpectra:
    """SLQ spectra of the diagonal Hessian blocks ``H_ll`` of a fixed loss.

    ``blocks`` maps block names to parameter-name globs (:func:`resolve_blocks`; parameters in
    no block are simply not analysed). For each of ``num_runs`` random start vectors (drawn from
    a CPU generator seeded with ``seed``, block by block in ``blocks`` order), the Lanczos
    recurrences of all blocks advance in lockstep: every step costs one forward and one first
    backward per batch plus one second backward per block (exact, see the module docstring).
    A block whose recurrence breaks down drops out of later products.

    Memory: with ``reorthogonalize=True`` every block keeps its Lanczos basis,
    ``num_steps * block_dim`` float64 numbers (all blocks of ALBERT-base at ``num_steps=100``:
    about 9 GB); pass ``reorthogonalize=False`` (the paper's plain recurrence, three vectors per
    block) for large models.

    The densities are Gaussian-blurred (:func:`secondorder.curvature.lanczos.density`, variance
    ``sigma2``, optionally scaled by each block's range) on a common grid: ``grid`` if an array,
    ``grid_points`` uniform points spanning all blocks' Ritz values if None, or
    ``grid="adaptive"`` for :func:`secondorder.curvature.lanczos.adaptive_grid` (resolves the
    blur around every node however far apart the blocks' spectra are; non-uniform).
    """
    hess = ModelHessian(model, loss_fn, batches, average=average)
    resolved, _ = resolve_blocks(hess.names, blocks)
    gen = torch.Generator().manual_seed(int(seed))
    runs: dict[str, list[Quadrature]] = {b: [] for b in resolved}
    dims = {b: hess.block_dim(ns) for b, ns in resolved.items()}
    steps = {b: min(num_steps, d) for b, d in dims.items()}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=num_runs * max(steps.values()), desc=desc, leave=False)
    for _ in range(num_runs):
        recs = {
            b: LanczosRecurrence(
                random_start(dims[b], distribution, generator=gen).to(hess.device),
                steps[b],
                reorthogonalize=reorthogonalize,
            )
            for b in resolved
        }
        taken = 0
        while True:
            active = {b: (resolved[b], r.vector) for b, r in recs.items() if not r.done}
            if not active:
                break
            products = hess.block_matvecs(active)
            for b, hv in products.items():
                recs[b].step(hv)
            taken += 1
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.update(max(steps.values()) - taken)
        for b, r in recs.items():
            runs[b].append(tridiagonal_quadrature(*r.coefficients()))
    if bar is not None:
        bar.close()
    if grid is None:
        grid = common_grid(runs.values(), grid_points)
    elif isinstance(grid, str):
        if grid != "adaptive":
            raise ValueError(f"grid must be an array, None or 'adaptive', got {grid!r}")
        grid = adaptive_grid([r for rs in runs.values() for r in rs], sigma2=sigma2)
    grid = np.asarray(grid, dtype=np.float64)
    out = {}
    for b, rs in runs.items():
        lo, hi = extreme_eigenvalues(rs)
        rho = density(rs, grid, sigma2=sigma2, scale_by_range=scale_by_range)
        out[b] = SpectrumEstimate(b, dims[b], rs, lo, hi, rho, params=resolved[b])
    return BlockwiseSpectra(grid=grid, blocks=out, sigma2=sigma2, scale_by_range=scale_by_range)


def full_spectrum(
    model: nn.Module,
    loss_fn: LossFn,
    batches: Sequence,
    *,
    params: Mapping[str, nn.Parameter] | None = None,
    num_steps: int = 100,
    num_runs: int = 10,
    seed: int = 0,
    grid: np.ndarray | None = None,
    grid_points: int = 20_000,
    sigma2: float = DEFAULT_SIGMA2,
    scale_by_range: bool = False,
    distribution: str = "rademacher",
    reorthogonalize: bool = True,
    average: bool = True,
    progress: bool = False,
) -> tuple[np.ndarray, SpectrumEstimate]:
    """SLQ spectrum of the full Hessian ``H`` of the fixed loss. Returns ``(grid, estimate)``."""
    hess = ModelHessian(model, loss_fn, batches, params, average=average)
    gen = torch.Generator().manual_seed(int(seed))

    def matvec(v: Tensor) -> Tensor:
        return hess.matvec(v.to(hess.device))

    runs = slq(
        matvec,
        hess.dim,
        device=hess.device,
        num_steps=num_steps,
        num_runs=num_runs,
        distribution=distribution,
        generator=gen,
        reorthogonalize=reorthogonalize,
        progress=progress,
        desc="full SLQ",
    )
    if grid is None:
        grid = common_grid([runs], grid_points)
    grid = np.asarray(grid, dtype=np.float64)
    lo, hi = extreme_eigenvalues(runs)
    rho = density(runs, grid, sigma2=sigma2, scale_by_range=scale_by_range)
    return grid, SpectrumEstimate("full", hess.dim, runs, lo, hi, rho, params=list(hess.names))
