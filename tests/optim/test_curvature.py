"""Curvature primitives against closed forms and float64 references."""

from __future__ import annotations

import math

import pytest
import torch

from secondorder.curvature.hutchinson import (
    hessian_vector_product,
    hutchinson_diagonal,
    rademacher_like,
)
from secondorder.optim.adahessian import spatial_average
from secondorder.optim.protocol import curvature_slice_size

F64 = torch.float64


# ----------------------------------------------------------------------------- Rademacher
@pytest.mark.parametrize("dtype", [torch.float32, F64, torch.bfloat16])
def test_rademacher_values_signs_mean(dtype):
    gen = torch.Generator().manual_seed(123)
    ts = [torch.empty(50_000, dtype=dtype), torch.empty(7, 3, dtype=dtype)]
    zs = rademacher_like(ts, gen)
    for t, z in zip(ts, zs, strict=True):
        assert z.shape == t.shape and z.dtype == t.dtype and z.device == t.device
        assert set(z.unique().tolist()) == {-1.0, 1.0}
    big = zs[0].double()
    # mean of n fair +-1 draws has std 1/sqrt(n): 5 sigma bound
    assert abs(big.mean().item()) < 5 / math.sqrt(big.numel())
    assert (big > 0).sum().item() > 0.45 * big.numel()
    assert (big < 0).sum().item() > 0.45 * big.numel()


def test_rademacher_reproducible_with_seed():
    ts = [torch.empty(100), torch.empty(3, 4)]
    a = rademacher_like(ts, torch.Generator().manual_seed(7))
    b = rademacher_like(ts, torch.Generator().manual_seed(7))
    c = rademacher_like(ts, torch.Generator().manual_seed(8))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a[0], c[0])


def test_rademacher_elements_independent():
    # products of two entries of the same draw must average to 0 (E[z_i z_j] = 0)
    z = rademacher_like([torch.empty(2, 20_000)], torch.Generator().manual_seed(1))[0].double()
    assert abs((z[0] * z[1]).mean().item()) < 5 / math.sqrt(20_000)


# ----------------------------------------------------------------------------- HVP
def _mlp_loss_flat(shapes, x, y):
    sizes = [math.prod(s) for s in shapes]

    def f(flat):
        ps = [c.reshape(s) for c, s in zip(flat.split(sizes), shapes, strict=True)]
        w1, b1, w2, b2 = ps
        out = torch.tanh(x @ w1.T + b1) @ w2.T + b2
        return ((out - y) ** 2).mean()

    return f


def test_hvp_matches_full_hessian_mlp_float64():
    torch.manual_seed(0)
    shapes = [(5, 3), (5,), (2, 5), (2,)]
    params = [torch.randn(s, dtype=F64, requires_grad=True) for s in shapes]
    x, y = torch.randn(8, 3, dtype=F64), torch.randn(8, 2, dtype=F64)
    f = _mlp_loss_flat(shapes, x, y)
    flat = torch.cat([p.detach().reshape(-1) for p in params])
    hess = torch.autograd.functional.hessian(f, flat)
    vs = [torch.randn(s, dtype=F64) for s in shapes]
    expected = hess @ torch.cat([v.reshape(-1) for v in vs])

    loss = f(torch.cat([p.reshape(-1) for p in params]))
    grads = torch.autograd.grad(loss, params, create_graph=True)
    hv = hessian_vector_product(grads, params, vs)
    got = torch.cat([h.reshape(-1) for h in hv])
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)
    # graph retained by default: a second product works
    hv2 = hessian_vector_product(grads, params, vs, retain_graph=False)
    torch.testing.assert_close(torch.cat([h.reshape(-1) for h in hv2]), expected)


def test_hvp_zero_for_parameter_with_constant_gradient():
    a = torch.tensor([1.0, 2.0], dtype=F64, requires_grad=True)
    b = torch.tensor([3.0], dtype=F64, requires_grad=True)
    loss = (a**3).sum() + 5 * b.sum()  # d loss / d b = 5: no graph
    grads = torch.autograd.grad(loss, [a, b], create_graph=True)
    hv = hessian_vector_product(grads, [a, b], [torch.ones(2, dtype=F64), torch.ones(1, dtype=F64)])
    torch.testing.assert_close(hv[0], 6 * a.detach())
    torch.testing.assert_close(hv[1], torch.zeros(1, dtype=F64))


# ----------------------------------------------------------------------------- Hutchinson
def test_hutchinson_exact_on_diagonal_quadratic_single_sample():
    a = torch.tensor([[1.0, -2.0, 3.5], [1e-3, 40.0, 0.25]], dtype=F64)
    c = torch.tensor([0.3, -7.0], dtype=F64)
    w = torch.randn(2, 3, dtype=F64, requires_grad=True)
    u = torch.randn(2, dtype=F64, requires_grad=True)
    loss = 0.5 * (a * w**2).sum() + 0.5 * (c * u**2).sum() + (w.sum() * 3)
    grads = torch.autograd.grad(loss, [w, u], create_graph=True)
    est = hutchinson_diagonal(
        grads, [w, u], n_samples=1, generator=torch.Generator().manual_seed(0)
    )
    torch.testing.assert_close(est[0], a, rtol=0, atol=0)
    torch.testing.assert_close(est[1], c, rtol=0, atol=0)
    assert not est[0].requires_grad


