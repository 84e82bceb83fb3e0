"""Block-diagonal quadratic problems of Zhang et al. 2024, Section 3 (Figure 8).

``L(w) = 1/2 w^T H w`` (``h = 0``) with ``H = diag(H_1, ..., H_L)`` and
``H_l = Q_l diag(lambda_l) Q_l^T``. Every case has ``lambda_min(H) = 1``,
``lambda_max(H) = 2000`` (condition number 2000).

* Case 3 (heterogeneous, simplified): three 3x3 blocks with eigenvalues {1, 2, 3},
  {99, 100, 101}, {1998, 1999, 2000}.
* Case 4 (homogeneous, simplified): {1, 99, 1998}, {2, 100, 1999}, {3, 101, 2000}: the same
  nine eigenvalues, redistributed so every block spans the whole range.
* Cases 1 and 2 (four blocks of 100): the paper samples each block's eigenvalues from measured
  blockwise spectra (GPT2 for Case 1, ResNet18 for Case 2), which we do not have. Here they are
  **parametrised**: every block draws 100 eigenvalues from a "bulk + outliers" law (90 % of the
  mass spread log-uniformly over the lower part of the block's range, 10 % spread up to its
  top), with
    - Case 1 ("Transformer-like", heterogeneous): block ranges [1, 20], [10, 200],
      [50, 1000], [100, 2000] (block condition numbers 20, as the paper's Case 1 has
      ``kappa_l ~ kappa / 20``);
    - Case 2 ("CNN-like", homogeneous): every block on [1, 2000] with the same law.
  After sampling, each case's eigenvalues are shifted and scaled jointly onto [1, 2000] (one
  affine map for all blocks, which keeps relative ranges, as in the paper).

``Q_l``: the paper writes "independent standard Gaussian random matrix"; a Gaussian ``Q_l`` would
change the eigenvalues, contradicting the stated spectra and condition number, so ``Q_l`` is a
Haar-random orthogonal matrix (QR of a Gaussian matrix with the signs of ``diag(R)`` fixed).

Optimizers (``h = 0``, so ``grad = H w``), standard Gaussian initial point:

* GD with the optimal step ``2 / (mu + L)`` (``mu = 1``, ``L = 2000``).
* Adam with ``beta1 = 0``, ``eps = 0``, no bias correction, constant step ``eta``:
  ``v_0 = g_0^2``, ``v_t = beta2 v_{t-1} + (1 - beta2) g_t^2``, ``w <- w - eta g_t / sqrt(v_t)``
  (the paper's Algorithm 3 / Eq. (3)). ``beta2 = 1`` freezes ``v`` at the initial squared
  gradient: ``w <- w - eta g_t / |g_0|`` (Eq. (2)). ``eta`` is grid-searched (the final gradient
  norm is minimised).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "QuadraticProblem",
    "make_case",
    "haar_orthogonal",
    "run_gd",
    "run_adam",
    "grid_search_adam",
    "run_case",
    "run_all_cases",
    "CASE_EIGENVALUES",
]

KAPPA = 2000.0

CASE_EIGENVALUES = {
    3: [[1.0, 2.0, 3.0], [99.0, 100.0, 101.0], [1998.0, 1999.0, 2000.0]],
    4: [[1.0, 99.0, 1998.0], [2.0, 100.0, 1999.0], [3.0, 101.0, 2000.0]],
}

CASE_TITLES = {
    1: "Case 1: heterogeneous blocks (Transformer-like, parametrised)",
    2: "Case 2: homogeneous blocks (CNN-like, parametrised)",
    3: "Case 3: simplified heterogeneous blocks",
    4: "Case 4: simplified homogeneous blocks",
}


@dataclass
class QuadraticProblem:
    """``L(w) = 1/2 w^T H w`` with block-diagonal ``H``."""

    case: int
    H: np.ndarray
    blocks: list[np.ndarray]  # index arrays, one per block
    block_eigenvalues: list[np.ndarray]

    @property
    def dim(self) -> int:
        return self.H.shape[0]

    @property
    def eigenvalues(self) -> np.ndarray:
        return np.sort(np.concatenate(self.block_eigenvalues))

    def grad(self, w: np.ndarray) -> np.ndarray:
        return self.H @ w

    def loss(self, w: np.ndarray) -> float:
        return 0.5 * float(w @ self.H @ w)


def haar_orthogonal(n: int, rng: np.random.Generator) -> np.ndarray:
    """A Haar-distributed ``n x n`` orthogonal matrix (QR of a Gaussian matrix, sign-fixed)."""
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


def _bulk_outliers(rng: np.random.Generator, n: int, lo: float, hi: float) -> np.ndarray:
    """``n`` values on ``[lo, hi]`` (both attained): a log-uniform bulk plus a few outliers."""
    n_out = max(1, n // 10)
    split = lo * (hi / lo) ** 0.5
    bulk = np.exp(rng.uniform(np.log(lo), np.log(split), n - n_out))
    out = rng.uniform(split, hi, n_out)
    lam = np.concatenate([bulk, out])
    lam[np.argmin(lam)] = lo
    lam[np.argmax(lam)] = hi
    return np.sort(lam)


def _parametrised_eigenvalues(case: int, rng: np.random.Generator, d: int) -> list[np.ndarray]:
    if case == 1:
        ranges = [(1.0, 20.0), (10.0, 200.0), (50.0, 1000.0), (100.0, 2000.0)]
    elif case == 2:
        ranges = [(1.0, 2000.0)] * 4
    else:
        raise ValueError(case)
    lams = [_bulk_outliers(rng, d, lo, hi) for lo, hi in ranges]
    lo = min(x.min() for x in lams)
    hi = max(x.max() for x in lams)
    # one affine map for all blocks onto [1, KAPPA]
    return [1.0 + (x - lo) * (KAPPA - 1.0) / (hi - lo) for x in lams]


def make_case(case: int, seed: int = 0, *, block_size: int = 100) -> QuadraticProblem:
    """Build Case 1-4 (module docstring). ``block_size`` applies to Cases 1-2 only."""
    rng = np.random.default_rng(seed)
    if case in CASE_EIGENVALUES:
        lams = [np.asarray(x, dtype=np.float64) for x in CASE_EIGENVALUES[case]]
    elif case in (1, 2):
        lams = _parametrised_eigenvalues(case, rng, block_size)
    else:
        raise ValueError(f"case must be 1, 2, 3 or 4, got {case}")
    dim = sum(x.size for x in lams)
    H = np.zeros((dim, dim))
    blocks = []
    start = 0
    for lam in lams:
        q = haar_orthogonal(lam.size, rng)
        idx = np.arange(start, start + lam.size)
        H[np.ix_(idx, idx)] = (q * lam) @ q.T
        blocks.append(idx)
        start += lam.size
    H = 0.5 * (H + H.T)
    return QuadraticProblem(case=case, H=H, blocks=blocks, block_eigenvalues=lams)


def run_gd(
    problem: QuadraticProblem, w0: np.ndarray, num_iters: int, lr: float | None = None
) -> np.ndarray:
    """GD; returns the gradient norm at iterations ``0 .. num_iters``.

    ``lr`` defaults to the optimal ``2 / (mu + L)`` of the problem's extreme eigenvalues.
    """
    if lr is None:
        lam = problem.eigenvalues
        lr = 2.0 / (lam[0] + lam[-1])
    w = np.array(w0, dtype=np.float64)
    norms = np.empty(num_iters + 1)
    for t in range(num_iters + 1):
        g = problem.grad(w)
        norms[t] = np.linalg.norm(g)
        if t < num_iters:
            w = w - lr * g
    return norms


def run_adam(
    problem: QuadraticProblem, w0: np.ndarray, num_iters: int, lr: float, beta2: float
) -> np.ndarray:
    """Adam with ``beta1 = 0``, ``eps = 0``, no bias correction; gradient norms ``0 .. T``.

    ``v_0 = g_0^2``; for ``t >= 0``: ``v_t = beta2 v_{t-1} + (1 - beta2) g_t^2`` (``v_0`` itself
    at ``t = 0``), ``w_{t+1} = w_t - lr g_t / sqrt(v_t)``. With ``beta2 = 1`` this is
    ``w - lr g_t / |g_0|``. A coordinate with ``v = 0`` (its gradient is exactly zero) is not
    moved. Once the iterate diverges (non-finite) the remaining norms are ``inf``.
    """
    if not 0.0 <= beta2 <= 1.0:
        raise ValueError(f"beta2 must be in [0, 1], got {beta2}")
    w = np.array(w0, dtype=np.float64)
    g = problem.grad(w)
    v = g * g
    norms = np.full(num_iters + 1, np.inf)
    with np.errstate(over="ignore", invalid="ignore"):
        _adam_loop(problem, w, g, v, norms, num_iters, lr, beta2)
    return norms


def _adam_loop(problem, w, g, v, norms, num_iters, lr, beta2) -> None:
    for t in range(num_iters + 1):
        if t > 0:
            g = problem.grad(w)
            if beta2 < 1.0:
                v = beta2 * v + (1.0 - beta2) * g * g
        n = np.linalg.norm(g)
        if not np.isfinite(n):
            break
        norms[t] = n
        if t < num_iters:
            denom = np.sqrt(v)
            step = np.divide(g, denom, out=np.zeros_like(g), where=denom > 0)
            w = w - lr * step


def _score(norms: np.ndarray) -> float:
    """Grid-search criterion: the final gradient norm (inf when diverged)."""
    last = norms[-1]
    return float(last) if np.isfinite(last) else np.inf


def grid_search_adam(
    problem: QuadraticProblem,
    w0: np.ndarray,
    num_iters: int,
    beta2: float,
    lrs: Sequence[float],
) -> tuple[float, np.ndarray, dict[float, float]]:
    """Best step size of Adam by final gradient norm: ``(lr, norms, {lr: final norm})``."""
    best = (None, None, np.inf)
    table = {}
    for lr in lrs:
        norms = run_adam(problem, w0, num_iters, float(lr), beta2)
        s = _score(norms)
        table[float(lr)] = s
        if best[0] is None or s < best[2]:
            best = (float(lr), norms, s)
    return best[0], best[1], table


@dataclass
class CaseResult:
    case: int
    title: str
    num_iters: int
    eigenvalues: list[list[float]]
    curves: dict[str, list[float]] = field(default_factory=dict)  # label -> gradient norms
    lrs: dict[str, float] = field(default_factory=dict)
    grid: dict[str, dict[float, float]] = field(default_factory=dict)

    def final(self, label: str) -> float:
        return float(self.curves[label][-1])

    def to_json(self) -> dict:
        return {
            "case": self.case,
            "title": self.title,
            "num_iters": self.num_iters,
            "block_eigenvalues": self.eigenvalues,
            "lr": self.lrs,
            "final_grad_norm": {k: self.final(k) for k in self.curves},
            "lr_grid_final_grad_norm": {
                k: {f"{lr:.3g}": v for lr, v in g.items()} for k, g in self.grid.items()
            },
            "grad_norm": self.curves,
        }


DEFAULT_LRS = tuple(float(x) for x in np.logspace(-4, 1, 21))


def run_case(
    case: int,
    *,
    num_iters: int = 5000,
    seed: int = 0,
    lrs: Sequence[float] = DEFAULT_LRS,
    beta2s: Sequence[float] = (0.999, 1.0),
) -> CaseResult:
    """GD (optimal step) and grid-searched Adam (``beta1 = 0``) on one case."""
    problem = make_case(case, seed)
    rng = np.random.default_rng(seed + 12345)
    w0 = rng.standard_normal(problem.dim)
    res = CaseResult(
        case=case,
        title=CASE_TITLES[case],
        num_iters=num_iters,
        eigenvalues=[x.tolist() for x in problem.block_eigenvalues],
    )
    lam = problem.eigenvalues
    res.lrs["GD"] = 2.0 / (lam[0] + lam[-1])
    res.curves["GD"] = run_gd(problem, w0, num_iters).tolist()
    for b2 in beta2s:
        label = f"Adam (beta2={b2:g})"
        lr, norms, table = grid_search_adam(problem, w0, num_iters, b2, lrs)
        res.curves[label] = norms.tolist()
        res.lrs[label] = lr
        res.grid[label] = table
    return res


def run_all_cases(
    cases: Sequence[int] = (1, 2, 3, 4), *, progress: bool = False, **kwargs
) -> dict[int, CaseResult]:
    it = cases
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(cases, desc="quadratic cases")
    return {c: run_case(c, **kwargs) for c in it}
