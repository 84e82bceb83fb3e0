"""AdaSub against closed forms and a float64 numpy transcription of the algorithm.

The transcription (`reference_adasub`) takes exact Hessians from `torch.autograd.functional`
and orthonormal bases from numpy's QR; it shares nothing with `secondorder.optim.adasub`
(which builds its bases from a Cholesky factor of the Gram matrix).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from secondorder.optim.adasub import AdaSub

pytestmark = pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True")

F64 = torch.float64
SHAPES = [(4, 3), (4,), (2, 4), (2,)]
SIZES = [math.prod(s) for s in SHAPES]
OFFS = np.concatenate([[0], np.cumsum(SIZES)])
MODES = ["per_tensor", "fused", "model"]


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


def qr_positive(g):
    """The unique thin QR with a positive diagonal of R (Gram-Schmidt from the first column)."""
    q, r = np.linalg.qr(g)
    signs = np.sign(np.diag(r))
    return q * signs, r * signs[:, None]


def independent_newest_first(cols, tol=1e-4):
    """The columns (kept in order) that add a direction to the newer ones: relative residual of
    the least-squares fit by the newer kept columns above `tol` (dropped ones leave the history)."""
    kept = []
    for c in reversed(cols):
        norm = np.linalg.norm(c)
        if norm == 0.0:
            continue
        if kept:
            k = np.stack(kept, axis=1)
            resid = c - k @ np.linalg.lstsq(k, c, rcond=None)[0]
            if np.linalg.norm(resid) <= tol * norm:
                continue
        kept.append(c)
    return kept[::-1]


def reference_adasub(params0, batches, lr, m, rho, mode="per_tensor", reuse=False, interval=1,
                     loss=mlp_loss, shapes=SHAPES):
    """The algorithm with exact Hessians, in numpy float64 (see the module docstring)."""
    sizes = [math.prod(s) for s in shapes]
    offs = np.concatenate([[0], np.cumsum(sizes)])
    theta = np.concatenate([p.reshape(-1).numpy() for p in params0])
    layers = [np.arange(offs[i], offs[i + 1]) for i in range(len(shapes))]
    blocks = [np.arange(offs[-1])] if mode == "model" else layers
    hist = [[] for _ in blocks]
    prods = [[] for _ in blocks]
    saved = [None for _ in blocks]
    for t, (x, y) in enumerate(batches):

        def f(flat, x=x, y=y):
            return loss([c.reshape(s) for c, s in zip(flat.split(sizes), shapes, strict=True)], x, y)

        th = torch.tensor(theta, dtype=F64)
        g = torch.autograd.functional.jacobian(f, th).numpy()
        hess = torch.autograd.functional.hessian(f, th).numpy()
        if t % interval == 0:
            bases = []
            for b, idx in enumerate(blocks):
                hist[b] = (hist[b] + [g[idx]])[-m:]  # G <- [G, g], keep m columns
                if reuse:
                    prods[b] = prods[b] + [None]  # this step's product, filled in below
                    prods[b] = prods[b][-m:]
                keep = [any(c is k for k in independent_newest_first(hist[b])) for c in hist[b]]
                hist[b] = [c for c, k in zip(hist[b], keep, strict=True) if k]
                if reuse:
                    prods[b] = [p for p, k in zip(prods[b], keep, strict=True) if k]
                bases.append(qr_positive(np.stack(hist[b], axis=1)))
            for b, idx in enumerate(blocks):
                v, r = bases[b]
                if reuse:  # the newest column's product, with this step's Hessian
                    newest = hess[np.ix_(idx, idx)] @ g[idx] if mode == "per_tensor" else (
                        hess @ g)[idx]
                    prods[b][-1] = newest
                    r_inv = np.linalg.inv(r)
                    small = r_inv.T @ np.stack(hist[b], 1).T @ np.stack(prods[b], 1) @ r_inv
                elif mode == "fused":  # H times the vector of every block's column j
                    cols = []
                    for j in range(v.shape[1]):
                        vec = np.zeros_like(theta)
                        for other, (vo, _) in zip(blocks, bases, strict=True):
                            if j < vo.shape[1]:
                                vec[other] = vo[:, j]
                        cols.append((hess @ vec)[idx])
                    small = v.T @ np.stack(cols, axis=1)
                else:  # per_tensor: the diagonal block; model: idx is everything
                    small = v.T @ hess[np.ix_(idx, idx)] @ v
                small = 0.5 * (small + small.T)
                alpha = max(0.0, rho - np.linalg.eigvalsh(small).min())
                saved[b] = (v, np.linalg.inv(small + alpha * np.eye(len(small))))
        new = theta.copy()
        for b, idx in enumerate(blocks):
            v, inv = saved[b]
            new[idx] = theta[idx] - lr * v @ inv @ v.T @ g[idx]
        theta = new
    return theta


def run_adasub(p0, batches, loss=mlp_loss, **kw):
    params = [p.clone().requires_grad_() for p in p0]
    opt = AdaSub(params, **kw)
    for x, y in batches:
        curvature = opt.needs_curvature()
        loss(params, x, y).backward(create_graph=curvature)
        opt.step()
        assert all(p.grad.grad_fn is None for p in params)
        opt.zero_grad(set_to_none=True)
    return np.concatenate([p.detach().reshape(-1).numpy() for p in params]), opt


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("m", [1, 3])
def test_matches_float64_transcription(mode, m):
    """S = V^T H_bb V per tensor (per_tensor), the fused products, V^T H V of the full Hessian
    (model): five steps agree with the transcription."""
    batches = make_batches(5)
    p0 = init_params()
    ref = reference_adasub(p0, batches, lr=0.3, m=m, rho=0.5, mode=mode)
    got, opt = run_adasub(p0, batches, lr=0.3, n_directions=m, rho=0.5, mode=mode)
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-12)
    start = np.concatenate([p.reshape(-1).numpy() for p in p0])
    assert np.abs(got - start).max() > 1e-2
    assert opt.metrics() == {"adasub/fallbacks": 0, "adasub/skipped": 0}


@pytest.mark.parametrize("mode", MODES)
def test_reuse_products_matches_transcription_with_stale_products(mode):
    batches = make_batches(6, seed=3)
    p0 = init_params(1)
    ref = reference_adasub(p0, batches, lr=0.3, m=3, rho=0.5, mode=mode, reuse=True)
    got, _ = run_adasub(p0, batches, lr=0.3, n_directions=3, rho=0.5, mode=mode,
                        reuse_products=True)
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-12)
    fresh = reference_adasub(p0, batches, lr=0.3, m=3, rho=0.5, mode=mode)
    assert np.abs(got - fresh).max() > 1e-6  # the stale products do change the result here


def quadratic_loss(ps, x, y):
    """0.5 theta^T A theta - b^T theta with a fixed SPD A coupling all tensors (x, y unused)."""
    theta = torch.cat([p.reshape(-1) for p in ps])
    return 0.5 * theta @ QUAD_A @ theta - QUAD_B @ theta


_gen = torch.Generator().manual_seed(11)
_n = sum(SIZES)
_q = torch.linalg.qr(torch.randn(_n, _n, generator=_gen, dtype=F64))[0]
QUAD_A = _q @ torch.diag(torch.linspace(0.5, 4.0, _n, dtype=F64)) @ _q.T
QUAD_B = torch.randn(_n, generator=_gen, dtype=F64)


@pytest.mark.parametrize("mode", ["per_tensor", "model"])
def test_reuse_products_is_exact_when_the_hessian_is_constant(mode):
    """(fused is not: its reused products are (H g)_b of whole gradients, its fresh ones H applied
    to the stacked basis columns; the transcription test above covers it.)"""
    batches = make_batches(6)
    p0 = init_params(2)
    kw = dict(lr=0.5, n_directions=3, rho=0.01, mode=mode)
    reused, _ = run_adasub(p0, batches, loss=quadratic_loss, reuse_products=True, **kw)
    fresh, _ = run_adasub(p0, batches, loss=quadratic_loss, **kw)
    np.testing.assert_allclose(reused, fresh, rtol=1e-10, atol=1e-12)
    ref = reference_adasub(p0, batches, loss=quadratic_loss, **{k: v for k, v in kw.items()
                                                                 if k != "n_directions"}, m=3)
    np.testing.assert_allclose(fresh, ref, rtol=1e-9, atol=1e-12)


def test_whole_model_newton_step_on_a_convex_quadratic():
    """m >= dimension, rho -> 0, lr 1: once the history spans R^n the step lands on A^-1 b."""
    n = sum(SIZES)
    p0 = init_params(4)
    params = [p.clone().requires_grad_() for p in p0]
    opt = AdaSub(params, lr=1.0, n_directions=n, rho=1e-12, mode="model")
    for _ in range(n):
        quadratic_loss(params, None, None).backward(create_graph=True)
        opt.step()
        opt.zero_grad(set_to_none=True)
    theta = torch.cat([p.detach().reshape(-1) for p in params])
    # Krylov: after k exact subspace-Newton steps the iterate minimises f over a k-dim space;
    # the gradients are independent until it reaches the minimiser
    torch.testing.assert_close(theta, torch.linalg.solve(QUAD_A, QUAD_B), rtol=1e-8, atol=1e-8)


def test_hessian_interval_projects_onto_the_last_refreshed_subspace():
    batches = make_batches(7, seed=5)
    p0 = init_params(3)
    for mode in ("per_tensor", "model"):
        ref = reference_adasub(p0, batches, lr=0.3, m=2, rho=0.5, mode=mode, interval=3)
        got, opt = run_adasub(p0, batches, lr=0.3, n_directions=2, rho=0.5, mode=mode,
                              hessian_interval=3)
        np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-12)
        assert opt.step_count == 7


def test_hessian_scale_multiplies_the_products():
    """step(hessian_scale=s) is the step for the Hessian s * H (the protocol's batch slice)."""
    x = torch.tensor([1.0, -2.0], dtype=F64, requires_grad=True)
    a = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=F64)
    opt = AdaSub([x], lr=1.0, n_directions=1, rho=1e-9)
    (0.5 * x @ a @ x).backward(create_graph=True)
    g = (a @ x).detach()
    x0 = x.detach().clone()
    opt.step(hessian_scale=4.0)
    t = (g @ g) / (4.0 * (g @ a @ g))  # minimiser of the model with Hessian 4A along -g
    torch.testing.assert_close(x.detach(), x0 - t * g, rtol=1e-12, atol=1e-12)


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


