"""SLQ against matrices with known spectra (float64 references, closed forms)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.fft
import torch

from secondorder.curvature.lanczos import (
    LanczosRecurrence,
    adaptive_grid,
    default_grid,
    density,
    extreme_eigenvalues,
    integrate,
    lanczos,
    random_start,
    slq,
    tridiagonal_quadrature,
)


def dense_orthogonal(n: int, rng: np.random.Generator) -> np.ndarray:
    """A dense orthogonal matrix: orthonormal DCT-II with random signs and permutations.

    (A Haar QR of a 2000 x 2000 matrix takes seconds on a loaded 2-core machine.)
    """
    c = scipy.fft.dct(np.eye(n), axis=0, norm="ortho")
    signs = rng.choice([-1.0, 1.0], size=n)
    return (c * signs)[rng.permutation(n)][:, rng.permutation(n)]


@pytest.fixture(scope="module")
def two_clusters():
    n = 2000
    rng = np.random.default_rng(0)
    lam = np.concatenate([rng.uniform(10.0, 11.0, n // 2), rng.uniform(14.0, 15.0, n // 2)])
    lam[0], lam[-1] = 10.0, 15.0  # known extremes
    q = dense_orthogonal(n, rng)
    x = rng.standard_normal(n)
    assert np.linalg.norm(q @ x) == pytest.approx(np.linalg.norm(x), rel=1e-12)
    a = torch.tensor((q * lam) @ q.T)
    a = 0.5 * (a + a.T)
    return a, lam


def test_slq_two_clusters_extremes_and_moments(two_clusters):
    a, lam = two_clusters
    n = lam.size
    gen = torch.Generator().manual_seed(1)
    runs = slq(lambda v: a @ v, n, num_steps=100, num_runs=10, generator=gen, matmat=True)
    assert len(runs) == 10
    for r in runs:
        assert r.weights.sum() == pytest.approx(1.0, abs=1e-12)
        assert np.all(r.weights >= 0)
    lo, hi = extreme_eigenvalues(runs)
    assert abs(lo - lam.min()) / lam.min() < 1e-3
    assert abs(hi - lam.max()) / lam.max() < 1e-3
    grid = default_grid(runs, 6000)
    rho = density(runs, grid)
    assert np.trapezoid(rho, grid) == pytest.approx(1.0, abs=1e-3)
    m1 = np.trapezoid(grid * rho, grid)
    m2 = np.trapezoid(grid**2 * rho, grid)
    tr1 = float(torch.trace(a)) / n
    tr2 = float((a * a).sum()) / n  # trace(A^2) = ||A||_F^2 for symmetric A
    assert tr1 == pytest.approx(lam.mean(), rel=1e-10)
    assert m1 == pytest.approx(tr1, rel=1e-2)
    assert m2 == pytest.approx(tr2, rel=1e-2)
    # no mass between the clusters (11, 14) beyond blur tails
    gap = (grid > 11.5) & (grid < 13.5)
    assert rho[gap].max() < 1e-6 * rho.max()


def test_sequential_and_matmat_runs_agree(two_clusters):
    a, lam = two_clusters
    small = a[:300, :300]  # any symmetric matrix
    r1 = slq(
        lambda v: small @ v,
        300,
        num_steps=20,
        num_runs=2,
        generator=torch.Generator().manual_seed(3),
    )
    r2 = slq(
        lambda v: small @ v,
        300,
        num_steps=20,
        num_runs=2,
        generator=torch.Generator().manual_seed(3),
        matmat=True,
    )
    for x, y in zip(r1, r2, strict=True):
        np.testing.assert_allclose(x.nodes, y.nodes, rtol=1e-10)
        np.testing.assert_allclose(x.weights, y.weights, rtol=1e-8, atol=1e-14)


def test_gauss_quadrature_is_exact_for_low_degree_moments():
    """m Lanczos steps integrate x^k exactly against mu_v for k < 2m: sum w x^k = v^T A^k v."""
    rng = np.random.default_rng(2)
    b = rng.standard_normal((30, 30))
    a = torch.tensor(0.5 * (b + b.T))
    v = random_start(30, "gaussian", generator=torch.Generator().manual_seed(0))
    m = 5
    alpha, beta = lanczos(lambda x: a @ x, 30, m, start=v)
    q = tridiagonal_quadrature(alpha, beta)
    vk = v.clone()
    for k in range(2 * m):
        exact = float(v @ vk)  # v^T A^k v
        approx = float(np.sum(q.weights * q.nodes**k))
        assert approx == pytest.approx(exact, rel=1e-9, abs=1e-9)
        vk = a @ vk


def test_full_lanczos_recovers_spectrum_and_weights_of_diagonal_matrix():
    lam = np.linspace(-3.0, 5.0, 40)
    a = torch.diag(torch.tensor(lam))
    v = random_start(40, "rademacher", generator=torch.Generator().manual_seed(4))
    alpha, beta = lanczos(lambda x: a @ x, 40, 40, start=v)
    q = tridiagonal_quadrature(alpha, beta)
    np.testing.assert_allclose(q.nodes, lam, atol=1e-9)
    # eigenvectors are the unit vectors, so the weights are v_i^2 = 1/40
    np.testing.assert_allclose(q.weights, np.full(40, 1 / 40), atol=1e-9)


def test_breakdown_stops_at_number_of_distinct_eigenvalues():
    rng = np.random.default_rng(5)
    lam = np.repeat([1.0, 2.0, 7.0], [50, 30, 20])
    q, _ = np.linalg.qr(rng.standard_normal((100, 100)))
    a = torch.tensor((q * lam) @ q.T)
    v = random_start(100, "gaussian", generator=torch.Generator().manual_seed(6))
    alpha, beta = lanczos(lambda x: a @ x, 100, 50, start=v)
    assert alpha.numel() == 3 and beta.numel() == 2
    quad = tridiagonal_quadrature(alpha, beta)
    np.testing.assert_allclose(quad.nodes, [1.0, 2.0, 7.0], atol=1e-10)
    proj = (q.T @ v.numpy()) ** 2  # weight of each eigenspace = squared norm of the projection
    expected = [proj[:50].sum(), proj[50:80].sum(), proj[80:].sum()]
    np.testing.assert_allclose(quad.weights, expected, atol=1e-10)
    rec = LanczosRecurrence(v, 50)
    while not rec.done:
        rec.step(a @ rec.vector)
    assert rec.breakdown


def test_plain_recurrence_without_reorthogonalization():
    rng = np.random.default_rng(7)
    lam = np.concatenate([rng.uniform(1, 2, 200), [10.0]])
    a = torch.diag(torch.tensor(lam))
    runs = slq(
        lambda v: a @ v,
        201,
        num_steps=30,
        num_runs=2,
        reorthogonalize=False,
        generator=torch.Generator().manual_seed(8),
    )
    lo, hi = extreme_eigenvalues(runs)
    assert hi == pytest.approx(10.0, rel=1e-8)
    assert lo == pytest.approx(lam.min(), rel=1e-2)


def test_density_width_conventions():
    runs = [(np.array([0.0]), np.array([1.0]))]
    grid = np.linspace(-0.05, 0.05, 20001)
    rho = density(runs, grid, method="point", normalize=False)
    peak = 1.0 / math.sqrt(2 * math.pi * 1e-5)  # variance 1e-5 (hessian-spectrum)
    assert rho.max() == pytest.approx(peak, rel=1e-6)
    # PyHessian: variance 1e-5 * max(1, range), range = run-averaged max node - min node
    runs2 = [(np.array([0.0, 10.0]), np.array([0.5, 0.5]))] * 2
    grid2 = np.linspace(-0.1, 0.1, 4001)
    rho2 = density(runs2, grid2, method="point", normalize=False, scale_by_range=True)
    assert rho2.max() == pytest.approx(0.5 / math.sqrt(2 * math.pi * 1e-4), rel=1e-6)
    # range < 1: the variance is not shrunk
    runs3 = [(np.array([0.0, 0.5]), np.array([0.5, 0.5]))]
    rho3 = density(runs3, grid, method="point", normalize=False, scale_by_range=True)
    assert rho3.max() == pytest.approx(0.5 * peak, rel=1e-6)


def test_cell_density_keeps_mass_on_coarse_grids():
    sd = math.sqrt(1e-5)
    runs = [(np.array([0.37 * 10 * sd]), np.array([1.0]))]
    coarse = np.arange(-50, 51) * 10 * sd  # step = 10 blur widths
    cell = density(runs, coarse, normalize=False)
    point = density(runs, coarse, method="point", normalize=False)
    assert integrate(cell, coarse) == pytest.approx(1.0, abs=1e-12)
    assert abs(integrate(point, coarse) - 1.0) > 0.5  # point sampling misses the mass
    fine = np.linspace(-0.05, 0.05, 40001)
    np.testing.assert_allclose(
        density(runs, fine, normalize=False),
        density(runs, fine, method="point", normalize=False),
        rtol=1e-3,
        atol=1e-8 * cell.max(),
    )


def test_adaptive_grid_resolves_far_apart_nodes():
    runs = [(np.array([0.0, 1e4]), np.array([0.25, 0.75]))]
    grid = adaptive_grid(runs)
    assert grid.size < 1000  # a uniform grid resolving the blur would need ~1e7 points
    rho = density(runs, grid, normalize=False)
    assert integrate(rho, grid) == pytest.approx(1.0, abs=1e-9)
    near0 = grid < 5e3
    assert integrate(rho * near0, grid) == pytest.approx(0.25, abs=1e-9)


def test_density_rejects_grid_without_mass():
    with pytest.raises(ValueError):
        density([(np.array([100.0]), np.array([1.0]))], np.linspace(0, 1, 50))
