"""The switches `make ablate` changes, each against an independent float64 transcription (or a
closed form), and each shown to change the result: AdaHessian's curvature source, bias
correction, whole-row averaging and independent Hessian batch; the protocol's
create-graph-on-every-step; the split of a model between two optimizers."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from secondorder.optim import AdaHessian, build_optimizer, rademacher_like
from secondorder.optim.protocol import backward_for_step
from secondorder.optim.split import Split

pytestmark = pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True")

F64 = torch.float64
SHAPES = [(3, 4), (3,), (2, 3), (2,)]


def data(seed: int, n: int = 10):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 4, generator=g, dtype=F64), torch.randn(n, 2, generator=g, dtype=F64)


def params0():
    g = torch.Generator().manual_seed(7)
    return [0.5 * torch.randn(s, generator=g, dtype=F64) for s in SHAPES]


def loss_of(ps, x, y):
    w1, b1, w2, b2 = ps
    return ((torch.tanh(x @ w1.T + b1) @ w2.T + b2 - y) ** 2).mean()


def flat(ps):
    return np.concatenate([p.detach().reshape(-1).numpy() for p in ps])


def unflat(theta):
    out, i = [], 0
    for s in SHAPES:
        n = math.prod(s)
        out.append(theta[i:i + n].reshape(s))
        i += n
    return out


def block_mean(d: np.ndarray, shape, block) -> np.ndarray:
    """Eq. 7 by loops; block "row" = the whole last dimension; 1-D tensors not averaged."""
    if block == 1 or len(shape) == 1:
        return d.copy()
    n = shape[-1]
    b = n if block == "row" or n % block else block
    rows = d.reshape(-1, n).copy()
    for r in range(rows.shape[0]):
        for i in range(0, n, b):
            rows[r, i:i + b] = sum(rows[r, i:i + b]) / b
    return rows.reshape(-1)


def reference(steps, *, lr=0.05, betas=(0.9, 0.95), eps=1e-4, k=0.5, block=2, source="hutchinson",
              bias_correction=True, seed=3, batches=None, hessian_batches=None):
    """AdaHessian written out in float64 numpy with the ablation switches: `source` "hutchinson"
    (z * Hz with the exact Hessian, z drawn per parameter in order from a generator seeded
    `seed`) or "gradient_squared" (g * g); the Hessian of `hessian_batches[t]` if given."""
    b1, b2 = betas
    theta = flat(params0())
    m, v = np.zeros_like(theta), np.zeros_like(theta)
    gen = torch.Generator().manual_seed(seed)
    for t in range(1, steps + 1):
        x, y = batches[t - 1]

        def f(th, x=x, y=y):
            return loss_of(unflat(th), x, y)

        th = torch.tensor(theta)
        g = torch.autograd.functional.jacobian(f, th).numpy()
        if source == "gradient_squared":
            d = g * g
        else:
            hx, hy = (hessian_batches or batches)[t - 1]
            hess = torch.autograd.functional.hessian(
                lambda th, hx=hx, hy=hy: loss_of(unflat(th), hx, hy), th).numpy()
            z = np.concatenate([r.reshape(-1).numpy() for r in rademacher_like(
                [torch.empty(s, dtype=F64) for s in SHAPES], gen)])
            d = z * (hess @ z)
        parts = np.split(d, np.cumsum([math.prod(s) for s in SHAPES])[:-1])
        ds = np.concatenate([block_mean(p, s, block) for p, s in zip(parts, SHAPES, strict=True)])
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * ds * ds
        c1, c2 = (1 - b1**t, 1 - b2**t) if bias_correction else (1.0, 1.0)
        theta = theta - lr * (m / c1) / (np.sqrt(v / c2) ** k + eps)
    return theta


def train(steps, batches, hessian_batches=None, **kw):
    ps = [p.clone().requires_grad_() for p in params0()]
    opt = AdaHessian(ps, lr=0.05, betas=(0.9, 0.95), eps=1e-4, hessian_power=0.5, seed=3, **kw)
    for t in range(steps):
        batch = {"x": batches[t][0], "y": batches[t][1]}
        h = None if hessian_batches is None else \
            {"x": hessian_batches[t][0], "y": hessian_batches[t][1]}
        loss, kwargs = backward_for_step(lambda b: loss_of(ps, b["x"], b["y"]), _Sized(batch),
                                         opt, hessian_batch=None if h is None else _Sized(h))
        opt.step(**kwargs)
        opt.zero_grad(set_to_none=True)
    return flat(ps), opt


class _Sized(dict):
    """A batch dict the protocol can size (it reads len(batch["input_ids"]))."""

    def __init__(self, d):
        super().__init__(d)
        self["input_ids"] = d["x"]


BATCHES = [data(s) for s in range(6)]
OTHER = [data(100 + s) for s in range(6)]


def _loss_fn_ignoring_ids(ps):
    return lambda b: loss_of(ps, b["x"], b["y"])


def test_paper_default_still_matches_the_transcription():
    got, _ = train(5, BATCHES, block_size=2)
    np.testing.assert_allclose(got, reference(5, batches=BATCHES), rtol=1e-10, atol=1e-12)


def test_gradient_squared_source_matches_and_builds_no_graph():
    got, opt = train(5, BATCHES, block_size=2, curvature_source="gradient_squared")
    ref = reference(5, batches=BATCHES, source="gradient_squared")
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12)
    assert not opt.needs_curvature() and opt.hessian_step_count == 5  # refreshed, from g * g
    assert np.abs(ref - reference(5, batches=BATCHES)).max() > 1e-3  # the switch matters


def test_gradient_squared_at_power_half_is_an_adam_like_step():
    # no averaging, one step from zero moments: (sqrt(v_hat))^0.5 = |g|, so the step is lr*sign(g)
    ps = [p.clone().requires_grad_() for p in params0()]
    opt = AdaHessian(ps, lr=0.01, eps=0.0, hessian_power=0.5, block_size=1,
                     curvature_source="gradient_squared")
    loss_of(ps, *BATCHES[0]).backward()
    grads = [p.grad.clone() for p in ps]
    before = [p.detach().clone() for p in ps]
    opt.step()
    for p, b, g in zip(ps, before, grads, strict=True):
        torch.testing.assert_close(p.detach() - b, -0.01 * torch.sign(g), rtol=1e-12, atol=1e-15)


def test_bias_correction_off_matches_and_matters():
    got, _ = train(5, BATCHES, block_size=2, bias_correction=False)
    ref = reference(5, batches=BATCHES, bias_correction=False)
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12)
    assert np.abs(ref - reference(5, batches=BATCHES)).max() > 1e-3


def test_whole_row_averaging_matches_and_differs_from_blocks():
    got, _ = train(4, BATCHES, block_size="row")
    ref = reference(4, batches=BATCHES, block="row")
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12)
    assert np.abs(ref - reference(4, batches=BATCHES, block=2)).max() > 1e-4


def test_independent_hessian_batch_uses_the_other_batch_for_the_estimate_only():
    got, opt = train(5, BATCHES, OTHER, block_size=2, hessian_batch="independent")
    ref = reference(5, batches=BATCHES, hessian_batches=OTHER)
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12)
    assert np.abs(ref - reference(5, batches=BATCHES)).max() > 1e-4


def test_independent_hessian_batch_needs_the_second_batch():
    ps = [p.clone().requires_grad_() for p in params0()]
    opt = AdaHessian(ps, hessian_batch="independent")
    with pytest.raises(ValueError, match="needs a second batch"):
        backward_for_step(_loss_fn_ignoring_ids(ps), _Sized({"x": BATCHES[0][0],
                                                             "y": BATCHES[0][1]}), opt)


@pytest.mark.parametrize("always", [False, True])
def test_create_graph_every_step_keeps_the_update(always):
    ps = [p.clone().requires_grad_() for p in params0()]
    opt = torch.optim.AdamW(ps, lr=1e-2)
    batch = _Sized({"x": BATCHES[0][0], "y": BATCHES[0][1]})
    backward_for_step(_loss_fn_ignoring_ids(ps), batch, opt, always_create_graph=always)
    assert all(p.grad.requires_grad == always for p in ps)  # the graph is there, or not
    opt.step()
    reference_ps = [p.clone().requires_grad_() for p in params0()]
    ref_opt = torch.optim.AdamW(reference_ps, lr=1e-2)
    loss_of(reference_ps, *BATCHES[0]).backward()
    ref_opt.step()
    for p, r in zip(ps, reference_ps, strict=True):
        assert torch.equal(p.detach(), r.detach())


# ----------------------------------------------------------------------------- Split
class TwoPart(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = torch.nn.Linear(4, 3).double()
        self.qa_outputs = torch.nn.Linear(3, 2).double()

    def forward(self, x):
        return self.qa_outputs(torch.tanh(self.encoder(x)))


def _step(model, opt, batch, n=3):
    for t in range(n):
        x, y = batch[t]
        loss, kw = backward_for_step(lambda b: ((model(b["x"]) - b["y"]) ** 2).mean(),
                                     _Sized({"x": x, "y": y}), opt)
        opt.step(**kw)
        opt.zero_grad(set_to_none=True)


def test_split_steps_each_part_with_its_own_optimizer():
    torch.manual_seed(0)
    model = TwoPart()
    twin = TwoPart()
    twin.load_state_dict(model.state_dict())
    cfg = {"name": "adahessian", "lr": 0.05, "block_size": 1, "seed": 1, "weight_decay": 0.0,
           "delegate": {"match": ["qa_outputs"], "optimizer": {"name": "adamw", "lr": 1e-2}}}
    split = build_optimizer(cfg, model, num_training_steps=10)
    assert isinstance(split, Split) and split.needs_curvature()
    assert {id(p) for g in split.primary.param_groups for p in g["params"]} == {
        id(p) for p in model.encoder.parameters()}
    # the same two optimizers, built by hand on the twin's parts
    ada = AdaHessian(twin.encoder.parameters(), lr=0.05, block_size=1, seed=1)
    adamw = torch.optim.AdamW(twin.qa_outputs.parameters(), lr=1e-2, weight_decay=0.0)
    _step(model, split, BATCHES)
    for t in range(3):
        x, y = BATCHES[t]
        ((twin(x) - y) ** 2).mean().backward(create_graph=True)
        ada.step()
        adamw.step()
        ada.zero_grad(set_to_none=True)
        adamw.zero_grad(set_to_none=True)
    for a, b in zip(model.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_split_schedule_reaches_both_parts_and_state_round_trips():
    torch.manual_seed(0)
    model = TwoPart()
    cfg = {"name": "adahessian", "lr": 0.05, "seed": 1,
           "delegate": {"match": ["encoder"], "optimizer": {"name": "adamw", "lr": 1e-2}}}
    split = build_optimizer(cfg, model, num_training_steps=10)
    sched = torch.optim.lr_scheduler.LambdaLR(split, lambda s: 0.5)
    assert split.primary.param_groups[0]["lr"] == 0.025
    assert split.delegate.param_groups[0]["lr"] == 0.005
    _step(model, split, BATCHES, n=2)
    sched.step()
    saved = split.state_dict()
    clone = TwoPart()
    clone.load_state_dict(model.state_dict())
    again = build_optimizer(cfg, clone, num_training_steps=10)
    again.load_state_dict(copy.deepcopy(saved))  # as from a file: AdamW keeps its step tensors
    _step(model, split, BATCHES[2:], n=2)
    _step(clone, again, BATCHES[2:], n=2)
    for a, b in zip(model.parameters(), clone.parameters(), strict=True):
        assert torch.equal(a, b)
    assert len(split.state) == 4  # both optimizers' states, looked up without creating entries


@pytest.mark.parametrize("delegate, message", [
    ({"match": ["nothing_like_this"], "optimizer": {"name": "adamw"}}, "selects no trainable"),
    ({"match": ["encoder", "qa_outputs"], "optimizer": {"name": "adamw"}}, "selects every"),
    ({"match": "encoder", "optimizer": {"name": "adamw"}}, "optimizer.delegate=.* is invalid"),
    ({"match": ["encoder"], "optimizer": {"name": "adamw", "lr": -1}},
     "optimizer.delegate.optimizer.lr=-1 is invalid"),
])
def test_split_bad_delegate_is_one_readable_line(delegate, message):
    with pytest.raises(ValueError, match=message):
        build_optimizer({"name": "adahessian", "delegate": delegate}, TwoPart(),
                        num_training_steps=1)


@pytest.mark.parametrize("key, value", [("curvature_source", "fisher"), ("block_size", "rows"),
                                        ("hessian_batch", "other"), ("bias_correction", 1)])
def test_new_adahessian_keys_are_checked(key, value):
    with pytest.raises(ValueError, match=f"optimizer.{key}="):
        build_optimizer({"name": "adahessian", key: value}, TwoPart(), num_training_steps=1)