# -- robustness ---------------------------------------------------------------------------


def test_repeated_gradient_is_dropped_from_the_history():
    """lr = 0: the same gradient arrives three times; the history keeps one column."""
    x = torch.tensor([1.0, 2.0, -1.0], dtype=F64, requires_grad=True)
    opt = AdaSub([x], lr=0.0, n_directions=3, rho=0.1)
    for _ in range(3):
        ((x**2).sum() + x.prod()).backward(create_graph=True)
        opt.step()
        opt.zero_grad(set_to_none=True)
    assert opt.state[x]["history"].shape == (3, 1)
    assert opt.metrics() == {"adasub/fallbacks": 0, "adasub/skipped": 0}


def test_parallel_gradient_does_not_divide_by_zero():
    """g_2 = -2 g_1 exactly (x moves along g_1 on f = |x|^2): one column, an exact step."""
    x = torch.tensor([3.0, -4.0], dtype=F64, requires_grad=True)
    opt = AdaSub([x], lr=1.5, n_directions=2, rho=1e-9)  # lr 1.5 overshoots: x -> -x/2
    for _ in range(2):
        (x**2).sum().backward(create_graph=True)
        opt.step()
        opt.zero_grad(set_to_none=True)
    assert opt.state[x]["history"].shape == (2, 1)
    torch.testing.assert_close(x.detach(), torch.tensor([0.75, -1.0], dtype=F64))


