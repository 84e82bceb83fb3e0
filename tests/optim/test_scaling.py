"""fp16 loss scaling (secondorder.optim.scaling) through the trainer protocol.

References: the same optimizer driven without scaling (a power-of-two scale is exact in binary
floating point, so the two runs must agree bit for bit; another scale to rounding), the fp32
Hutchinson estimate for fp16 autocast, and a state dict taken before an overflow.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch

from secondorder.optim import CurvatureHooks, build_optimizer
from secondorder.optim.protocol import backward_for_step
from secondorder.optim.scaling import LossScaler

pytestmark = pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True")

OPTIMIZERS = [
    {"name": "adamw", "lr": 1e-2},
    {"name": "adahessian", "lr": 0.05, "hessian_power": 0.5, "block_size": 2},
    {"name": "adahessian", "lr": 0.05, "hessian_batch_fraction": 0.5},
    {"name": "adasub", "lr": 0.1, "mode": "per_tensor"},
    {"name": "adasub", "lr": 0.1, "mode": "model", "reuse_products": True, "n_directions": 3},
    {"name": "soaa", "lr": 1e-2},
]


class Tiny(torch.nn.Module):
    def __init__(self, dtype=torch.float64):
        super().__init__()
        self.l1 = torch.nn.Linear(6, 8, dtype=dtype)
        self.l2 = torch.nn.Linear(8, 3, dtype=dtype)

    def forward(self, x):
        return self.l2(torch.tanh(self.l1(x)))


def batches(n, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [{"input_ids": torch.randn(8, 6, generator=g, dtype=dtype),
             "labels": torch.randint(0, 3, (8,), generator=g)} for _ in range(n)]


def make(cfg, dtype=torch.float64, seed=1, hooks=None):
    torch.manual_seed(seed)
    model = Tiny(dtype)
    return model, build_optimizer(cfg, model, num_training_steps=10, hooks=hooks)


def loss_fn_for(model, autocast=None, factor=1.0):
    def loss_fn(b):
        ctx = autocast() if autocast else torch.autocast("cpu", enabled=False)
        with ctx:
            out = model(b["input_ids"])
        loss = torch.nn.functional.cross_entropy(out.float() if autocast else out, b["labels"])
        return loss * factor
    return loss_fn


def train(cfg, data, scale=None, dtype=torch.float64, autocast=None, factor=1.0):
    """The trainer's step (train/trainer.py: Trainer._train_step) with or without a scaler."""
    scaler = LossScaler(init_scale=scale, growth_interval=10**6) if scale else None
    model, opt = make(cfg, dtype, hooks=CurvatureHooks(skip_nonfinite=scaler is not None))
    for b in data:
        loss, kw = backward_for_step(loss_fn_for(model, autocast, factor), b, opt,
                                     loss_scale=scaler.scale if scaler else 1.0)
        if scaler is not None:
            assert scaler.unscale_(model.parameters())
        opt.step(lambda loss=loss: loss, **kw)
        assert not getattr(opt, "step_skipped", False)
        opt.zero_grad(set_to_none=True)
    return model, opt


@pytest.mark.parametrize("cfg", OPTIMIZERS, ids=lambda c: "-".join(map(str, c.values())))
def test_power_of_two_scale_is_bit_identical(cfg):
    data = batches(4)
    plain, _ = train(cfg, data)
    scaled, _ = train(cfg, data, scale=2.0**12)
    for p, q in zip(plain.parameters(), scaled.parameters(), strict=True):
        assert torch.equal(p, q)


@pytest.mark.parametrize("cfg", OPTIMIZERS[:5], ids=lambda c: "-".join(map(str, c.values())))
def test_any_scale_matches_to_rounding(cfg):
    data = batches(4, seed=2)
    plain, _ = train(cfg, data)
    scaled, _ = train(cfg, data, scale=1000.0)
    for p, q in zip(plain.parameters(), scaled.parameters(), strict=True):
        torch.testing.assert_close(q, p, rtol=1e-10, atol=1e-12)
    moved, _ = make(cfg)
    assert any(not torch.equal(p, q) for p, q in zip(moved.parameters(), plain.parameters(),
                                                     strict=True))


def test_fp16_autocast_hutchinson_estimate_matches_fp32_to_fp16_rounding():
    """One AdaHessian step on a loss of order 1e-6 (fp16's smallest normal number is 6e-5):
    under fp16 autocast with a 2^16 loss scale its Hutchinson estimate is the float32 one to
    fp16 rounding; without the scale the products underflow in the fp16 backward."""
    cfg = {"name": "adahessian", "lr": 0.05, "block_size": 1}
    data = batches(1, dtype=torch.float32)

    def autocast():
        return torch.autocast("cpu", dtype=torch.float16)

    kw = dict(dtype=torch.float32, factor=1e-6)
    _, ref = train(cfg, data, **kw)
    _, fp16 = train(cfg, data, scale=2.0**16, autocast=autocast, **kw)
    _, unscaled = train(cfg, data, autocast=autocast, **kw)
    key = "exp_hessian_diag_sq"

    def error(state):  # largest error of |D| (sqrt of v) relative to the largest entry
        return max(float((s[key].sqrt() - r[key].sqrt()).abs().max() / r[key].sqrt().max())
                   for s, r in zip(state.values(), ref.state.values(), strict=True))

    assert error(fp16.state) < 5e-3  # fp16 has an 11-bit significand (measured: 6e-4)
    assert error(unscaled.state) > 0.1  # measured: 0.61


