"""The optimizers from pytorch_optimizer, as the registry builds them: Shampoo's inverse roots
from the first step (optim/library.py), against a float64 transcription with eigh."""

from __future__ import annotations

import pytest
import torch

from secondorder.optim import build_optimizer

pytest.importorskip("pytorch_optimizer")

EPS = 1e-6  # matrix_eps: the statistics start at EPS * I


class Matrix(torch.nn.Module):
    def __init__(self, w: torch.Tensor):
        super().__init__()
        self.weight = torch.nn.Parameter(w.clone())


def inverse_root(m: torch.Tensor, p: int) -> torch.Tensor:
    """m^(-1/p) of a symmetric positive definite matrix, by eigendecomposition."""
    vals, vecs = torch.linalg.eigh(m)
    return vecs @ torch.diag(vals ** (-1.0 / p)) @ vecs.T


def reference(w0, grads, lr, every):
    """Shampoo on one matrix: L += G Gᵀ, R += Gᵀ G, W -= lr L^(-1/4) G R^(-1/4), the roots
    recomputed on step 1 and on every step divisible by `every`."""
    w = w0.clone()
    left, right = EPS * torch.eye(w.shape[0], dtype=w.dtype), EPS * torch.eye(w.shape[1],
                                                                               dtype=w.dtype)
    out = []
    for t, g in enumerate(grads, start=1):
        left, right = left + g @ g.T, right + g.T @ g
        if t == 1 or t % every == 0:
            root_l, root_r = inverse_root(left, 4), inverse_root(right, 4)
        w = w - lr * root_l @ g @ root_r
        out.append(w.clone())
    return out


def run(w0, grads, cfg):
    model = Matrix(w0)
    opt = build_optimizer({"name": "shampoo", "no_decay": [], **cfg}, model,
                          num_training_steps=len(grads))
    out = []
    for g in grads:
        model.weight.grad = g.clone()
        opt.step()
        out.append(model.weight.detach().clone())
    return out


def case(steps=5):
    gen = torch.Generator().manual_seed(0)
    w0 = torch.randn(3, 2, generator=gen, dtype=torch.float64)
    grads = [torch.randn(3, 2, generator=gen, dtype=torch.float64) for _ in range(steps)]
    return w0, grads


def test_shampoo_roots_from_the_first_step_match_the_transcription():
    w0, grads = case()
    cfg = {"lr": 0.1, "preconditioning_compute_steps": 3, "matrix_eps": EPS}
    for ours, ref in zip(run(w0, grads, cfg), reference(w0, grads, 0.1, every=3), strict=True):
        # L is rank 2 + EPS I (condition ~1e6): SVD and eigh roots agree to ~1e-10
        torch.testing.assert_close(ours, ref, rtol=1e-7, atol=1e-9)


def test_the_library_alone_does_not_move_the_weights_before_its_first_refresh():
    w0, grads = case()
    cfg = {"lr": 0.1, "preconditioning_compute_steps": 3, "matrix_eps": EPS,
           "roots_from_step_one": False}
    library = run(w0, grads, cfg)
    torch.testing.assert_close(library[0], w0, rtol=0, atol=0)
    torch.testing.assert_close(library[1], w0, rtol=0, atol=0)
    assert not torch.equal(library[2], w0)  # step 3: its first roots
    ours = run(w0, grads, {**cfg, "roots_from_step_one": True})
    assert not torch.equal(ours[0], w0)


def test_every_step_refresh_is_the_library_unchanged():
    w0, grads = case()
    cfg = {"lr": 0.1, "preconditioning_compute_steps": 1, "matrix_eps": EPS}
    on = run(w0, grads, cfg)
    off = run(w0, grads, {**cfg, "roots_from_step_one": False})
    for a, b in zip(on, off, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