def test_zero_gradient_block_is_not_moved():
    w = torch.tensor([1.0, 2.0], dtype=F64, requires_grad=True)
    u = torch.tensor([0.0, 0.0], dtype=F64, requires_grad=True)  # f has zero gradient here
    opt = AdaSub([w, u], lr=0.5, n_directions=2, rho=0.1)
    ((w**2).sum() + (u**2).sum()).backward(create_graph=True)
    opt.step()
    assert torch.equal(u.detach(), torch.zeros(2, dtype=F64))
    assert torch.isfinite(w).all() and not torch.equal(w.detach(), torch.tensor([1.0, 2.0], dtype=F64))
    assert opt.metrics()["adasub/fallbacks"] == 0


def test_failing_eigen_solver_takes_a_counted_gradient_step(monkeypatch):
    x = torch.tensor([1.0, -2.0], dtype=F64, requires_grad=True)
    y = torch.tensor([0.5], dtype=F64, requires_grad=True)
    opt = AdaSub([x, y], lr=0.1, n_directions=2, rho=0.1)

    def broken(*args, **kwargs):
        raise torch.linalg.LinAlgError("linalg.eigh: the algorithm failed to converge")

    monkeypatch.setattr(torch.linalg, "eigh", broken)
    ((x**4).sum() + (y**2).sum()).backward(create_graph=True)
    gx, gy = 4 * torch.tensor([1.0, -8.0], dtype=F64), torch.tensor([1.0], dtype=F64)
    opt.step()
    torch.testing.assert_close(x.detach(), torch.tensor([1.0, -2.0], dtype=F64) - 0.1 * gx)
    torch.testing.assert_close(y.detach(), torch.tensor([0.5], dtype=F64) - 0.1 * gy)
    assert opt.metrics() == {"adasub/fallbacks": 2, "adasub/skipped": 0}


