"""Dynamic loss scaling for fp16 training, exact for the second-order optimizers too.

With the loss multiplied by ``S`` before the backward, every gradient is ``S g`` and every
Hessian-vector product taken from that gradient's graph is ``S H z`` (the product is linear in
the loss). Both are undone exactly: the trainer divides ``p.grad`` by ``S`` in place (under
``no_grad``, as gradient clipping does: the graph is untouched) and passes the optimizer
``hessian_scale / S`` (the trainer protocol of :mod:`secondorder.optim`), so AdaHessian, AdaSub
and SOAA see ``g`` and ``H z``, as without scaling. The double backward itself runs at scale
``S``, which is what keeps its fp16 intermediates from underflowing.

Overflow (a non-finite gradient after unscaling, or a non-finite Hessian estimate that the
optimizer reports with ``step_skipped``) skips the step: ``optimizer.step`` is not called (or
leaves every state and counter, the Rademacher stream included, as it was), the scheduler does
not advance, and ``S`` is multiplied by ``backoff_factor``. After ``growth_interval`` steps
without overflow ``S`` grows by ``growth_factor``. The policy is ``torch.amp.GradScaler``'s;
the scaler is ours because ``GradScaler.unscale_`` does not know about Hessian products.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

__all__ = ["LossScaler"]


class LossScaler:
    def __init__(self, init_scale: float = 2.0**16, growth_factor: float = 2.0,
                 backoff_factor: float = 0.5, growth_interval: int = 2000) -> None:
        if not init_scale > 0:
            raise ValueError(f"LossScaler: init_scale={init_scale!r} must be > 0")
        if not growth_factor > 1:
            raise ValueError(f"LossScaler: growth_factor={growth_factor!r} must be > 1")
        if not 0 < backoff_factor < 1:
            raise ValueError(f"LossScaler: backoff_factor={backoff_factor!r} must be in (0, 1)")
        if not (isinstance(growth_interval, int) and growth_interval >= 1):
            raise ValueError(f"LossScaler: growth_interval={growth_interval!r} must be an "
                             "integer >= 1")
        self.scale = float(init_scale)
        self.growth_factor = float(growth_factor)
        self.backoff_factor = float(backoff_factor)
        self.growth_interval = growth_interval
        self.good_steps = 0  # steps since the last overflow or growth
        self.skipped = 0  # steps skipped for overflow, in all

    @torch.no_grad()
    def unscale_(self, params: Iterable[Tensor]) -> bool:
        """Divide every ``p.grad`` by the scale in place; True if all of them are finite."""
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return True
        torch._foreach_mul_(grads, 1.0 / self.scale)
        finite = torch.stack([torch.isfinite(g).all() for g in grads]).all()
        return bool(finite)

    def update(self, overflow: bool) -> None:
        """After a step (or a skipped one): back off on overflow, grow after a clean interval."""
        if overflow:
            self.scale *= self.backoff_factor
            self.good_steps = 0
            self.skipped += 1
            return
        self.good_steps += 1
        if self.good_steps >= self.growth_interval:
            self.scale *= self.growth_factor
            self.good_steps = 0

    def state_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "good_steps": self.good_steps, "skipped": self.skipped}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scale = float(state["scale"])
        self.good_steps = int(state["good_steps"])
        self.skipped = int(state["skipped"])
