"""AdaSub (Da Mata & Andersen, DSAA 2023), as Algorithm 2 in the appendix of ``papers/000_*``.

For every parameter tensor ("layer") ``l`` at step ``t``::

    G_l   <- [G_l, g_{t,l}], keeping the last m columns          (subspace construction)
    V     <- Orthonormalize(G_l)                                  (reduced QR)
    Y     <- H_{t,l} V                                            (Hessian-vector products)
    Lam,U <- eig(V^T Y)                                           (V^T H V = U Lam U^T)
    alpha <- max(0, rho - min(Lam))
    w_l   <- w_l - lr V (V^T H V + alpha I)^{-1} V^T g_{t,l}

Decisions (tested in ``tests/optim/test_adasub.py``):

* ``H_{t,l}`` is the diagonal block of the Hessian for tensor ``l`` (block-diagonal
  approximation, as the paper states).  ``Y`` is computed with one autograd call per
  tensor and subspace column.  ``cross_layer_hvp=True`` instead uses one call per column
  for all tensors together (the restructuring described in the report, Sec. III-C):
  it is cheaper but returns ``sum_k H_{lk} V_k``, i.e. it includes off-diagonal blocks.
* The subspace step is applied from the first step (Algorithm 2; ``G = [g_1]``).  The
  authors' code instead takes a plain SGD step first.
* ``V^T H V`` is symmetrised and solved in float64 (it is ``k x k`` with ``k <= m``).
* Defaults ``lr=1e-3``, ``n_directions=2``, ``rho=0.02`` as the authors' code.
* ``weight_decay`` (decoupled, default 0) is an addition: Algorithm 2 has none.
* Like AdaHessian it follows the trainer protocol of :mod:`secondorder.optim`:
  ``needs_curvature()`` is always True, ``step(closure, hessian_scale=...)`` scales ``H``,
  and ``p.grad`` is detached after the step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from .base import GlobalStateOptimizer, check, state_dtype

__all__ = ["AdaSub"]


class AdaSub(GlobalStateOptimizer):
    """Regularised Newton steps in a per-tensor subspace of recent gradients (Algorithm 2)."""

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        n_directions: int = 2,
        rho: float = 0.02,
        weight_decay: float = 0.0,
        cross_layer_hvp: bool = False,
    ) -> None:
        owner = "AdaSub"
        check("lr", lr, isinstance(lr, (int, float)) and lr >= 0, "[0, inf)", owner)
        check(
            "n_directions",
            n_directions,
            isinstance(n_directions, int) and n_directions >= 1,
            "integer >= 1",
            owner,
        )
        check("rho", rho, isinstance(rho, (int, float)) and rho > 0, "(0, inf)", owner)
        check(
            "weight_decay",
            weight_decay,
            isinstance(weight_decay, (int, float)) and weight_decay >= 0,
            "[0, inf)",
            owner,
        )
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay))
        self.n_directions = n_directions
        self.rho = float(rho)
        self.cross_layer_hvp = cross_layer_hvp
        self.hessian_batch_fraction = 1.0
        self._global: dict[str, Any] = {"step": 0}

    def needs_curvature(self) -> bool:
        """AdaSub needs Hessian-vector products on every step."""
        return True

    @property
    def step_count(self) -> int:
        return self._global["step"]

    def _extra_state(self) -> dict[str, Any]:
        return dict(self._global)

    def _load_extra_state(self, extra: dict[str, Any]) -> None:
        self._global = {"step": int(extra["step"])}

    def _hv_columns(self, params, grads, bases) -> list[Tensor]:
        """Y_l = H V_l for every tensor, as (numel, k) matrices."""
        ys: list[list[Tensor]] = [[] for _ in params]
        if self.cross_layer_hvp:
            k_max = max(v.shape[1] for v in bases)
            for j in range(k_max):
                idx = [i for i, v in enumerate(bases) if j < v.shape[1]]
                outs = torch.autograd.grad(
                    [grads[i] for i in idx],
                    [params[i] for i in idx],
                    grad_outputs=[bases[i][:, j].reshape(params[i].shape) for i in idx],
                    retain_graph=True,
                    allow_unused=True,
                )
                for i, h in zip(idx, outs, strict=True):
                    ys[i].append(torch.zeros_like(params[i]) if h is None else h)
        else:
            for i, (p, g, v) in enumerate(zip(params, grads, bases, strict=True)):
                for j in range(v.shape[1]):
                    (h,) = torch.autograd.grad(
                        g,
                        p,
                        grad_outputs=v[:, j].reshape(p.shape),
                        retain_graph=True,
                        allow_unused=True,
                    )
                    ys[i].append(torch.zeros_like(p) if h is None else h)
        return [torch.stack([c.reshape(-1) for c in cols], dim=1) for cols in ys]

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None, *, hessian_scale: float = 1.0) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        params, grads, owners = [], [], []
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    params.append(p)
                    grads.append(p.grad)
                    owners.append(group)
        if not params:
            return loss
        if not any(g.requires_grad for g in grads):
            raise RuntimeError(
                "AdaSub needs Hessian-vector products on every step; call "
                "loss.backward(create_graph=True)"
            )
        bases, flat_grads = [], []
        for p, g in zip(params, grads, strict=True):
            state = self.state[p]
            col = g.detach().reshape(-1, 1).to(state_dtype(p))
            if "subspace" not in state:
                state["subspace"] = col.clone()
            else:
                state["subspace"] = torch.cat([state["subspace"], col], dim=1)[
                    :, -self.n_directions :
                ]
            q, _ = torch.linalg.qr(state["subspace"].double(), mode="reduced")
            bases.append(q.to(p.dtype))
            flat_grads.append(col.double())
        with torch.enable_grad():
            ys = self._hv_columns(params, grads, bases)
        for p in params:
            p.grad = p.grad.detach()

        for p, group, v, y, g in zip(params, owners, bases, ys, flat_grads, strict=True):
            v64 = v.double()
            small = v64.T @ (y.double() * float(hessian_scale))
            small = 0.5 * (small + small.T)
            lam, u = torch.linalg.eigh(small)
            alpha = max(0.0, self.rho - float(lam.min()))
            coeff = u @ ((u.T @ (v64.T @ g)) / (lam + alpha).unsqueeze(1))
            direction = (v64 @ coeff).reshape(p.shape)
            lr, wd = group["lr"], group["weight_decay"]
            if wd != 0.0:
                p.mul_(1.0 - lr * wd)
            p.add_(direction.to(p.dtype), alpha=-lr)
        self._global["step"] += 1
        return loss
