"""Quadratic cases of Section 3: construction, closed-form optimizer steps, the paper's claim."""

from __future__ import annotations

import numpy as np
import pytest

from secondorder.experiments.quadratic import (
    QuadraticProblem,
    make_case,
    run_adam,
    run_case,
    run_gd,
)
from secondorder.report.controlled_figures import figure_8


@pytest.mark.parametrize("case", [1, 2, 3, 4])
def test_cases_are_block_diagonal_with_condition_number_2000(case):
    p = make_case(case, seed=3)
    eig = np.linalg.eigvalsh(p.H)
    assert eig.min() == pytest.approx(1.0, rel=1e-10)
    assert eig.max() == pytest.approx(2000.0, rel=1e-10)
    np.testing.assert_allclose(p.H, p.H.T)
    mask = np.zeros_like(p.H, dtype=bool)
    for idx, lam in zip(p.blocks, p.block_eigenvalues, strict=True):
        mask[np.ix_(idx, idx)] = True
        np.testing.assert_allclose(
            np.linalg.eigvalsh(p.H[np.ix_(idx, idx)]), np.sort(lam), rtol=1e-9, atol=1e-9
        )
    assert np.all(p.H[~mask] == 0)


def test_case3_and_case4_blocks_and_shared_eigenvalues():
    p3, p4 = make_case(3, seed=0), make_case(4, seed=0)
    blocks3 = [np.linalg.eigvalsh(p3.H[np.ix_(i, i)]) for i in p3.blocks]
    blocks4 = [np.linalg.eigvalsh(p4.H[np.ix_(i, i)]) for i in p4.blocks]
    np.testing.assert_allclose(blocks3, [[1, 2, 3], [99, 100, 101], [1998, 1999, 2000]], rtol=1e-9)
    np.testing.assert_allclose(blocks4, [[1, 99, 1998], [2, 100, 1999], [3, 101, 2000]], rtol=1e-9)
    np.testing.assert_allclose(
        np.linalg.eigvalsh(p3.H), np.linalg.eigvalsh(p4.H), rtol=1e-9
    )  # same spectrum, different blocks
    # Q_l are not diagonal: the blocks are dense
    assert np.abs(p3.H[np.ix_(p3.blocks[0], p3.blocks[0])] - np.diag([1, 2, 3])).max() > 0.1


def diagonal_problem(lam):
    lam = np.asarray(lam, dtype=float)
    idx = np.arange(lam.size)
    return QuadraticProblem(case=0, H=np.diag(lam), blocks=[idx], block_eigenvalues=[lam])


def test_gd_matches_closed_form_with_optimal_step():
    lam = np.array([1.0, 7.0, 2000.0])
    p = diagonal_problem(lam)
    w0 = np.array([1.0, -2.0, 0.5])
    norms = run_gd(p, w0, 50)
    eta = 2.0 / (1.0 + 2000.0)
    for t in (0, 1, 17, 50):
        g = lam * w0 * (1 - eta * lam) ** t
        assert norms[t] == pytest.approx(np.linalg.norm(g), rel=1e-10)


def test_adam_beta2_one_is_fixed_diagonal_preconditioning():
    lam = np.array([1.0, 7.0, 2000.0])
    p = diagonal_problem(lam)
    w0 = np.array([1.0, -2.0, 0.5])
    eta = 0.3
    norms = run_adam(p, w0, 40, eta, beta2=1.0)
    d0 = np.abs(lam * w0)  # |grad L(w0)|
    for t in (0, 1, 9, 40):
        w = w0 * (1 - eta * lam / d0) ** t
        assert norms[t] == pytest.approx(np.linalg.norm(lam * w), rel=1e-9)


def test_adam_beta2_below_one_follows_equation_3():
    rng = np.random.default_rng(0)
    p = make_case(4, seed=1)
    w0 = rng.standard_normal(p.dim)
    eta, b2, steps = 0.05, 0.9, 6
    norms = run_adam(p, w0, steps, eta, beta2=b2)
    w, grads = w0.copy(), []
    for t in range(steps + 1):
        g = p.H @ w
        grads.append(g)
        assert norms[t] == pytest.approx(np.linalg.norm(g), rel=1e-10)
        # D_t^2 = (1 - b2) sum_{k=1..t} b2^(t-k) g_k^2 + b2^t g_0^2  (paper, Eq. (3))
        d2 = b2**t * grads[0] ** 2 + (1 - b2) * sum(
            b2 ** (t - k) * grads[k] ** 2 for k in range(1, t + 1)
        )
        w = w - eta * g / np.sqrt(d2)


def test_adam_beats_gd_by_orders_of_magnitude_only_on_heterogeneous_case():
    """Paper, Section 3.2 / Figure 8 (c, d): same eigenvalues, different block placement.

    Case 3: Adam (beta1 = 0, beta2 = 1, grid-searched step) is ahead of GD (optimal step) by
    tens of orders of magnitude in gradient norm, and the gap keeps growing (faster rate).
    Case 4: it is not -- at most a constant head start of a few decades, with GD's rate.
    """
    lrs = np.logspace(-3, 1, 9)
    for seed in (0, 1, 2):
        r3 = run_case(3, num_iters=1000, seed=seed, lrs=lrs, beta2s=(1.0,))
        r4 = run_case(4, num_iters=1000, seed=seed, lrs=lrs, beta2s=(1.0,))
        key = "Adam (beta2=1)"

        def gap(r, t, key=key):
            adam = max(r.curves[key][t], 1e-300)
            return np.log10(r.curves["GD"][t]) - np.log10(adam)

        assert gap(r3, 1000) > 20
        assert gap(r3, 1000) - gap(r3, 500) > 8  # the gap grows: a different rate
        assert gap(r4, 1000) < 6
        assert abs(gap(r4, 1000) - gap(r4, 500)) < 1  # the gap does not grow


def test_run_case_outputs_and_figure(tmp_path):
    res = {c: run_case(c, num_iters=30, seed=0, lrs=(0.01, 0.1)) for c in (3, 4)}
    for r in res.values():
        assert set(r.curves) == {"GD", "Adam (beta2=0.999)", "Adam (beta2=1)"}
        assert all(len(v) == 31 for v in r.curves.values())
        assert r.lrs["GD"] == pytest.approx(2 / 2001)
        js = r.to_json()
        assert js["final_grad_norm"]["GD"] == r.curves["GD"][-1]
    path = figure_8(res, tmp_path / "fig8.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
