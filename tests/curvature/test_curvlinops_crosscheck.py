"""Cross-check of the Hessian operators and SLQ against an independent library, curvlinops.

curvlinops (``pip install curvlinops-for-pytorch``) computes Hessian-vector products with
``torch.func`` (``jvp`` of ``jacrev``, forward-over-reverse), whereas :class:`ModelHessian` uses
reverse-over-reverse (Pearlmutter), and its SLQ (Papyan 2020) runs plain Lanczos without
re-orthogonalisation and blurs with a width tied to the number of Lanczos vectors.

Normalisation. curvlinops' ``HessianLinearOperator`` with ``reduction="mean"`` is the Hessian of
the mean over *data points*: batch ``i`` (size ``B_i``) is weighted by ``B_i / N``.
``ModelHessian(average=True)`` is the mean over *batches* of ``loss_fn(model, batch)`` (here a
batch mean), i.e. weight ``1 / n_batches``. The two agree exactly when all batches have the same
size; otherwise they differ by a batch-dependent reweighting, not by a constant factor
(``test_unequal_batches_*``). With ``reduction="sum"`` curvlinops gives ``N`` times the
equal-batch mean Hessian.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_lanczos import dense_orthogonal  # same construction as the SLQ tests
from torch import nn

from secondorder.curvature.lanczos import default_grid, density, extreme_eigenvalues, integrate, slq
from secondorder.curvature.operators import ModelHessian

curvlinops = pytest.importorskip("curvlinops")
TensorLinearOperator = pytest.importorskip("curvlinops.examples").TensorLinearOperator

# curvlinops' first forward-mode product (torch.func.jvp) makes torch load its jvp decompositions,
# which torch itself registers with the deprecated torch.jit.script.
pytestmark = pytest.mark.filterwarnings(
    "ignore:`torch.jit.script` is deprecated:DeprecationWarning"
)

F64 = torch.float64
# layer blocks of the MLP below, in named_parameters order
LAYERS = {"l0": ["0.weight", "0.bias"], "l1": ["2.weight", "2.bias"], "l2": ["4.weight", "4.bias"]}


def loss_fn(model, batch):
    x, y = batch
    return nn.functional.cross_entropy(model(x), y)  # mean over the batch


def make_mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 4), nn.Tanh(), nn.Linear(4, 3)
    ).to(F64)


def make_batches(sizes, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(b, 5, generator=g, dtype=F64), torch.randint(0, 3, (b,), generator=g))
        for b in sizes
    ]


def curv_hessian(model, batches, names=None, reduction="mean", block_sizes=None):
    """curvlinops' Hessian w.r.t. the parameters ``names`` (default: all, in model order)."""
    named = dict(model.named_parameters())
    params = [named[n] for n in (names or list(named))]
    return curvlinops.HessianLinearOperator(
        model, nn.CrossEntropyLoss(reduction=reduction), params, batches, block_sizes=block_sizes
    )


def ours_on_columns(matvec, vectors: torch.Tensor) -> torch.Tensor:
    return torch.stack([matvec(vectors[:, j]) for j in range(vectors.shape[1])], dim=1)


def random_vectors(dim: int, k: int, seed: int = 7) -> torch.Tensor:
    return torch.randn(dim, k, generator=torch.Generator().manual_seed(seed), dtype=F64)


def assert_close(actual, expected):
    # float64 throughout; both sides are exact up to rounding of O(1e-16) relative
    torch.testing.assert_close(actual, expected, rtol=1e-10, atol=1e-12)


@pytest.fixture(scope="module")
def mlp():
    model = make_mlp()
    assert [n for n, _ in model.named_parameters()] == [n for ns in LAYERS.values() for n in ns]
    return model


# -- a. full Hessian-vector products ------------------------------------------------------------


def test_full_hvp_matches_curvlinops_for_equal_batches(mlp):
    batches = make_batches([8, 8])
    n_data = 16
    ours = ModelHessian(mlp, loss_fn, batches)
    ours_sum = ModelHessian(mlp, loss_fn, batches, average=False)
    ref = curv_hessian(mlp, batches)
    ref_sum = curv_hessian(mlp, batches, reduction="sum")
    assert ours.dim == ref.shape[0] == ref.shape[1] == 79

    v = random_vectors(ours.dim, 5)
    hv = ours_on_columns(ours.matvec, v)
    expected = ref @ v
    assert expected.abs().max() > 1e-2  # a non-trivial product
    # equal batch sizes: mean over batches of batch means == mean over all 16 data points
    assert_close(hv, expected)
    # curvlinops' "sum" is the Hessian of the summed per-sample losses: N x the mean Hessian;
    # ModelHessian(average=False) sums the 2 batch means, i.e. it is n_batches x the mean.
    assert_close(ref_sum @ v, n_data * expected)
    assert_close(ours_on_columns(ours_sum.matvec, v), len(batches) * expected)


def test_unequal_batches_average_batch_means_not_samples(mlp):
    sizes = [3, 9]
    batches = make_batches(sizes, seed=2)
    ours = ModelHessian(mlp, loss_fn, batches)
    ours_sum = ModelHessian(mlp, loss_fn, batches, average=False)
    v = random_vectors(ours.dim, 3, seed=8)
    per_batch = [curv_hessian(mlp, [b]) @ v for b in batches]  # Hessian of each batch mean
    hv = ours_on_columns(ours.matvec, v)
    assert_close(hv, sum(per_batch) / len(batches))
    assert_close(ours_on_columns(ours_sum.matvec, v), sum(per_batch))
    # curvlinops' "mean" weights batches by size instead: a different operator here
    ref = curv_hessian(mlp, batches)
    weighted = sum(b / sum(sizes) * h for b, h in zip(sizes, per_batch, strict=True))
    assert_close(ref @ v, weighted)
    assert (hv - ref @ v).abs().max() > 1e-2 * hv.abs().max()


