"""AdaSub against closed forms and a float64 transcription of Algorithm 2 (papers/000 appendix)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from secondorder.optim.adasub import AdaSub

pytestmark = pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True")

F64 = torch.float64
SHAPES = [(4, 3), (4,), (2, 4), (2,)]


def make_batches(n_steps, seed=0, n=10):
    g = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(n, 3, generator=g, dtype=F64), torch.randn(n, 2, generator=g, dtype=F64))
        for _ in range(n_steps)
    ]


def init_params(seed=0):
    g = torch.Generator().manual_seed(seed + 7)
    return [0.5 * torch.randn(s, generator=g, dtype=F64) for s in SHAPES]


def mlp_loss(ps, x, y):
    w1, b1, w2, b2 = ps
    return ((torch.tanh(x @ w1.T + b1) @ w2.T + b2 - y) ** 2).mean()


def reference_adasub(params0, batches, lr, m, rho, cross_layer):
    """Algorithm 2 with exact Hessians (numpy float64)."""
    sizes = [math.prod(s) for s in SHAPES]
    offs = np.concatenate([[0], np.cumsum(sizes)])
    theta = np.concatenate([p.reshape(-1).numpy() for p in params0])
    hist: list[list[np.ndarray]] = [[] for _ in SHAPES]
    for x, y in batches:

        def f(flat, x=x, y=y):
            return mlp_loss(
                [c.reshape(s) for c, s in zip(flat.split(sizes), SHAPES, strict=True)], x, y
            )

        th = torch.tensor(theta, dtype=F64)
        g = torch.autograd.functional.jacobian(f, th).numpy()
        hess = torch.autograd.functional.hessian(f, th).numpy()
        bases = []
        for layer in range(len(SHAPES)):
            sl = slice(offs[layer], offs[layer + 1])
            hist[layer] = (hist[layer] + [g[sl]])[-m:]  # G_l <- [G_l, g], keep m columns
            v, _ = np.linalg.qr(np.stack(hist[layer], axis=1))  # orthonormal basis
            bases.append(v)
        new = theta.copy()
        for layer, v in enumerate(bases):
            sl = slice(offs[layer], offs[layer + 1])
            if cross_layer:  # H applied to the block vector holding every layer's column j
                y_cols = []
                for j in range(v.shape[1]):
                    vec = np.zeros_like(theta)
                    for other, vo in enumerate(bases):
                        if j < vo.shape[1]:
                            vec[offs[other] : offs[other + 1]] = vo[:, j]
                    y_cols.append((hess @ vec)[sl])
                y_l = np.stack(y_cols, axis=1)
            else:
                y_l = hess[sl, sl] @ v  # diagonal block H_{t,l}
            small = v.T @ y_l
            small = 0.5 * (small + small.T)
            lam = np.linalg.eigvalsh(small)
            alpha = max(0.0, rho - lam.min())
            step = v @ np.linalg.solve(small + alpha * np.eye(len(lam)), v.T @ g[sl])
            new[sl] = theta[sl] - lr * step
        theta = new
    return theta


@pytest.mark.parametrize("cross_layer", [False, True])
@pytest.mark.parametrize("m", [1, 3])
def test_matches_float64_transcription(cross_layer, m):
    batches = make_batches(5)
    p0 = init_params()
    ref = reference_adasub(p0, batches, lr=0.3, m=m, rho=0.5, cross_layer=cross_layer)
    params = [p.clone().requires_grad_() for p in p0]
    opt = AdaSub(params, lr=0.3, n_directions=m, rho=0.5, cross_layer_hvp=cross_layer)
    for x, y in batches:
        assert opt.needs_curvature()
        mlp_loss(params, x, y).backward(create_graph=True)
        opt.step()
        assert all(p.grad.grad_fn is None for p in params)
        opt.zero_grad(set_to_none=True)
    got = np.concatenate([p.detach().reshape(-1).numpy() for p in params])
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-12)
    start = np.concatenate([p.reshape(-1).numpy() for p in p0])
    assert np.abs(got - start).max() > 1e-2


def test_cross_layer_option_differs():
    batches = make_batches(2)
    a = reference_adasub(init_params(), batches, lr=0.3, m=2, rho=0.5, cross_layer=False)
    b = reference_adasub(init_params(), batches, lr=0.3, m=2, rho=0.5, cross_layer=True)
    assert np.abs(a - b).max() > 1e-4


def test_exact_newton_once_subspace_spans_the_space():
    # f = 0.5 x^T A x - b^T x in R^2, A SPD with eigenvalues > rho: step 1 minimises f along
    # g_1, step 2 has span(g_1, g_2) = R^2, so with lr = 1 it lands on A^{-1} b
    a = torch.tensor([[3.0, 1.0], [1.0, 2.0]], dtype=F64)
    b = torch.tensor([1.0, -1.0], dtype=F64)
    x = torch.tensor([2.0, 2.0], dtype=F64, requires_grad=True)
    opt = AdaSub([x], lr=1.0, n_directions=2, rho=0.02)

    def f():
        return 0.5 * x @ a @ x - b @ x

    x0 = x.detach().clone()
    f().backward(create_graph=True)
    opt.step()
    opt.zero_grad(set_to_none=True)
    g1 = a @ x0 - b
    t_star = (g1 @ g1) / (g1 @ a @ g1)  # exact line search along -g1
    torch.testing.assert_close(x.detach(), x0 - t_star * g1, rtol=1e-12, atol=1e-12)
    f().backward(create_graph=True)
    opt.step()
    torch.testing.assert_close(x.detach(), torch.linalg.solve(a, b), rtol=1e-12, atol=1e-12)


def test_negative_curvature_is_regularised():
    # f = -0.5 x^2 + 0.25 x^4 at x = 0.5: H = -1 + 3 x^2 = -0.25 < rho -> alpha = rho + 0.25
    x = torch.tensor([0.5], dtype=F64, requires_grad=True)
    opt = AdaSub([x], lr=1.0, n_directions=1, rho=0.1)
    (-0.5 * x**2 + 0.25 * x**4).sum().backward(create_graph=True)
    opt.step()
    g = -0.5 + 0.125
    # V^T H V + alpha = -0.25 + 0.35 = 0.1
    assert x.item() == pytest.approx(0.5 - g / 0.1, abs=1e-12)


def test_missing_graph_raises():
    x = torch.ones(2, requires_grad=True)
    opt = AdaSub([x])
    (x**2).sum().backward()
    with pytest.raises(RuntimeError, match="create_graph=True"):
        opt.step()
