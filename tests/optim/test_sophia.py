"""Sophia-H against an independent float64 transcription of the paper's algorithm (exact
Hessian from torch.autograd.functional.hessian, its own Rademacher draws), a hand-worked
quadratic, the refresh schedule, resume, and pytorch_optimizer's SophiaH."""

from __future__ import annotations

import copy

import pytest
import torch

import secondorder.curvature.hutchinson as hutchinson_module
from secondorder.optim import CurvatureHooks, SophiaH, build_optimizer
from secondorder.optim.protocol import backward_for_step

F64 = torch.float64
SHAPES = [(4, 3), (4,), (2, 4), (2,)]


def make_data(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, generator=g, dtype=F64), torch.randn(n, 2, generator=g, dtype=F64)


def init_params(seed=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*s, generator=g, dtype=F64) * 0.5 for s in SHAPES]


def mlp_loss(params, x, y):
    w1, b1, w2, b2 = params
    return ((torch.tanh(x @ w1.T + b1) @ w2.T + b2 - y) ** 2).mean()


def reference_sophia(p0, x, y, steps, *, lr, betas, gamma, eps, wd, k, n_samples, seed):
    """The algorithm on one flat float64 vector, written from the paper: exact Hessian, the
    Rademacher vector drawn as int8 bits per tensor in order (0 -> -1, 1 -> +1)."""
    sizes = [p.numel() for p in p0]
    theta = torch.cat([p.reshape(-1) for p in p0])

    def unflat(v):
        return [c.reshape(s) for c, s in zip(v.split(sizes), SHAPES, strict=True)]

    def f(v):
        return mlp_loss(unflat(v), x, y)

    gen = torch.Generator().manual_seed(seed)
    m = torch.zeros_like(theta)
    h = torch.zeros_like(theta)
    b1, b2 = betas
    for t in range(1, steps + 1):
        g = torch.autograd.grad(f(theta.requires_grad_()), theta)[0]
        theta = theta.detach()
        m = b1 * m + (1 - b1) * g
        if (t - 1) % k == 0:
            hess = torch.autograd.functional.hessian(f, theta)
            est = torch.zeros_like(theta)
            for _ in range(n_samples):
                z = torch.cat([torch.randint(0, 2, s, generator=gen, dtype=torch.int8)
                               .to(F64).reshape(-1) * 2 - 1 for s in SHAPES])
                est += z * (hess @ z)
            h = b2 * h + (1 - b2) * est / n_samples
        theta = theta * (1 - lr * wd)
        theta = theta - lr * torch.clamp(m / torch.clamp(gamma * h, min=eps), -1, 1)
    return unflat(theta)


def run_sophia(params, x, y, steps, **kw):
    opt = SophiaH(params, **kw)
    for _ in range(steps):
        loss = mlp_loss(params, x, y)
        loss.backward(create_graph=opt.needs_curvature())
        opt.step()
        opt.zero_grad(set_to_none=True)
    return opt


@pytest.mark.parametrize("k, n_samples, wd, gamma", [(1, 1, 0.0, 0.01), (3, 2, 0.1, 0.05),
                                                     (4, 1, 0.01, 1.0)])
@pytest.mark.parametrize("foreach", [True, False])
def test_matches_the_float64_transcription(k, n_samples, wd, gamma, foreach):
    x, y = make_data()
    p0 = init_params()
    hp = dict(lr=0.02, betas=(0.9, 0.95), gamma=gamma, eps=1e-12)
    ref = reference_sophia(p0, x, y, 11, wd=wd, k=k, n_samples=n_samples, seed=7, **hp)
    params = [p.clone().requires_grad_() for p in p0]
    run_sophia(params, x, y, 11, weight_decay=wd, hessian_interval=k, n_samples=n_samples,
               seed=7, foreach=foreach, **hp)
    for ours, theirs in zip(params, ref, strict=True):
        torch.testing.assert_close(ours.detach(), theirs, rtol=1e-12, atol=1e-13)


def test_hand_worked_quadratic_with_a_negative_curvature():
    # f = 0.5 (2 a^2 - 3 b^2 + 0.5 c^2): Hutchinson is exact on a diagonal Hessian (z^2 = 1)
    curv = torch.tensor([2.0, -3.0, 0.5], dtype=F64)
    w = torch.tensor([1.0, 1.0, -4.0], dtype=F64, requires_grad=True)
    opt = SophiaH([w], lr=0.1, betas=(0.5, 0.5), gamma=1.0, eps=1e-3, seed=0)
    (0.5 * (curv * w * w).sum()).backward(create_graph=True)
    opt.step()
    # m = 0.5 g = 0.5 (2, -3, -2); h = 0.5 curv = (1, -1.5, 0.25); max(h, eps) = (1, 1e-3, 0.25)
    # ratio = (1, -1500, -4) -> clipped (1, -1, -1); w - 0.1 ratio
    torch.testing.assert_close(w.detach(), torch.tensor([0.9, 1.1, -3.9], dtype=F64))
    assert opt.step_count == 1 and opt.hessian_step_count == 1


def test_refreshes_every_k_steps_and_computes_no_product_in_between(monkeypatch):
    calls = []
    real = hutchinson_module.hessian_vector_product
    monkeypatch.setattr(hutchinson_module, "hessian_vector_product",
                        lambda *a, **kw: calls.append(1) or real(*a, **kw))
    x, y = make_data()
    params = [p.requires_grad_() for p in init_params()]
    opt = SophiaH(params, lr=0.01, hessian_interval=4)
    schedule = []
    for _ in range(9):
        schedule.append(opt.needs_curvature())
        mlp_loss(params, x, y).backward(create_graph=schedule[-1])
        opt.step()
        opt.zero_grad(set_to_none=True)
    assert schedule == [True, False, False, False, True, False, False, False, True]
    assert len(calls) == 3 and opt.hessian_step_count == 3