def test_hutchinson_unbiased_on_dense_spd():
    torch.manual_seed(3)
    n = 6
    q = torch.randn(n, n, dtype=F64)
    h = q @ q.T + 0.5 * torch.eye(n, dtype=F64)  # dense SPD
    x = torch.randn(n, dtype=F64, requires_grad=True)
    loss = 0.5 * x @ h @ x
    (g,) = torch.autograd.grad(loss, [x], create_graph=True)
    n_samples = 3000
    (est,) = hutchinson_diagonal(
        [g],
        [x],
        n_samples=n_samples,
        generator=torch.Generator().manual_seed(11),
        retain_graph=True,
    )
    # one sample of entry i is H_ii + sum_{j != i} H_ij z_i z_j: variance sum_{j!=i} H_ij^2
    off = h - torch.diag(torch.diag(h))
    sigma = (off**2).sum(dim=1).sqrt() / math.sqrt(n_samples)
    err = (est - torch.diag(h)).abs()
    assert torch.all(err < 5 * sigma), (err, sigma)
    # and the off-diagonal part is large enough that a single sample is clearly not exact
    (one,) = hutchinson_diagonal([g], [x], generator=torch.Generator().manual_seed(5))
    assert (one - torch.diag(h)).abs().max() > 0.1


def test_hutchinson_n_samples_is_mean_of_draws():
    torch.manual_seed(4)
    q = torch.randn(4, 4, dtype=F64)
    h = q + q.T
    x = torch.randn(4, dtype=F64, requires_grad=True)
    (g,) = torch.autograd.grad(0.5 * x @ h @ x, [x], create_graph=True)
    (est,) = hutchinson_diagonal([g], [x], n_samples=3, generator=torch.Generator().manual_seed(2))
    gen = torch.Generator().manual_seed(2)
    draws = [rademacher_like([x], gen)[0] for _ in range(3)]
    ref = sum(z * (h @ z) for z in draws) / 3
    torch.testing.assert_close(est, ref, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------- Eq. 7
def _t(rows):
    return torch.tensor(rows, dtype=F64)


@pytest.mark.parametrize(
    "d, b, expected",
    [
        # 1-D, divisible and not
        (_t([1, 2, 3, 4]), 2, _t([1.5, 1.5, 3.5, 3.5])),
        (_t([1, 2, 3]), 2, _t([2, 2, 2])),
        # 2-D: blocks along the last dim, row by row; signed values
        (_t([[1, 2, 3, 4], [5, 6, 7, 8]]), 2, _t([[1.5, 1.5, 3.5, 3.5], [5.5, 5.5, 7.5, 7.5]])),
        (_t([[1, 2, 3, 4], [5, 6, 7, 8]]), 4, _t([[2.5] * 4, [6.5] * 4])),
        (_t([[-1, 1, 2, 4]]), 2, _t([[0, 0, 3, 3]])),
        # 2-D, last dim 3 not divisible by 2: whole-row mean
        (_t([[1, 2, 4], [0, 0, 3]]), 2, _t([[7 / 3] * 3, [1, 1, 1]])),
        # 3-D (2, 2, 4), b = 2
        (
            _t([[[1, 3, 5, 7], [0, 2, -2, 4]], [[1, 1, 1, 1], [8, 0, 0, 8]]]),
            2,
            _t([[[2, 2, 6, 6], [1, 1, 1, 1]], [[1, 1, 1, 1], [4, 4, 4, 4]]]),
        ),
        # 4-D (1, 2, 1, 3), b = 2: last dim not divisible -> mean over the last dim
        (_t([[[[1, 2, 6]], [[-3, 0, 0]]]]), 2, _t([[[[3, 3, 3]], [[-1, -1, -1]]]])),
        # 4-D (1, 1, 2, 4), b = 4: one block per row
        (_t([[[[1, 2, 3, 6], [0, 0, 0, 4]]]]), 4, _t([[[[3, 3, 3, 3], [1, 1, 1, 1]]]])),
        # block size 1: identity
        (_t([[1, 2, 4]]), 1, _t([[1, 2, 4]])),
    ],
)
def test_spatial_average_hand_computed(d, b, expected):
    out = spatial_average(d, b)
    assert out.shape == d.shape
    torch.testing.assert_close(out, expected, rtol=1e-15, atol=1e-15)


def test_spatial_average_preserves_block_sums():
    d = torch.randn(3, 5, 8, dtype=F64)
    out = spatial_average(d, 4)
    torch.testing.assert_close(out.reshape(3, 5, 2, 4).sum(-1), d.reshape(3, 5, 2, 4).sum(-1))
    # entries of one block are equal, different blocks generally differ
    assert torch.all(out.reshape(-1, 4).std(dim=-1) < 1e-14)


@pytest.mark.parametrize(
    "batch, frac, expected", [(16, 0.25, 4), (16, 0.01, 1), (10, 0.35, 4), (8, 1.0, 8), (1, 0.5, 1)]
)
def test_curvature_slice_size(batch, frac, expected):
    assert curvature_slice_size(batch, frac) == expected


@pytest.mark.parametrize("frac", [0.0, -0.1, 1.5])
def test_curvature_slice_size_rejects_bad_fraction(frac):
    with pytest.raises(ValueError, match="fraction"):
        curvature_slice_size(8, frac)