# -- b. diagonal blocks -------------------------------------------------------------------------


@pytest.mark.parametrize("glob", ["0.weight", "2.*"])
def test_block_operator_matches_curvlinops_hessian_of_the_block(mlp, glob):
    batches = make_batches([8, 8])
    ours = ModelHessian(mlp, loss_fn, batches)
    op = ours.block_operator(glob)
    # Hessian w.r.t. the block's parameters only (the others held fixed): exactly H_ll
    ref = curv_hessian(mlp, batches, names=op.names)
    assert op.dim == ref.shape[0]
    eye = torch.eye(op.dim, dtype=F64)
    h_ll = ours_on_columns(op.matvec, eye)
    ref_ll = ref @ eye
    assert_close(h_ll, ref_ll)
    # second reference: the principal sub-matrix of curvlinops' full Hessian
    full = curv_hessian(mlp, batches) @ torch.eye(ours.dim, dtype=F64)
    idx = torch.cat(
        [
            torch.arange(sum(ours.numels[: ours.index[n]]), sum(ours.numels[: ours.index[n] + 1]))
            for n in op.names
        ]
    )
    assert_close(h_ll, full[idx][:, idx])
    # the block is not all of H: its off-diagonal part H[l, not l] does not vanish
    rest = torch.ones(ours.dim, dtype=torch.bool)
    rest[idx] = False
    assert full[idx][:, rest].abs().max() > 1e-3 * full.abs().max()


def test_lockstep_blocks_match_curvlinops_block_diagonal(mlp):
    batches = make_batches([8, 8])
    ours = ModelHessian(mlp, loss_fn, batches)
    ref = curv_hessian(mlp, batches, block_sizes=[len(ns) for ns in LAYERS.values()])
    v = random_vectors(ours.dim, 1, seed=9)[:, 0]
    parts = torch.split(v, [ours.block_dim(ns) for ns in LAYERS.values()])
    out = ours.block_matvecs({k: (ns, p) for (k, ns), p in zip(LAYERS.items(), parts, strict=True)})
    hv_blockdiag = torch.cat([out[k] for k in LAYERS])
    expected = ref @ v
    assert_close(hv_blockdiag, expected)
    # the full product differs: the off-diagonal blocks do contribute
    full = curv_hessian(mlp, batches) @ v
    assert (full - expected).abs().max() > 1e-2 * expected.abs().max()


# -- c. spectral density ------------------------------------------------------------------------


def moments(grid: np.ndarray, rho: np.ndarray, integral) -> tuple[float, float, float]:
    """Mass, mean and variance of a density sampled on its own grid."""
    mass = integral(rho, grid)
    mean = integral(grid * rho, grid) / mass
    return mass, mean, integral((grid - mean) ** 2 * rho, grid) / mass


def test_slq_density_moments_and_extremes_match_curvlinops_and_eigvalsh():
    n, steps, runs, seed = 400, 80, 20, 3
    rng = np.random.default_rng(0)
    lam = np.concatenate([rng.uniform(10.0, 11.0, n // 2), rng.uniform(14.0, 15.0, n // 2)])
    q = dense_orthogonal(n, rng)
    a = torch.tensor((q * lam) @ q.T)
    a = 0.5 * (a + a.T)
    eig = np.linalg.eigvalsh(a.numpy())
    exact_mean, exact_var = eig.mean(), eig.var()

    # Gaussian probes on both sides (curvlinops draws torch.randn from the global generator). With
    # the same seed torch's CPU generator yields the same probes for both, so the two estimates
    # share their Monte-Carlo error and differ only by their algorithms (re-orthogonalisation,
    # blur, grid).
    ours_runs = slq(
        lambda m: a @ m,
        n,
        num_steps=steps,
        num_runs=runs,
        distribution="gaussian",
        generator=torch.Generator().manual_seed(seed),
        matmat=True,
    )
    grid = default_grid(ours_runs, 4000)
    ours = moments(grid, density(ours_runs, grid), integrate)

    torch.manual_seed(seed)
    c_grid, c_rho = curvlinops.lanczos_approximate_spectrum(
        TensorLinearOperator(a), ncv=steps, num_repeats=runs
    )
    theirs = moments(c_grid.numpy(), c_rho.numpy(), np.trapezoid)

    for mass, mean, var in (ours, theirs):
        assert mass == pytest.approx(1.0, abs=1e-3)
        # Monte-Carlo error of 20 probes of a 400-dim matrix: a few 1e-3 here
        assert mean == pytest.approx(exact_mean, rel=1e-2)
        assert var == pytest.approx(exact_var, rel=1e-2)
    assert ours[1] == pytest.approx(theirs[1], rel=1e-2)
    assert ours[2] == pytest.approx(theirs[2], rel=1e-2)

    lo, hi = extreme_eigenvalues(ours_runs)
    assert lo == pytest.approx(eig.min(), rel=1e-3)
    assert hi == pytest.approx(eig.max(), rel=1e-3)