def test_missing_graph_on_a_refresh_step_is_one_clear_error():
    x, y = make_data()
    params = [p.requires_grad_() for p in init_params()]
    opt = SophiaH(params)
    mlp_loss(params, x, y).backward()
    with pytest.raises(RuntimeError, match="create_graph=True"):
        opt.step()


def test_state_dict_round_trip_continues_bit_identically():
    x, y = make_data()
    a = [p.clone().requires_grad_() for p in init_params()]
    opt_a = run_sophia(a, x, y, 5, lr=0.01, hessian_interval=3, seed=3)
    b = [p.detach().clone().requires_grad_() for p in a]
    opt_b = SophiaH(b, lr=0.01, hessian_interval=3, seed=99)
    opt_b.load_state_dict(copy.deepcopy(opt_a.state_dict()))
    for params, opt in ((a, opt_a), (b, opt_b)):
        for _ in range(5):
            mlp_loss(params, x, y).backward(create_graph=opt.needs_curvature())
            opt.step()
            opt.zero_grad(set_to_none=True)
    for pa, pb in zip(a, b, strict=True):
        assert torch.equal(pa, pb)


def test_a_non_finite_estimate_under_fp16_skips_the_step_and_its_draws():
    w = torch.tensor([1.0, 2.0], dtype=F64, requires_grad=True)
    opt = SophiaH([w], lr=0.1, hooks=CurvatureHooks(skip_nonfinite=True), seed=5)
    before = opt._generators(w.device).get_state()
    (w * w).sum().backward(create_graph=True)
    opt.step(hessian_scale=float("inf"))  # a loss-scale overflow in the products
    assert opt.step_skipped and opt.step_count == 0 and not opt.state
    assert torch.equal(opt._generators(w.device).get_state(), before)
    torch.testing.assert_close(w.detach(), torch.tensor([1.0, 2.0], dtype=F64))


def test_hessian_from_a_slice_of_the_batch_is_the_slice_s_hessian():
    # mean((w x + b)^2) over the first n_s examples has the Hessian (2 / n_s) sum [x;1][x;1]^T;
    # the products of the batch gradient's graph on that slice, times B / n_s, must give it
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1).double()
    x = torch.randn(8, 3, dtype=F64)
    opt = build_optimizer({"name": "sophia_h", "hessian_batch_fraction": 0.5, "lr": 0.1,
                           "seed": 3, "no_decay": []}, model, num_training_steps=4)
    loss, kwargs = backward_for_step(lambda b: (model(b["input_ids"]) ** 2).mean(),
                                     {"input_ids": x}, opt)
    assert kwargs == {"hessian_scale": 2.0}
    opt.step(lambda: loss, **kwargs)
    features = torch.cat([x[:4], torch.ones(4, 1, dtype=F64)], dim=1)
    hessian = 2.0 / 4 * features.T @ features
    gen = torch.Generator().manual_seed(3)  # weight (1, 3) first, then bias (1,)
    z = torch.cat([torch.randint(0, 2, s, generator=gen, dtype=torch.int8).to(F64).reshape(-1)
                   * 2 - 1 for s in ((1, 3), (1,))])
    expected = (1 - 0.99) * z * (hessian @ z)
    got = torch.cat([opt.state[model.weight]["hessian_ema"].reshape(-1),
                     opt.state[model.bias]["hessian_ema"].reshape(-1)])
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-14)


def test_same_steps_as_pytorch_optimizer_sophiah_in_its_parametrisation():
    po = pytest.importorskip("pytorch_optimizer")
    # a separable quadratic: every Rademacher draw gives the exact diagonal, for both
    curv = torch.tensor([[3.0, 0.5, -1.0], [0.2, 4.0, 1.5]], dtype=F64)
    start = torch.tensor([[1.0, -2.0, 0.5], [0.3, 0.7, -1.2]], dtype=F64)
    lr, gamma, eps, wd = 0.05, 0.02, 1e-9, 0.1
    ours = start.clone().requires_grad_()
    theirs = start.clone().requires_grad_()
    opt_ours = SophiaH([ours], lr=lr, betas=(0.9, 0.95), gamma=gamma, eps=eps,
                       weight_decay=wd, hessian_interval=3, seed=0)
    opt_theirs = po.SophiaH([theirs], lr=lr / gamma, betas=(0.9, 0.95), p=gamma,
                            eps=eps / gamma, weight_decay=wd * gamma, update_period=3,
                            hessian_distribution="rademacher")
    for _ in range(8):
        for w, opt in ((ours, opt_ours), (theirs, opt_theirs)):
            (0.5 * (curv * w * w).sum()).backward(create_graph=True)
            opt.step()
            opt.zero_grad(set_to_none=True)
    torch.testing.assert_close(ours.detach(), theirs.detach(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("key", "value"), [("lr", -1.0), ("gamma", 0.0), ("betas", [0.9, 1.0]),
                                            ("hessian_interval", 0), ("eps", 0.0)])
def test_bad_hyperparameters_are_one_line(key, value):
    with pytest.raises(ValueError, match=f"SophiaH: {key}="):
        SophiaH([torch.nn.Parameter(torch.zeros(2))], **{key: value})
    with pytest.raises(ValueError, match=f"optimizer.{key}="):
        build_optimizer({"name": "sophia_h", key: value}, torch.nn.Linear(2, 2),
                        num_training_steps=4)
