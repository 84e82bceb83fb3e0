"""Stochastic Lanczos Quadrature (SLQ) for spectral densities of symmetric operators.

This follows Algorithm 4 / Algorithm 5 of Zhang et al., "Why Transformers Need Adam: A
Hessian Perspective" (Appendix B.2):

1. draw a random unit vector ``v`` (normalised Rademacher or normalised Gaussian);
2. run ``m`` Lanczos steps on the operator from ``v``; this yields the Jacobi (tridiagonal)
   matrix ``T`` of the spectral measure ``mu_v = sum_i (v^T q_i)^2 delta(lambda_i)``;
3. the eigenvalues of ``T`` are the Gauss quadrature nodes and the squared first components
   of its normalised eigenvectors are the weights (Golub-Welsch);
4. the density is the Gaussian-blurred quadrature, averaged over the random vectors.

Implementation choices (all documented in the functions):

* Lanczos runs in float64 by default, with full re-orthogonalisation (two passes of classical
  Gram-Schmidt against all previous Lanczos vectors). The paper's Algorithm 4 and the public
  codes do not re-orthogonalise; without it, ghost copies of converged Ritz values appear and
  the weights of the extreme nodes get split between copies. ``reorthogonalize=False`` gives the
  plain three-term recurrence of Algorithm 4.
* Breakdown: if ``beta_j <= breakdown_tol * ||T||`` (an invariant subspace has been found) the
  recurrence stops and fewer than ``num_steps`` coefficients are returned. The paper's
  Algorithm 4 would continue with an arbitrary orthogonal vector; the public code divides by
  ``1e-8`` instead. Stopping is exact: the quadrature of an invariant subspace is already exact.
* The Gaussian-blur width convention is explained in :func:`density`.

The matrix-free interface (``matvec: Tensor -> Tensor`` on flat vectors) is also exposed as an
incremental state machine, :class:`LanczosRecurrence`, so that several recurrences (e.g. one
per parameter block of a network) can advance in lockstep and share forward passes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "LanczosRecurrence",
    "Quadrature",
    "lanczos",
    "tridiagonal_quadrature",
    "random_start",
    "slq",
    "density",
    "default_grid",
    "adaptive_grid",
    "extreme_eigenvalues",
    "integrate",
]

DEFAULT_SIGMA2 = 1e-5


class Quadrature(NamedTuple):
    """Gauss quadrature of one SLQ run: ``nodes`` (Ritz values) and ``weights`` (sum to 1)."""

    nodes: np.ndarray
    weights: np.ndarray


class LanczosRecurrence:
    """Incremental Lanczos recurrence (Algorithm 4), one matrix-vector product per step.

    Usage::

        rec = LanczosRecurrence(start, num_steps)
        while not rec.done:
            rec.step(matvec(rec.vector))
        alpha, beta = rec.coefficients()

    ``rec.vector`` is the current Lanczos vector ``v_j`` (unit norm, in ``dtype``) that must be
    multiplied by the operator; :meth:`step` consumes ``A v_j`` (any dtype / device; it is cast
    to the recurrence's dtype and device).
    """

    def __init__(
        self,
        start: Tensor,
        num_steps: int,
        *,
        reorthogonalize: bool = True,
        dtype: torch.dtype = torch.float64,
        breakdown_tol: float = 1e-10,
    ) -> None:
        if num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {num_steps}")
        v = start.detach().reshape(-1).to(dtype=dtype).clone()
        norm = torch.linalg.vector_norm(v)
        if not torch.isfinite(norm) or norm == 0:
            raise ValueError("the start vector must be finite and non-zero")
        self.dim = v.numel()
        self.num_steps = min(int(num_steps), self.dim)
        self.reorthogonalize = reorthogonalize
        self.breakdown_tol = breakdown_tol
        self.dtype = dtype
        self.vector = v / norm
        self._prev: Tensor | None = None
        self._basis: Tensor | None = None  # rows: the Lanczos vectors so far (if re-orthogonal.)
        self._k = 0
        if reorthogonalize:
            self._basis = torch.empty((self.num_steps, self.dim), dtype=dtype, device=v.device)
            self._basis[0] = self.vector
            self._k = 1
        self.alpha: list[float] = []
        self.beta: list[float] = []
        self._scale = 0.0  # running estimate of ||T|| for the relative breakdown test
        self.done = False
        self.breakdown = False

    def _orthogonalize(self, w: Tensor) -> Tensor:
        basis = self._basis[: self._k]  # (k, dim) view, no copy
        for _ in range(2):  # "twice is enough" (Kahan / Parlett)
            w = w - (basis @ w) @ basis
        return w

    def step(self, av: Tensor) -> None:
        """Consume ``A v_j`` and prepare ``v_{j+1}`` (or finish)."""
        if self.done:
            raise RuntimeError("the Lanczos recurrence has already finished")
        w = av.detach().reshape(-1).to(dtype=self.dtype, device=self.vector.device)
        if w.numel() != self.dim:
            raise ValueError(f"matvec returned {w.numel()} entries, expected {self.dim}")
        if not torch.isfinite(w).all():
            raise FloatingPointError("the operator returned non-finite values")
        a = float(torch.dot(w, self.vector))
        w = w - a * self.vector
        if self._prev is not None:
            w = w - self.beta[-1] * self._prev
        if self._basis is not None:
            w = self._orthogonalize(w)
        self.alpha.append(a)
        b_prev = self.beta[-1] if self.beta else 0.0
        self._scale = max(self._scale, math.sqrt(a * a + b_prev * b_prev))
        if len(self.alpha) >= self.num_steps:
            self.done = True
            self._basis = None  # free the memory
            return
        b = float(torch.linalg.vector_norm(w))
        if b <= self.breakdown_tol * max(self._scale, np.finfo(np.float64).tiny):
            self.done = True
            self.breakdown = True
            self._basis = None
            return
        self.beta.append(b)
        self._prev = self.vector
        self.vector = w / b
        if self._basis is not None:
            self._basis[self._k] = self.vector
            self._k += 1

    def coefficients(self) -> tuple[Tensor, Tensor]:
        """``alpha`` (diagonal, length k) and ``beta`` (off-diagonal, length k-1), float64."""
        k = len(self.alpha)
        return (
            torch.tensor(self.alpha, dtype=torch.float64),
            torch.tensor(self.beta[: max(k - 1, 0)], dtype=torch.float64),
        )


def lanczos(
    matvec: Callable[[Tensor], Tensor],
    dim: int,
    num_steps: int,
    *,
    start: Tensor,
    reorthogonalize: bool = True,
    dtype: torch.dtype = torch.float64,
    breakdown_tol: float = 1e-10,
    progress: bool = False,
    desc: str | None = None,
) -> tuple[Tensor, Tensor]:
    """Run up to ``num_steps`` Lanczos steps of a symmetric operator from ``start``.

    ``matvec`` receives a flat vector of length ``dim`` in ``dtype`` (on ``start``'s device) and
    returns ``A v`` (any float dtype). Returns the tridiagonal coefficients ``(alpha, beta)`` as
    float64 tensors of lengths ``k`` and ``k - 1`` with ``k <= min(num_steps, dim)``; ``k`` is
    smaller when the recurrence breaks down (``beta ~ 0``, an invariant subspace was found).
    """
    if start.numel() != dim:
        raise ValueError(f"start has {start.numel()} entries, expected dim={dim}")
    rec = LanczosRecurrence(
        start, num_steps, reorthogonalize=reorthogonalize, dtype=dtype, breakdown_tol=breakdown_tol
    )
    bar = _progress(rec.num_steps, progress, desc or "lanczos")
    while not rec.done:
        rec.step(matvec(rec.vector))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return rec.coefficients()


def tridiagonal_quadrature(alpha: Tensor | np.ndarray, beta: Tensor | np.ndarray) -> Quadrature:
    """Gauss quadrature of a Jacobi matrix: eigenvalues and squared first eigenvector components.

    Computed in float64 with a dense symmetric eigensolver (``k`` is at most a few hundred).
    The weights are renormalised to sum to one (they do up to rounding).
    """
    a = np.asarray(alpha, dtype=np.float64).reshape(-1)
    b = np.asarray(beta, dtype=np.float64).reshape(-1)
    if b.size != max(a.size - 1, 0):
        raise ValueError(f"beta must have len(alpha) - 1 = {a.size - 1} entries, got {b.size}")
    t = np.diag(a)
    if b.size:
        t += np.diag(b, 1) + np.diag(b, -1)
    nodes, vecs = np.linalg.eigh(t)
    weights = vecs[0, :] ** 2
    weights = weights / weights.sum()
    return Quadrature(nodes=nodes, weights=weights)


def random_start(
    dim: int,
    distribution: str = "rademacher",
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> Tensor:
    """A unit vector ``u / ||u||`` with ``u`` Rademacher (+-1) or standard Gaussian.

    The draw is made on the generator's device (CPU when ``generator`` is None) and the result
    moved to ``device``, so a CPU generator gives the same vectors whatever the target device.
    """
    gen_device = generator.device if generator is not None else torch.device("cpu")
    if distribution == "rademacher":
        bits = torch.randint(0, 2, (dim,), generator=generator, device=gen_device)
        u = bits.to(dtype) * 2 - 1
    elif distribution == "gaussian":
        u = torch.randn(dim, generator=generator, dtype=dtype, device=gen_device)
    else:
        raise ValueError(f"distribution must be 'rademacher' or 'gaussian', got {distribution!r}")
    u = u / torch.linalg.vector_norm(u)
    return u if device is None else u.to(device)


def slq(
    matvec: Callable[[Tensor], Tensor],
    dim: int,
    *,
    num_steps: int = 100,
    num_runs: int = 10,
    distribution: str = "rademacher",
    generator: torch.Generator | None = None,
    reorthogonalize: bool = True,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
    matmat: bool = False,
    progress: bool = False,
    desc: str | None = None,
) -> list[Quadrature]:
    """Stochastic Lanczos Quadrature (Algorithm 5): one :class:`Quadrature` per random vector.

    The paper uses ``num_steps = m = 100`` and ``num_runs = n_v = 10``. ``generator`` drives the
    random start vectors (pass a seeded ``torch.Generator`` for reproducibility; all start
    vectors are drawn before the first product, so the result does not depend on ``matmat``).

    With ``matmat=True`` the runs advance in lockstep and ``matvec`` is called with a
    ``(dim, r)`` matrix whose columns are the current Lanczos vectors of the ``r`` unfinished
    runs; it must return ``A @ V``. This reads an explicit matrix once per step for all runs.
    With ``progress=True`` a tqdm bar counts Lanczos steps over all runs.
    """
    steps = min(num_steps, dim)
    starts = [
        random_start(dim, distribution, generator=generator, dtype=dtype, device=device)
        for _ in range(num_runs)
    ]
    recs = [
        LanczosRecurrence(s, steps, reorthogonalize=reorthogonalize, dtype=dtype) for s in starts
    ]
    bar = _progress(steps * num_runs, progress, desc or "slq")
    if matmat:
        while True:
            active = [r for r in recs if not r.done]
            if not active:
                break
            av = matvec(torch.stack([r.vector for r in active], dim=1))
            for j, r in enumerate(active):
                r.step(av[:, j])
                if bar is not None:
                    bar.update(1 + (steps - len(r.alpha) if r.breakdown else 0))
    else:
        for r in recs:
            while not r.done:
                r.step(matvec(r.vector))
                if bar is not None:
                    bar.update(1 + (steps - len(r.alpha) if r.breakdown else 0))
    if bar is not None:
        bar.close()
    return [tridiagonal_quadrature(*r.coefficients()) for r in recs]


def _as_runs(runs: Sequence) -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    for r in runs:
        nodes, weights = r
        out.append((np.asarray(nodes, dtype=np.float64), np.asarray(weights, dtype=np.float64)))
    if not out:
        raise ValueError("at least one SLQ run is needed")
    return out


def extreme_eigenvalues(runs: Sequence) -> tuple[float, float]:
    """``(lambda_min, lambda_max)`` estimates: the extreme Ritz values over all runs.

    Ritz values lie inside the spectrum, so these are inner bounds that converge quickly to the
    true extremes when they are separated from the rest of the spectrum.
    """
    rs = _as_runs(runs)
    return float(min(n.min() for n, _ in rs)), float(max(n.max() for n, _ in rs))


def default_grid(runs: Sequence, num_points: int = 10_000, pad: float | None = None) -> np.ndarray:
    """A uniform grid over ``[min node - pad, max node + pad]`` of all runs.

    The default ``pad`` is 5 % of the node range plus 10 standard deviations of the default blur
    (``10 * sqrt(1e-5)``), so the Gaussian tails are inside the grid. (The public
    hessian-spectrum code pads by 1 around the run-averaged extreme nodes; PyHessian by 0.01.)
    """
    lo, hi = extreme_eigenvalues(runs)
    if pad is None:
        pad = 0.05 * (hi - lo) + 10.0 * math.sqrt(DEFAULT_SIGMA2)
    return np.linspace(lo - pad, hi + pad, int(num_points))


def adaptive_grid(
    runs: Sequence,
    *,
    sigma2: float = DEFAULT_SIGMA2,
    points_per_sd: float = 4.0,
    span_sd: float = 8.0,
    max_points: int = 400_000,
) -> np.ndarray:
    """A non-uniform grid that resolves the Gaussian blur around every node.

    Points are spaced ``sd / points_per_sd`` (``sd = sqrt(sigma2)``) inside
    ``[x - span_sd * sd, x + span_sd * sd]`` for every node ``x`` of every run; gaps between these
    windows (where the blurred density is below ~1e-14 of its peak) get no interior points. Use
    it when spectra to be compared span ranges much wider than the blur: a uniform grid would
    need ``range / sd`` points. If more than ``max_points`` points would be needed the spacing
    is coarsened uniformly.
    """
    rs = _as_runs(runs)
    nodes = np.unique(np.concatenate([n for n, _ in rs]))
    sd = math.sqrt(sigma2)
    half = span_sd * sd
    lo, hi = nodes - half, nodes + half
    # merge overlapping windows
    starts, ends = [lo[0]], [hi[0]]
    for a, b in zip(lo[1:], hi[1:], strict=True):
        if a <= ends[-1]:
            ends[-1] = max(ends[-1], b)
        else:
            starts.append(a)
            ends.append(b)
    starts_a, ends_a = np.asarray(starts), np.asarray(ends)
    step = sd / points_per_sd
    total = float(np.sum((ends_a - starts_a) / step + 1))
    if total > max_points:
        step *= total / max_points
    pieces = [
        np.linspace(a, b, max(2, int(math.ceil((b - a) / step)) + 1))
        for a, b in zip(starts_a, ends_a, strict=True)
    ]
    return np.unique(np.concatenate(pieces))


def _cell_edges(grid: np.ndarray) -> np.ndarray:
    g = np.asarray(grid, dtype=np.float64)
    if g.ndim != 1 or g.size < 2 or not np.all(np.diff(g) > 0):
        raise ValueError("grid must be a strictly increasing 1-d array with >= 2 points")
    mid = 0.5 * (g[1:] + g[:-1])
    return np.concatenate([[g[0] - (mid[0] - g[0])], mid, [g[-1] + (g[-1] - mid[-1])]])


def integrate(values: np.ndarray, grid: np.ndarray) -> float:
    """Integral of a function sampled on ``grid`` with the cell (midpoint) rule used here.

    Each grid point owns the cell between the midpoints to its neighbours (the outer cells are
    symmetric about the end points); on a uniform grid this is ``sum(values) * dx``, the
    normalisation used by the public SLQ codes.
    """
    return float(np.sum(np.asarray(values, dtype=np.float64) * np.diff(_cell_edges(grid))))


def density(
    nodes_weights_runs: Sequence,
    grid: np.ndarray,
    *,
    sigma2: float = DEFAULT_SIGMA2,
    scale_by_range: bool = False,
    method: str = "cell",
    normalize: bool = True,
) -> np.ndarray:
    """Gaussian-blurred spectral density on ``grid``, averaged over SLQ runs.

    ``rho(t) = mean_runs sum_j w_j N(t; x_j, s2)`` with **variance** ``s2``:

    * ``scale_by_range=False`` (default): ``s2 = sigma2`` (default ``1e-5``, i.e. standard
      deviation ``sqrt(1e-5) ~ 3.2e-3``). This is the convention of the paper's public code
      (zyushun/hessian-spectrum: ``sigma = 1e-5 ** 0.5`` used as the standard deviation).
    * ``scale_by_range=True``: ``s2 = sigma2 * max(1, lambda_max - lambda_min)`` where the
      extremes are the run-averaged largest/smallest nodes. This is PyHessian's
      ``density_generate`` (its ``sigma_squared=1e-5`` argument is scaled by the spectral range
      and then used as the *variance* of the Gaussian, despite the variable name ``sigma``).

    ``method="cell"`` (default) returns, at each grid point, the Gaussian mass of the grid cell
    around it divided by the cell width (differences of the normal CDF). It equals the point
    value when the grid step is much smaller than the blur width and, unlike point sampling, still
    carries the right mass when a narrow block spectrum falls between grid points (a common grid
    for blocks whose spectra differ by orders of magnitude). ``method="point"`` samples the
    Gaussian at the grid points as the public codes do.

    With ``normalize=True`` the result is rescaled so that :func:`integrate` gives exactly 1
    (both public codes renormalise this way); otherwise it integrates to the mass inside the
    grid. An all-zero density (every node far outside the grid) raises ``ValueError``.
    """
    rs = _as_runs(nodes_weights_runs)
    g = np.asarray(grid, dtype=np.float64)
    edges = _cell_edges(g)
    widths = np.diff(edges)
    if scale_by_range:
        hi = float(np.mean([n.max() for n, _ in rs]))
        lo = float(np.mean([n.min() for n, _ in rs]))
        s2 = sigma2 * max(1.0, hi - lo)
    else:
        s2 = sigma2
    if not s2 > 0:
        raise ValueError(f"the blur variance must be positive, got {s2}")
    sd = math.sqrt(s2)
    from scipy.special import ndtr

    out = np.zeros_like(g)
    for nodes, weights in rs:
        x = nodes[:, None]
        if method == "cell":
            # Gaussian mass of each cell. Cells right of a node use the upper-tail function and
            # cells left of it the CDF, so far tails do not cancel to zero prematurely.
            z = (edges[None, :] - x) / sd
            cdf, sf = ndtr(z), ndtr(-z)
            right = sf[:, :-1] - sf[:, 1:]
            left = cdf[:, 1:] - cdf[:, :-1]
            mass = np.where(edges[None, :-1] >= x, right, left)
            out += weights @ (np.clip(mass, 0.0, None) / widths[None, :])
        elif method == "point":
            pdf = np.exp(-0.5 * ((g[None, :] - x) / sd) ** 2) / (sd * math.sqrt(2 * math.pi))
            out += weights @ pdf
        else:
            raise ValueError(f"method must be 'cell' or 'point', got {method!r}")
    out /= len(rs)
    if normalize:
        total = integrate(out, g)
        if not total > 0:
            raise ValueError("the density vanishes on the whole grid (nodes outside the grid?)")
        out /= total
    return out


def _progress(total: int, enabled: bool, desc: str):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=False)
