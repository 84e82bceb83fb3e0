"""SOAA, Second-Order Adaptive Adam (Vo 2024).

Transcription of Algorithm 1, lines 1-21 (step ``t``, element-wise unless summed)::

    5   m_t = b1 m + (1 - b1) g_t
    6   s_t = b2 s + (1 - b2) g_t^2
    7   m_hat = m_t / (1 - b1^t);  s_hat = s_t / (1 - b2^t)
    8   F = (1 + sum(m_hat^2) / sum(s_hat + eps)) * s_hat
    9   trs = max(dt * F, sqrt(s_hat))
    10  g_adj = m_hat * dt / (trs + eps)
    12  theta = theta - lr * wd * theta                       (if wd != 0)
    14  theta = theta - lr * g_adj
    15  if the loss l_t is available:
    16      l_avg = b1 l_avg + (1 - b1) l_t
    17      l_hat = l_avg / (1 - b1^t)
    18      dt = min(max((l_hat - l_t) / max(pr, eps) * dt, (1 - gamma)^((t-1)/T)),
                     1 + gamma^((t-1)/T))
    19      pr = lr * (sum(m_hat * g_adj) - 0.5 * sum(s_hat * g_adj^2))

Decisions on the paper's gaps (tested in ``tests/optim/test_soaa.py``):

* ``v_hat`` in lines 8, 9 and 19 is the bias-corrected second moment ``s_hat`` (the
  algorithm initialises ``v = 0`` but never updates it).
* The sums in lines 8 and 19 run over **all** parameters of the optimizer (one trust
  region per model).  ``sum(s_hat + eps)`` counts eps once per element.  Line 19 uses
  the learning rate of each parameter group for that group's share of the sum (with a
  single learning rate this is exactly ``lr * (...)``).
* ``T`` is the total number of training steps (``total_steps``; the registry passes the
  trainer's ``num_training_steps``).
* The loss reaches the optimizer as ``step(closure)`` (the closure returns the current
  batch loss, already computed) or ``step(loss=...)``.  ``l_t`` is the mini-batch loss at
  the parameters *before* this step's update, i.e. the loss at the point reached by the
  previous step.  Lines 18-19 therefore compare the reduction observed at step ``t`` with
  the ``pr`` predicted at step ``t - 1``: the "loss at the new point" needed by the trust
  region test is the next step's loss, as the algorithm is written.  Without a loss,
  ``dt``, ``pr`` and ``l_avg`` are left unchanged (lines 15-20 skipped).
* The loss average uses ``beta1`` (line 16) and the same ``t`` as the moments.  Its bias
  correction makes ``l_hat = l_1`` at ``t = 1``, so ``dt = 1`` after the first step.
* Order of lines 16-18 follows the paper (average updated *before* the ratio).  The
  Tadam code SOAA builds on updates the average after the ratio; we do not.
* ``betas``, ``eps`` and ``gamma`` are model-wide (they enter the shared trust region);
  ``lr`` and ``weight_decay`` may differ between parameter groups.
* Defaults: the paper gives none.  ``lr=1e-3``, ``betas=(0.9, 0.999)``, ``eps=1e-8`` as
  Adam; ``gamma=0.25`` as the Tadam reference code.
* State is float32 for float16/bfloat16 parameters (as :class:`AdaHessian`); scalar
  trust-region state (``dt``, ``pr``, ``l_avg``, ``t``) is kept as Python floats and saved
  in :meth:`state_dict` under ``"secondorder"``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from secondorder.validation import (
    BETAS,
    BOOL,
    NONNEG,
    POSITIVE,
    POSITIVE_INT,
    UNIT,
    Check,
    check_values,
)

from .base import GlobalStateOptimizer, state_dtype

__all__ = ["HYPERPARAMETERS", "SOAA"]

# every hyperparameter's check (secondorder.validation), here and in optim.registry
HYPERPARAMETERS: dict[str, Check] = {
    "total_steps": POSITIVE_INT,
    "lr": NONNEG,
    "weight_decay": NONNEG,
    "betas": BETAS,
    "eps": POSITIVE,
    "gamma": UNIT,
    "foreach": BOOL,
}


class SOAA(GlobalStateOptimizer):
    """Second-Order Adaptive Adam with an adaptive trust region (Algorithm 1 of ``003_*``).

    Args:
        params: parameters or parameter groups (per-group keys: ``lr``, ``weight_decay``).
        total_steps: ``T``, the run's total number of optimizer steps.
        lr: ``alpha``.
        betas: ``(beta1, beta2)``; ``beta1`` also averages the loss (line 16).
        gamma: trust-region range parameter, in ``[0, 1)``.
        eps: ``epsilon`` of lines 8, 10 and 18.
        weight_decay: ``lambda``, decoupled (line 12).
        foreach: use ``torch._foreach_*`` over all tensors of a group at once.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        total_steps: int,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        gamma: float = 0.25,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        foreach: bool = True,
    ) -> None:
        check_values(HYPERPARAMETERS, locals(), "SOAA")  # the arguments, by name
        self.betas = (float(betas[0]), float(betas[1]))
        defaults = dict(lr=lr, weight_decay=weight_decay)
        super().__init__(params, defaults)
        for g in self.param_groups:
            for key in ("betas", "eps", "gamma"):
                if key in g:
                    raise ValueError(
                        f"SOAA: '{key}' is model-wide and cannot be set per parameter group"
                    )
            check_values({k: HYPERPARAMETERS[k] for k in ("lr", "weight_decay")}, g, "SOAA")
        self.total_steps = total_steps
        self.gamma = float(gamma)
        self.eps = float(eps)
        self.foreach = foreach
        self._global: dict[str, Any] = {"step": 0, "dt": 1.0, "l_avg": 0.0, "pr": 0.0}

    # ------------------------------------------------------------------ state
    @property
    def trust_region(self) -> float:
        """Current trust-region scaling ``dt``."""
        return self._global["dt"]

    @property
    def predicted_reduction(self) -> float:
        return self._global["pr"]

    def _extra_state(self) -> dict[str, Any]:
        return dict(self._global)

    def _load_extra_state(self, extra: dict[str, Any]) -> None:
        self._global = {
            "step": int(extra["step"]),
            "dt": float(extra["dt"]),
            "l_avg": float(extra["l_avg"]),
            "pr": float(extra["pr"]),
        }

    # ------------------------------------------------------------------ step
    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None, *, loss: Any = None) -> Any:
        """One SOAA step.  The loss comes from ``closure()`` or ``loss=`` (not both)."""
        if closure is not None:
            if loss is not None:
                raise ValueError("SOAA.step: pass either closure or loss, not both")
            with torch.enable_grad():
                loss = closure()
        beta1, beta2 = self.betas
        eps = self.eps
        self._global["step"] += 1
        t = self._global["step"]
        dt = self._global["dt"]
        bc1 = 1.0 - beta1**t
        bc2 = 1.0 - beta2**t

        # lines 5-7 per group, and the model-wide sums of line 8
        groups = []
        sum_m2 = None
        sum_s = None
        n_elem = 0
        for group in self.param_groups:
            ps = [p for p in group["params"] if p.grad is not None]
            if not ps:
                continue
            ms, ss, gs = [], [], []
            for p in ps:
                if p.grad.is_sparse:
                    raise RuntimeError("SOAA does not support sparse gradients")
                state = self.state[p]
                if len(state) == 0:
                    sd = state_dtype(p)
                    state["exp_avg"] = torch.zeros_like(p, dtype=sd)
                    state["exp_avg_sq"] = torch.zeros_like(p, dtype=sd)
                ms.append(state["exp_avg"])
                ss.append(state["exp_avg_sq"])
                gs.append(p.grad.detach().to(state["exp_avg"].dtype))
            torch._foreach_mul_(ms, beta1)
            torch._foreach_add_(ms, gs, alpha=1.0 - beta1)
            torch._foreach_mul_(ss, beta2)
            torch._foreach_addcmul_(ss, gs, gs, value=1.0 - beta2)
            # sum(m_hat^2) = sum(m^2) / bc1^2 ; sum(s_hat) = sum(s) / bc2 (s >= 0: L1 norm)
            m2 = torch.stack(torch._foreach_norm(ms, 2)).double().square().sum() / bc1**2
            s1 = torch.stack(torch._foreach_norm(ss, 1)).double().sum() / bc2
            sum_m2 = m2 if sum_m2 is None else sum_m2 + m2.to(sum_m2.device)
            sum_s = s1 if sum_s is None else sum_s + s1.to(sum_s.device)
            n_elem += sum(p.numel() for p in ps)
            groups.append((group, ps, ms, ss))
        if not groups:
            return loss

        ratio = float(sum_m2) / (float(sum_s) + n_elem * eps)
        f_scale = dt * (1.0 + ratio)  # dt * F = f_scale * s_hat

        pr_sum = 0.0
        for group, ps, ms, ss in groups:
            n = len(ps)
            chunks = [slice(0, n)] if self.foreach else [slice(i, i + 1) for i in range(n)]
            for sl in chunks:
                pr_sum += self._update(group, ps[sl], ms[sl], ss[sl], bc1, bc2, dt, f_scale, eps)

        if loss is not None:
            l_t = float(loss)
            g = self._global
            g["l_avg"] = beta1 * g["l_avg"] + (1.0 - beta1) * l_t
            l_hat = g["l_avg"] / bc1
            expo = (t - 1) / self.total_steps
            rho = (l_hat - l_t) / max(g["pr"], eps)
            g["dt"] = min(max(rho * dt, (1.0 - self.gamma) ** expo), 1.0 + self.gamma**expo)
            g["pr"] = pr_sum
        return loss

    @staticmethod
    def _update(group, ps, ms, ss, bc1, bc2, dt, f_scale, eps) -> float:
        lr, wd = group["lr"], group["weight_decay"]
        m_hat = torch._foreach_div(ms, bc1)
        s_hat = torch._foreach_div(ss, bc2)
        # line 9: trust_region_scale = max(dt * F, sqrt(s_hat))
        trs = torch._foreach_mul(s_hat, f_scale)
        torch._foreach_maximum_(trs, torch._foreach_sqrt(s_hat))
        # line 10: g_adj = m_hat * dt / (trs + eps)
        torch._foreach_add_(trs, eps)
        g_adj = torch._foreach_div(m_hat, trs)
        torch._foreach_mul_(g_adj, dt)
        # lines 12-14
        work = [p if p.dtype == m.dtype else p.to(m.dtype) for p, m in zip(ps, ms, strict=True)]
        if wd != 0.0:
            torch._foreach_mul_(work, 1.0 - lr * wd)
        torch._foreach_add_(work, g_adj, alpha=-lr)
        for p, w in zip(ps, work, strict=True):
            if w is not p:
                p.copy_(w)
        # line 19 summand: m_hat . g_adj - 0.5 s_hat . g_adj^2
        torch._foreach_mul_(m_hat, g_adj)
        torch._foreach_mul_(g_adj, g_adj)
        torch._foreach_mul_(g_adj, s_hat)
        torch._foreach_add_(m_hat, g_adj, alpha=-0.5)
        total = torch.stack([x.sum(dtype=torch.float64) for x in m_hat]).sum()
        return lr * float(total)
