"""Sophia-H (Liu et al., "Sophia: A Scalable Stochastic Second-order Optimizer for Language Model
Pre-training", ICLR 2024, Algorithm 3 with the Hutchinson estimator of Algorithm 1).

Update, for every parameter tensor (all operations element-wise)::

    g_t   = gradient at theta_{t-1}
    m_t   = beta1 m_{t-1} + (1 - beta1) g_t
    on steps t = 1, 1 + k, 1 + 2k, ... (every k = hessian_interval steps):
        h_hat = z * (H z),  z Rademacher                         (Hutchinson, Sophia-H)
        h_t   = beta2 h_{t-k} + (1 - beta2) h_hat
    else h_t = h_{t-1}
    theta_t = theta_{t-1} (1 - lr wd)                             (decoupled weight decay)
              - lr * clip(m_t / max(gamma h_t, eps), 1)           (clip(z, 1) = max(min(z, 1), -1))

Neither moment is bias-corrected (the paper's algorithm has no correction). A negative or tiny
``h`` makes the denominator ``eps`` and the step ``lr * sign(m)``: the clip bounds every
coordinate's step by ``lr``, which is what keeps a noisy diagonal from stalling or blowing up
training. Between refreshes no Hessian product is computed, so such a step costs what an
AdamW step does (:meth:`SophiaH.needs_curvature` tells the loop when to build the graph).

Decisions where the paper leaves room (each tested in ``tests/optim/test_sophia.py``):

* ``h_hat`` is the mean of ``n_samples`` Hutchinson samples (the paper uses one); the products
  come from the gradient's own graph, over the first ``hessian_batch_fraction`` of the batch
  (the paper's Hessian sub-batch), scaled back by the loop's ``hessian_scale``.
* Randomness: ``z`` from a seeded generator per device (``seed``), drawn parameter after
  parameter in ``param_groups`` order; every data-parallel rank draws the same ``z`` and
  ``hooks.reduce_products`` sums ``H z`` across ranks.
* Precision: state in float32 for float16 / bfloat16 parameters, else in the parameter's dtype.
* fp16 (``hooks.skip_nonfinite``): a non-finite estimate skips the step, every state and the
  Rademacher stream as they were, and sets ``step_skipped``.

``pytorch_optimizer.SophiaH`` implements the same algorithm in another parametrisation: its
step ``lr' * clamp(m / max(h, eps'), -p, p)`` is ours with ``p = gamma``, ``lr' = lr / gamma``,
``eps' = eps / gamma`` and a weight decay of ``wd * gamma`` (the test shows the steps agree).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from secondorder.validation import (
    BETAS,
    BOOL,
    FRACTION,
    NONNEG,
    POSITIVE,
    POSITIVE_INT,
    Check,
    check_values,
    is_int,
)

from .base import (
    CurvatureHooks,
    CurvatureOptimizer,
    DeviceGenerators,
    GlobalStateOptimizer,
    state_dtype,
)

__all__ = ["HYPERPARAMETERS", "SophiaH"]

# every hyperparameter's check (secondorder.validation), here and in optim.registry
HYPERPARAMETERS: dict[str, Check] = {
    "lr": NONNEG,
    "weight_decay": NONNEG,
    "betas": BETAS,
    "gamma": POSITIVE,
    "eps": POSITIVE,
    "hessian_interval": POSITIVE_INT,
    "n_samples": POSITIVE_INT,
    "hessian_batch_fraction": FRACTION,
    "seed": (lambda x: x is None or is_int(x), "an integer or null"),
    "foreach": BOOL,
}


class SophiaH(GlobalStateOptimizer, CurvatureOptimizer):
    """Sophia with the Hutchinson estimate of the Hessian's diagonal, refreshed every
    ``hessian_interval`` steps.

    Args:
        params: parameters or parameter groups (per-group keys: ``lr``, ``betas``, ``gamma``,
            ``eps``, ``weight_decay``).
        lr: learning rate (the largest step of any coordinate).
        betas: ``(beta1, beta2)``: the gradient's and the Hessian estimate's EMA.
        gamma: scales ``h`` in the denominator (the paper's gamma; 0.01 for Sophia-H).
        eps: the denominator's floor.
        weight_decay: decoupled, ``theta *= 1 - lr * weight_decay``.
        hessian_interval: ``k``, refresh the estimate every this many steps.
        n_samples: Rademacher vectors per refresh (their mean).
        hessian_batch_fraction: share of the batch whose graph the loop keeps for the products.
        seed: the Rademacher generators' seed (``None``: ``torch.initial_seed()``).
        foreach: ``torch._foreach_*`` over all tensors of a group at once.
        hooks: what the training loop provides (:class:`CurvatureHooks`).
    """

    reports_preconditioner = False

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-4,
        betas: tuple[float, float] = (0.965, 0.99),
        gamma: float = 0.01,
        eps: float = 1e-12,
        weight_decay: float = 0.0,
        hessian_interval: int = 10,
        n_samples: int = 1,
        hessian_batch_fraction: float = 1.0,
        seed: int | None = None,
        foreach: bool = True,
        hooks: CurvatureHooks | None = None,
    ) -> None:
        check_values(HYPERPARAMETERS, locals(), "SophiaH")  # the arguments, by name
        defaults = dict(lr=lr, betas=tuple(betas), gamma=gamma, eps=eps,
                        weight_decay=weight_decay)
        super().__init__(params, defaults)
        for g in self.param_groups:  # a group may set its own
            check_values({k: HYPERPARAMETERS[k] for k in defaults}, g, "SophiaH")
        self.hessian_interval = hessian_interval
        self.n_samples = n_samples
        self.foreach = foreach
        self._generators = DeviceGenerators(torch.initial_seed() if seed is None else seed)
        self._init_curvature(hooks, hessian_batch_fraction)
        self._global: dict[str, Any] = {"step": 0, "hessian_step": 0}

    # ------------------------------------------------------------------ CurvatureOptimizer
    def needs_curvature(self) -> bool:
        """True on the steps that refresh the Hessian estimate (1, 1 + k, 1 + 2k, ...)."""
        return self._global["step"] % self.hessian_interval == 0

    @property
    def hessian_step_count(self) -> int:
        return self._global["hessian_step"]

    def _extra_state(self) -> dict[str, Any]:
        return {**self._global, **self._generators.state()}

    def _load_extra_state(self, extra: dict[str, Any]) -> None:
        self._global = {"step": int(extra["step"]), "hessian_step": int(extra["hessian_step"])}
        self._generators.load(extra)

    # ------------------------------------------------------------------ step
    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None, *,
             hessian_scale: float = 1.0) -> Any:
        """One Sophia-H step. `hessian_scale` multiplies the Hutchinson estimate (the loop
        passes ``B / n_s`` when the graph covers ``n_s`` of ``B`` examples, and undoes a loss
        scale)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        refresh = self.needs_curvature()
        params = [p for g in self.param_groups for p in g["params"] if p.grad is not None]
        if any(p.grad.is_sparse for p in params):
            raise RuntimeError("SophiaH does not support sparse gradients")
        self.step_skipped = False
        estimate: dict[int, Tensor] = {}
        if refresh and params:
            streams = self._generators.snapshot()
            est = self._hutchinson_mean(params, [p.grad for p in params], hessian_scale,
                                        self.n_samples, self._generators)
            if self.hooks.skip_nonfinite and not all(bool(torch.isfinite(d).all()) for d in est):
                self._generators.restore(streams)  # as if no z had been drawn
                for p in params:
                    p.grad = p.grad.detach()
                self.step_skipped = True
                return loss
            estimate = {id(p): d for p, d in zip(params, est, strict=True)}
        for p in params:  # no gradient keeps the double-backward graph after the step
            if p.grad.requires_grad or p.grad.grad_fn is not None:
                p.grad = p.grad.detach()

        self._global["step"] += 1
        self._global["hessian_step"] += int(refresh)
        for group in self.param_groups:
            ps = [p for p in group["params"] if p.grad is not None]
            if not ps:
                continue
            for p in ps:
                if not self.state[p]:
                    self.state[p]["exp_avg"] = torch.zeros_like(p, dtype=state_dtype(p))
                    self.state[p]["hessian_ema"] = torch.zeros_like(p, dtype=state_dtype(p))
            chunks = [ps] if self.foreach else [[p] for p in ps]
            for chunk in chunks:
                self._update(group, chunk, [estimate[id(p)] for p in chunk] if refresh else None)
        return loss

    def _update(self, group: dict[str, Any], ps: list[Tensor], estimates: list[Tensor] | None):
        beta1, beta2 = group["betas"]
        lr, wd = group["lr"], group["weight_decay"]
        ms = [self.state[p]["exp_avg"] for p in ps]
        hs = [self.state[p]["hessian_ema"] for p in ps]
        gs = [p.grad.to(m.dtype) for p, m in zip(ps, ms, strict=True)]
        torch._foreach_lerp_(ms, gs, 1.0 - beta1)  # m = beta1 m + (1 - beta1) g
        if estimates is not None:
            torch._foreach_lerp_(hs, estimates, 1.0 - beta2)
        denominators = torch._foreach_mul(hs, group["gamma"])
        torch._foreach_clamp_min_(denominators, group["eps"])
        ratios = torch._foreach_div(ms, denominators)
        torch._foreach_clamp_min_(ratios, -1.0)
        torch._foreach_clamp_max_(ratios, 1.0)
        for p, r in zip(ps, ratios, strict=True):
            work = p if p.dtype == r.dtype else p.to(r.dtype)
            if wd:
                work.mul_(1.0 - lr * wd)
            work.add_(r, alpha=-lr)
            if work is not p:
                p.copy_(work)
