"""The one contract between a training loop and a second-order optimizer (CurvatureOptimizer):
who implements it, that the loop's hooks arrive through the constructor, and that a split
optimizer answers for its primary."""

from __future__ import annotations

import pytest
import torch

from secondorder.optim import CurvatureHooks, CurvatureOptimizer, build_optimizer
from secondorder.optim.protocol import backward_for_step
from secondorder.optim.split import Split


class Two(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = torch.nn.Linear(3, 3)
        self.head = torch.nn.Linear(3, 1)

    def forward(self, x):
        return self.head(torch.tanh(self.encoder(x)))


@pytest.mark.parametrize(("name", "curvature"), [
    ("adamw", False), ("sgd", False), ("soaa", False), ("adahessian", True), ("adasub", True),
    ("sophia_h", True), ("soap", False), ("shampoo", False)])
def test_which_optimizers_are_curvature_optimizers(name, curvature):
    opt = build_optimizer({"name": name}, Two(), num_training_steps=4)
    assert isinstance(opt, CurvatureOptimizer) is curvature


@pytest.mark.parametrize("name", ["adahessian", "adasub", "sophia_h"])
def test_hooks_reach_the_optimizer_and_its_products_are_reduced(name):
    torch.manual_seed(0)
    model, calls = Two(), []

    def reduce(products):  # stands for the sum across processes: here, doubles H z
        calls.append(len(products))
        for h in products:
            h.mul_(2.0)

    hooks = CurvatureHooks(reduce_products=reduce, skip_nonfinite=True, track_negatives=True)
    opt = build_optimizer({"name": name}, model, num_training_steps=4, hooks=hooks)
    assert opt.hooks is hooks
    x = torch.randn(8, 3)
    loss, kwargs = backward_for_step(lambda b: model(b["input_ids"]).pow(2).mean(),
                                     {"input_ids": x}, opt)
    opt.step(lambda: loss, **kwargs)
    # every Hessian-vector product goes through the hook: all four tensors' (AdaHessian: in one
    # call per Rademacher sample; AdaSub per_tensor: one call per tensor and direction)
    assert sum(calls) >= 4 and sum(calls) % 4 == 0


def test_a_split_answers_for_its_primary():
    model = Two()
    hooks = CurvatureHooks(track_negatives=True)
    opt = build_optimizer({"name": "adahessian", "hessian_interval": 2,
                           "hessian_batch_fraction": 0.5,
                           "delegate": {"match": ["head"], "optimizer": {"name": "adamw"}}},
                          model, num_training_steps=4, hooks=hooks)
    assert isinstance(opt, Split) and isinstance(opt, CurvatureOptimizer)
    assert opt.hooks is hooks and opt.primary.hooks is hooks
    assert opt.hessian_batch_fraction == 0.5 and opt.hessian_batch == "same"
    assert opt.needs_curvature() and opt.reports_preconditioner and not opt.step_skipped
    first_order = Split(torch.optim.AdamW(model.encoder.parameters()),
                        torch.optim.SGD(model.head.parameters(), lr=0.1))
    assert not first_order.needs_curvature() and first_order.metrics() == {}


def test_a_curvature_delegate_is_refused():
    with pytest.raises(ValueError, match="delegate must be first-order"):
        build_optimizer({"name": "adamw", "delegate": {"match": ["head"],
                                                       "optimizer": {"name": "adahessian"}}},
                        Two(), num_training_steps=4)


def test_the_contract_cannot_be_half_implemented():
    class NoSchedule(CurvatureOptimizer):  # needs_curvature missing
        pass

    with pytest.raises(TypeError, match="needs_curvature"):
        NoSchedule([torch.nn.Parameter(torch.zeros(1))], {})


def test_a_library_optimizer_without_its_library_is_one_line(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pytorch_optimizer", None)  # import fails
    with pytest.raises(ValueError, match="optimizer.name=soap comes from pytorch_optimizer"):
        build_optimizer({"name": "soap"}, Two(), num_training_steps=4)