def test_non_finite_product_takes_a_gradient_step():
    """f = |x|^1.5 has gradient 0 but infinite curvature at 0: H v is not finite."""
    x = torch.tensor([0.0, 1.0], dtype=F64, requires_grad=True)
    opt = AdaSub([x], lr=0.1, n_directions=2, rho=0.1)
    x.abs().pow(1.5).sum().backward(create_graph=True)
    opt.step()
    torch.testing.assert_close(x.detach(), torch.tensor([0.0, 1.0 - 0.1 * 1.5], dtype=F64))
    assert opt.metrics()["adasub/fallbacks"] == 1
    assert all(torch.isfinite(t).all() for t in opt.state[x].values() if torch.is_tensor(t))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("bad", [math.inf, math.nan])
def test_non_finite_gradient_never_reaches_the_weights(mode, bad):
    p0 = init_params()
    params = [p.clone().requires_grad_() for p in p0]
    opt = AdaSub(params, lr=0.3, n_directions=2, rho=0.5, mode=mode, reuse_products=True)
    (x, y), (x2, y2) = make_batches(2)
    mlp_loss(params, x, y).backward(create_graph=True)
    params[1].grad = params[1].grad + bad  # still carries the graph
    opt.step()
    opt.zero_grad(set_to_none=True)
    assert all(torch.isfinite(p).all() for p in params)
    assert opt.metrics()["adasub/skipped"] == (1 if mode == "model" else 1)
    moved = [not torch.equal(p.detach(), q) for p, q in zip(params, p0, strict=True)]
    assert moved == ([False] * 4 if mode == "model" else [True, False, True, True])
    mlp_loss(params, x2, y2).backward(create_graph=True)  # training goes on
    opt.step()
    assert all(torch.isfinite(p).all() for p in params)
    assert all(not torch.equal(p.detach(), q) for p, q in zip(params, p0, strict=True))
    for p in params:
        assert all(torch.isfinite(t).all() for t in opt.state[p].values() if torch.is_tensor(t))


def test_parameter_without_a_graph_is_stepped_with_zero_curvature():
    """The loss is linear in b: its gradient has no graph, its Hessian is 0, S + alpha = rho."""
    w = torch.tensor([1.0, -1.0], dtype=F64, requires_grad=True)
    b = torch.tensor([0.3, 0.2], dtype=F64, requires_grad=True)
    opt = AdaSub([w, b], lr=0.1, n_directions=2, rho=0.5)
    ((w**2).sum() + (torch.tensor([1.0, 2.0], dtype=F64) * b).sum()).backward(create_graph=True)
    assert not b.grad.requires_grad
    opt.step()
    torch.testing.assert_close(b.detach(), torch.tensor([0.3, 0.2], dtype=F64)
                               - 0.1 * torch.tensor([1.0, 2.0], dtype=F64) / 0.5)
    # w: f = |w|^2 along g: exact Newton with H = 2 (> rho): w -> w - 0.1 * g / 2
    torch.testing.assert_close(w.detach(), torch.tensor([0.9, -0.9], dtype=F64))


def test_missing_graph_raises():
    x = torch.ones(2, requires_grad=True)
    opt = AdaSub([x])
    (x**2).sum().backward()
    with pytest.raises(RuntimeError, match="create_graph=True"):
        opt.step()


@pytest.mark.parametrize("kw", [dict(rho=0.0), dict(mode="cross"), dict(n_directions=0),
                                dict(hessian_interval=0), dict(hessian_batch_fraction=0.0),
                                dict(reuse_products=1)])
def test_bad_hyperparameters_are_refused(kw):
    with pytest.raises(ValueError, match=f"AdaSub: {next(iter(kw))}="):
        AdaSub([torch.ones(2, requires_grad=True)], **kw)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("reuse", [False, True])
def test_state_dict_resume_is_bit_identical(mode, reuse):
    batches = make_batches(6, seed=9)
    p0 = init_params(5)
    kw = dict(lr=0.3, n_directions=3, rho=0.5, mode=mode, reuse_products=reuse,
              hessian_interval=2)
    straight, _ = run_adasub(p0, batches, **kw)
    params = [p.clone().requires_grad_() for p in p0]
    opt = AdaSub(params, **kw)
    for i, (x, y) in enumerate(batches):
        if i == 3:  # save, rebuild everything from the saved state, continue
            saved = [p.detach().clone() for p in params], opt.state_dict()
            params = [p.clone().requires_grad_() for p in saved[0]]
            opt = AdaSub(params, **kw)
            opt.load_state_dict(saved[1])
        mlp_loss(params, x, y).backward(create_graph=opt.needs_curvature())
        opt.step()
        opt.zero_grad(set_to_none=True)
    resumed = np.concatenate([p.detach().reshape(-1).numpy() for p in params])
    assert np.array_equal(resumed, straight)