def test_gradient_overflow_skips_the_step_and_backs_off(monkeypatch):
    """Trainer._train_step: a non-finite gradient after unscaling means no step() at all."""
    from secondorder.train import trainer as trainer_module

    model, opt = make(OPTIMIZERS[1])
    weights = [p.detach().clone() for p in model.parameters()]
    scaler = LossScaler(init_scale=2.0**16)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)

    def overflowing_backward(loss_fn, batch, optimizer, loss_scale=1.0, **world):
        out = backward_for_step(loss_fn, batch, optimizer, loss_scale, **world)
        model.l2.bias.grad = model.l2.bias.grad + math.inf  # as an fp16 overflow leaves it
        return out

    monkeypatch.setattr(trainer_module, "backward_for_step", overflowing_backward)

    from secondorder.train.distributed import SINGLE

    class Stub:  # what Trainer._train_step uses of the trainer
        tcfg = {"grad_clip_norm": 1.0}
        world = SINGLE  # one process
        _grad_norms: list[float] = []

        def _hessian_batch(self, optimizer, progress):  # AdaSub draws no second batch
            return None

    stub = Stub()
    stub.scaler, stub.model, stub._loss = scaler, model, loss_fn_for(model)
    value = trainer_module.Trainer._train_step(stub, batches(1)[0], opt, sched,
                                               trainer_module.Progress())
    assert math.isfinite(value)
    assert scaler.scale == 2.0**15 and scaler.skipped == 1
    assert sched.last_epoch == 0  # the schedule did not advance
    assert opt.state_dict()["state"] == {} and opt.step_count == 0
    for p, q in zip(model.parameters(), weights, strict=True):
        assert torch.equal(p, q) and p.grad is None


class Kinked(torch.nn.Module):
    """|w|^1.5 has a finite gradient and an infinite second derivative at w = 0."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor([0.0, 1.0], dtype=torch.float64))
        self.u = torch.nn.Parameter(torch.tensor([0.5, -0.5], dtype=torch.float64))

    def loss(self, kink: bool):
        w = self.w - self.w.detach() if kink else self.w + 1.0  # kink: every entry at 0
        coupling = 0.3 * (self.w.sum() + self.u.sum()) ** 2  # a non-diagonal Hessian: z matters
        return w.abs().pow(1.5).sum() + (self.u**2).sum() + coupling


@pytest.mark.parametrize("cfg", [OPTIMIZERS[1], OPTIMIZERS[3], OPTIMIZERS[4]],
                         ids=["adahessian", "adasub", "adasub-model-reuse"])
def test_curvature_overflow_skips_the_step_without_advancing_anything(cfg):
    torch.manual_seed(0)
    model = Kinked()
    opt = build_optimizer(cfg, model, num_training_steps=10,
                          hooks=CurvatureHooks(skip_nonfinite=True))
    reference = copy.deepcopy(model)
    ref_opt = build_optimizer(cfg, reference, num_training_steps=10)

    def normal_step():
        for m, o in ((model, opt), (reference, ref_opt)):
            m.loss(kink=False).backward(create_graph=True)
            o.step()
            o.zero_grad(set_to_none=True)

    normal_step()  # state and a Rademacher stream exist before the overflow
    model.loss(kink=True).backward(create_graph=True)
    opt.step()
    assert opt.step_skipped
    opt.zero_grad(set_to_none=True)
    assert all(p.grad is None for p in model.parameters())
    for p, q in zip(model.parameters(), reference.parameters(), strict=True):
        assert torch.equal(p, q)
    # the next (finite) steps are those of an optimizer that never saw the skipped one
    for _ in range(3):
        normal_step()
    assert not opt.step_skipped
    for p, q in zip(model.parameters(), reference.parameters(), strict=True):
        assert torch.equal(p, q)
    assert opt.state_dict()["secondorder"]["step"] == 4


def test_scaler_grows_after_a_clean_interval_and_round_trips():
    s = LossScaler(init_scale=8.0, growth_interval=2)
    s.update(False)
    assert s.scale == 8.0
    s.update(False)
    assert s.scale == 16.0
    s.update(True)
    assert s.scale == 8.0 and s.skipped == 1 and s.good_steps == 0
    t = LossScaler()
    t.load_state_dict(s.state_dict())
    assert t.state_dict() == s.state_dict()
    with pytest.raises(ValueError, match="backoff_factor"):
        LossScaler(backoff_factor=1.5)
