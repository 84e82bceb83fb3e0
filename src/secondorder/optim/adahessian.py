"""AdaHessian (Yao et al., AAAI 2021, Algorithm 1).

Update, for every parameter tensor (all operations element-wise)::

    g_t   = gradient at theta_{t-1}
    D_t   = z * (H z),  z Rademacher                          (Eq. 5-6, Hutchinson)
    D_t^s = spatial average of D_t over blocks of b entries   (Eq. 7)
    m_t   = beta1 m_{t-1} + (1 - beta1) g_t
    v_t   = beta2 v_{t-1} + (1 - beta2) D_t^s * D_t^s         (Eq. 8-9, before bias correction)
    theta_t = theta_{t-1} (1 - lr wd)
              - lr * (m_t / (1 - beta1^t)) / ((sqrt(v_t / (1 - beta2^h)))^k + eps)

Decisions on points the paper leaves open (each one is tested in ``tests/optim``):

* **eps.** Algorithm 1 divides by ``v_t`` with no epsilon.  We follow the official
  implementation (``amirgholami/adahessian``, ``instruction/adahessian.py``): eps is
  added *after* the Hessian power, ``denominator = (sqrt(v_hat))^k + eps``, and its
  default is ``1e-4`` (the official default; the fairseq port inherits Adam's 1e-8).
* **Weight decay** is decoupled (AdamW style), ``theta <- theta (1 - lr wd)``, as in the
  official code and in the report's Table II (``wd = 0.01``).
* **Spatial averaging** (Eq. 7) averages the *signed* estimate ``D`` (the official code
  averages ``|Hz| = |z * Hz|``; the paper averages ``D``; the two differ because v uses
  ``D^2``: signed entries of opposite sign cancel in the average, absolute ones do not).
  ``average_abs=True`` takes the official code's ``|D|`` instead:

  - tensors with 2 or 3 dims: blocks of ``block_size`` consecutive entries along the last
    dimension; when the last dimension is not divisible by ``block_size`` the whole row
    (last dimension) is averaged (official fallback).  See
    :func:`spatial_average`.
  - 4-D tensors (conv kernels ``(out, in, kh, kw)``): the mean over each ``kh x kw``
    kernel, which is the paper's description ("average of the Hessian diagonal for each
    convolution kernel (3x3)") and the official default for 4-D tensors.  In the
    flattened layout this is Eq. 7 with ``b = kh*kw``.
  - 1-D tensors (biases, LayerNorm): not averaged unless ``average_1d=True`` (official
    default); then the last-dimension rule above applies.
  - ``block_size=1`` turns averaging off for every tensor.
* **Delayed Hessian** (Table 6): the estimate is refreshed on steps ``1, 1 + I, 1 + 2I, ...``
  (``I = hessian_interval``).  ``v`` is updated only on refresh steps and is bias-corrected
  with its own counter ``h`` (number of refreshes so far); between refreshes the last
  ``v`` is reused, never fed stale copies of ``D``.  ``m`` is updated every step with the
  step counter ``t``.  :meth:`AdaHessian.needs_curvature` tells the trainer whether to
  build the double-backward graph.
* **Randomness**: ``z`` comes from a ``torch.Generator`` seeded with ``seed`` (one per
  device, created lazily on the parameters' device).  Seed all data-parallel ranks with
  the same value so they draw the same ``z``.  ``seed=None`` uses ``torch.initial_seed()``.
  Draw order: for each sample, parameters in ``param_groups`` order (those with a grad).
* **Precision**: state (``exp_avg``, ``exp_hessian_diag_sq``) is kept in float32 for
  float16/bfloat16 parameters and in the parameter dtype otherwise.  For low-precision
  parameters the update is computed in float32 and rounded into the parameter (no
  master copy).  Under bf16 autocast with float32 parameters everything is float32.
* **Gradient clipping** between ``backward`` and ``step`` changes ``p.grad`` (hence the first
  moment) but not the Hessian estimate: the HVP differentiates the autograd graph of the
  gradient, which in-place edits of ``p.grad`` under ``no_grad`` do not alter.
* **Ablation switches** (``make ablate``; defaults are the paper's algorithm):
  ``curvature_source="gradient_squared"`` replaces ``z * Hz`` by ``g * g`` with everything
  else unchanged (no double-backward graph is then needed: at ``k = 0.5`` the update is
  Adam-like, ``m / (mean over the block of g^2) + eps``), the control for whether the
  Hutchinson estimate is what fails; ``bias_correction=False`` drops both bias corrections;
  ``block_size="row"`` averages over the whole last dimension; ``hessian_batch="independent"``
  asks the trainer for Hessian products on a second batch drawn independently of the gradient's
  (:func:`secondorder.optim.protocol.backward_for_step` passes its gradients as
  ``hessian_grads``).
* After :meth:`AdaHessian.step` every ``p.grad`` is detached, so no graph outlives the step.
* Counters (``step``, ``hessian_step``) and generator states are saved by
  :meth:`state_dict` under the key ``"secondorder"``; resuming is bit-identical.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from secondorder.validation import (
    BETAS,
    BOOL,
    FRACTION,
    NONNEG,
    POSITIVE_INT,
    Check,
    check_values,
    is_int,
    one_of,
)

from .base import (
    CurvatureHooks,
    CurvatureOptimizer,
    DeviceGenerators,
    GlobalStateOptimizer,
    state_dtype,
)

__all__ = ["AdaHessian", "HYPERPARAMETERS", "spatial_average"]

CURVATURE_SOURCES = ("hutchinson", "gradient_squared")
HESSIAN_BATCHES = ("same", "independent")
WHOLE_ROW = "row"  # block_size value: average over the whole last dimension

# every hyperparameter's check (secondorder.validation), here and in optim.registry
HYPERPARAMETERS: dict[str, Check] = {
    "lr": NONNEG,
    "weight_decay": NONNEG,
    "betas": BETAS,
    "eps": NONNEG,
    "hessian_power": FRACTION,
    "n_samples": POSITIVE_INT,
    "block_size": (lambda x: x == WHOLE_ROW or (is_int(x) and x >= 1),
                   f"an integer >= 1 (1 = no averaging) or {WHOLE_ROW!r} (the whole row)"),
    "average_1d": BOOL,
    "hessian_interval": POSITIVE_INT,
    "hessian_batch_fraction": FRACTION,
    "seed": (lambda x: x is None or is_int(x), "an integer or null"),
    "foreach": BOOL,
    "average_abs": BOOL,
    "curvature_source": one_of(CURVATURE_SOURCES),
    "bias_correction": BOOL,
    "hessian_batch": one_of(HESSIAN_BATCHES),
}


def spatial_average(d: Tensor, block_size: int) -> Tensor:
    """Spatial averaging of a Hessian-diagonal estimate (AdaHessian Eq. 7).

    The *signed* values are averaged over consecutive blocks of ``block_size``
    entries along the **last** dimension and each entry is replaced by the mean
    of its block.  Rules:

    * ``block_size <= 1`` or a 0-d tensor: returned unchanged.
    * last dimension divisible by ``block_size``: block means (Eq. 7 applied row by row).
    * last dimension not divisible by ``block_size``: the whole row (last
      dimension) is averaged; this is the fallback of the official transformer code.
    * This helper averages any tensor with ``>= 1`` dims it is given; whether
      1-D tensors (biases, LayerNorm) are averaged at all is decided by the caller
      (``AdaHessian(average_1d=...)``).

    For a 4-D convolution kernel ``(out, in, kh, kw)`` the last dimension is
    ``kw``; the paper averages over each ``kh x kw`` kernel instead (see
    the module docstring for how the optimizer handles 4-D tensors).
    """
    if block_size <= 1 or d.dim() == 0:
        return d
    n = d.shape[-1]
    if n % block_size == 0:
        blocks = d.reshape(*d.shape[:-1], n // block_size, block_size)
        return blocks.mean(dim=-1, keepdim=True).expand_as(blocks).reshape(d.shape)
    return d.mean(dim=-1, keepdim=True).expand_as(d).clone()


def _smooth(d: Tensor, block_size: int | str, average_1d: bool) -> Tensor:
    """Spatial averaging policy of :class:`AdaHessian` (see module docstring)."""
    if block_size == 1 or d.dim() == 0:
        return d
    if d.dim() == 4:
        return d.mean(dim=(2, 3), keepdim=True).expand_as(d).clone()
    if d.dim() == 1 and not average_1d:
        return d
    return spatial_average(d, d.shape[-1] if block_size == WHOLE_ROW else block_size)


# ---------------------------------------------------------------------------- optimizer
class AdaHessian(GlobalStateOptimizer, CurvatureOptimizer):
    """AdaHessian with Hutchinson diagonal, spatial averaging, Hessian power and delayed Hessian.

    Args:
        params: parameters or parameter groups.  Per-group keys: ``lr``, ``betas``, ``eps``,
            ``weight_decay``, ``hessian_power``, ``block_size``, ``average_1d``.
        lr: learning rate.
        betas: ``(beta1, beta2)`` for the gradient and Hessian-diagonal moments.
        eps: added to ``(sqrt(v_hat))^k`` (official placement; default 1e-4 as official code).
        weight_decay: decoupled weight decay (``theta *= 1 - lr * weight_decay``).
        hessian_power: ``k`` in ``(0, 1]``.
        n_samples: Rademacher vectors per refresh (the estimate is their mean).
        block_size: spatial-averaging block ``b`` (1 = off, ``"row"`` = the whole last dimension).
        average_1d: also average 1-D tensors.
        hessian_interval: refresh the Hessian estimate every this many steps.
        hessian_batch_fraction: fraction of the batch the trainer uses for the Hessian
            (read by the trainer; the optimizer only needs ``hessian_scale`` in :meth:`step`).
        seed: seed of the Rademacher generator (``None``: ``torch.initial_seed()``).
        foreach: use ``torch._foreach_*`` over all tensors of a group at once (else one
            tensor at a time, same arithmetic, smaller temporaries).
        average_abs: average ``|z * Hz|`` (the official code) instead of the signed estimate.
        curvature_source: ``"hutchinson"`` (``z * Hz``, the paper) or ``"gradient_squared"``
            (``g * g``: the ablation control, no Hessian products).
        bias_correction: divide the moments by ``1 - beta^t`` (Adam's bias correction).
        hessian_batch: ``"same"`` (the gradient's batch) or ``"independent"`` (the trainer
            draws a second batch for the Hessian products).
        hooks: what the training loop provides (:class:`secondorder.optim.CurvatureHooks`:
            the data-parallel product reduction, fp16 skipping, telemetry counts).

    Model-wide settings (``n_samples``, ``hessian_interval``, ``hessian_batch_fraction``,
    ``seed``, ``foreach``, ``average_abs``, ``curvature_source``, ``hessian_batch``) are
    attributes, not group keys; ``bias_correction`` is a group key.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 0.15,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-4,
        weight_decay: float = 0.0,
        hessian_power: float = 1.0,
        n_samples: int = 1,
        block_size: int = 32,
        average_1d: bool = False,
        hessian_interval: int = 1,
        hessian_batch_fraction: float = 1.0,
        seed: int | None = None,
        foreach: bool = True,
        average_abs: bool = False,
        curvature_source: str = "hutchinson",
        bias_correction: bool = True,
        hessian_batch: str = "same",
        hooks: CurvatureHooks | None = None,
    ) -> None:
        check_values(HYPERPARAMETERS, locals(), "AdaHessian")  # the arguments, by name
        defaults = dict(
            lr=lr,
            betas=tuple(betas),
            eps=eps,
            weight_decay=weight_decay,
            hessian_power=hessian_power,
            block_size=block_size,
            average_1d=average_1d,
            bias_correction=bias_correction,
        )
        super().__init__(params, defaults)
        for g in self.param_groups:  # a group may set its own
            check_values({k: HYPERPARAMETERS[k] for k in defaults}, g, "AdaHessian")
        self.n_samples = n_samples
        self.hessian_interval = hessian_interval
        self._generators = DeviceGenerators(torch.initial_seed() if seed is None else seed)
        self.foreach = foreach
        self.average_abs = average_abs
        self.curvature_source = curvature_source
        # CurvatureOptimizer members; `negative_share` (telemetry): share of negative
        # Hutchinson entries per parameter at the last refresh, while hooks.track_negatives.
        self._init_curvature(hooks, hessian_batch_fraction, hessian_batch)
        self._last_lrs: list[float] = []  # the lr of each group in the last step
        self._global: dict[str, Any] = {"step": 0, "hessian_step": 0}

    # ------------------------------------------------------------------ CurvatureOptimizer
    reports_preconditioner = True

    def needs_curvature(self) -> bool:
        """True when the coming :meth:`step` refreshes the Hessian estimate from Hessian
        products (so the gradient must carry its graph)."""
        return self._refresh_due() and self.curvature_source == "hutchinson"

    def _refresh_due(self) -> bool:
        return self._global["step"] % self.hessian_interval == 0

    @property
    def hessian_step_count(self) -> int:
        return self._global["hessian_step"]

    @property
    def seed(self) -> int:
        """The Rademacher generators' seed."""
        return self._generators.seed

    def _extra_state(self) -> dict[str, Any]:
        return {
            "step": self._global["step"],
            "hessian_step": self._global["hessian_step"],
            **self._generators.state(),  # "seed", "generators"
            "negative_share": [self.negative_share.get(id(p)) for p in self._all_params()],
            "last_lrs": list(self._last_lrs),
        }

    def _all_params(self) -> list[Tensor]:
        return [p for g in self.param_groups for p in g["params"]]

    def _load_extra_state(self, extra: dict[str, Any]) -> None:
        self._global["step"] = int(extra["step"])
        self._global["hessian_step"] = int(extra["hessian_step"])
        self._last_lrs = list(extra.get("last_lrs") or [])
        shares = extra.get("negative_share") or []
        self.negative_share = {
            id(p): v for p, v in zip(self._all_params(), shares, strict=False) if v is not None
        }
        self._generators.load(extra)

    # ------------------------------------------------------------------ Hutchinson
    def _diagonal_estimate(
        self, params: list[Tensor], grads: list[Tensor], groups: list[dict[str, Any]], scale: float
    ) -> list[Tensor]:
        """The spatially averaged estimate ``D^s`` of every parameter (Hutchinson or, as the
        ablation control, the squared gradient)."""
        if self.curvature_source == "gradient_squared":
            est = [(g * g).to(state_dtype(p)) for g, p in zip(grads, params, strict=True)]
            return [_smooth(d, g["block_size"], g["average_1d"])
                    for d, g in zip(est, groups, strict=True)]
        return self._hessian_diagonal(params, grads, groups, scale)

    def _hessian_diagonal(
        self, params: list[Tensor], grads: list[Tensor], groups: list[dict[str, Any]], scale: float
    ) -> list[Tensor]:
        def per_sample(s: int, est: list[Tensor]) -> None:
            if self.hooks.track_negatives and s == 0:
                self.negative_share = {
                    id(p): float((d < 0).sum()) / d.numel() for p, d in zip(params, est, strict=True)
                }
            if self.average_abs:  # the official code's |z * Hz| = |Hz|
                torch._foreach_abs_(est)

        acc = self._hutchinson_mean(params, grads, scale, self.n_samples, self._generators,
                                    per_sample)
        return [
            _smooth(d, g["block_size"], g["average_1d"]) for d, g in zip(acc, groups, strict=True)
        ]

    # ------------------------------------------------------------------ step
    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None, *, hessian_scale: float = 1.0,
             hessian_grads: dict[int, Tensor] | None = None) -> Any:
        """One AdaHessian step.

        Args:
            closure: returns the batch loss (only called and returned, never needed).
            hessian_scale: multiplies the Hutchinson estimate; the trainer passes
                ``B / n_s`` when the Hessian graph covers only ``n_s`` of ``B`` examples.
            hessian_grads: ``id(p) -> gradient with its graph`` of another batch, whose Hessian
                products are used instead of those of ``p.grad`` (``hessian_batch="independent"``).
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()

        refresh = self._refresh_due()
        params: list[Tensor] = []
        grads: list[Tensor] = []
        owners: list[dict[str, Any]] = []
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("AdaHessian does not support sparse gradients")
                params.append(p)
                grads.append(p.grad)
                owners.append(group)

        diag: dict[int, Tensor] = {}
        self.step_skipped = False
        if refresh and params:
            streams = self._generators.snapshot()
            negatives = self.negative_share
            sources = grads if hessian_grads is None else [hessian_grads[id(p)] for p in params]
            est = self._diagonal_estimate(params, sources, owners, hessian_scale)
            if self.hooks.skip_nonfinite and not all(
                    bool(torch.isfinite(d).all()) for d in est):
                self._generators.restore(streams)  # as if no z had been drawn
                self.negative_share = negatives
                for p in params:
                    p.grad = p.grad.detach()
                self.step_skipped = True
                return loss
            diag = {id(p): d for p, d in zip(params, est, strict=True)}
        # Free the double-backward graph: no gradient may keep it alive after the step.
        for p in params:
            if p.grad.requires_grad or p.grad.grad_fn is not None:
                p.grad = p.grad.detach()

        self._global["step"] += 1
        if refresh:
            self._global["hessian_step"] += 1
        t = self._global["step"]
        h = self._global["hessian_step"]
        self._last_lrs = [g["lr"] for g in self.param_groups]

        for group in self.param_groups:
            ps = [p for p in group["params"] if p.grad is not None]
            if not ps:
                continue
            ms, vs, gs, ds = [], [], [], []
            for p in ps:
                state = self.state[p]
                if len(state) == 0:
                    sd = state_dtype(p)
                    state["exp_avg"] = torch.zeros_like(
                        p, dtype=sd, memory_format=torch.preserve_format
                    )
                    state["exp_hessian_diag_sq"] = torch.zeros_like(
                        p, dtype=sd, memory_format=torch.preserve_format
                    )
                ms.append(state["exp_avg"])
                vs.append(state["exp_hessian_diag_sq"])
                gs.append(p.grad.to(state["exp_avg"].dtype))
                if refresh:
                    ds.append(diag[id(p)])
            chunks = (
                [slice(0, len(ps))] if self.foreach else [slice(i, i + 1) for i in range(len(ps))]
            )
            for sl in chunks:
                self._update(
                    group, ps[sl], gs[sl], ms[sl], vs[sl], ds[sl] if refresh else None, t, h
                )
        return loss

    # ------------------------------------------------------------------ telemetry
    @torch.no_grad()
    def preconditioner(self, p: Tensor) -> tuple[Tensor, float, Tensor] | None:
        """``(denominator, eps, update)`` of ``p`` in the last step, from the state (None before
        the first step): ``denominator = (sqrt(v_hat))^k + eps`` and ``update`` the last step's
        change of ``p`` (with the lr of that step; its weight-decay term evaluated at the
        current weights)."""
        state = self.state.get(p)
        if not state or self._global["step"] == 0:
            return None
        index, group = next((i, g) for i, g in enumerate(self.param_groups)
                            if any(q is p for q in g["params"]))
        lr = self._last_lrs[index] if index < len(self._last_lrs) else group["lr"]
        t, h = self._global["step"], max(self._global["hessian_step"], 1)
        bc1, bc2 = _bias_corrections(group, t, h)
        k, eps = group["hessian_power"], group["eps"]
        denom = (state["exp_hessian_diag_sq"] / bc2).sqrt().pow(k).add(eps)
        update = state["exp_avg"] / denom * (lr / bc1)
        if group["weight_decay"]:
            update.add_(p.to(update.dtype), alpha=lr * group["weight_decay"])
        return denom, float(eps), update

    @staticmethod
    def _update(group, ps, gs, ms, vs, ds, t: int, h: int) -> None:
        beta1, beta2 = group["betas"]
        lr, wd, eps, k = group["lr"], group["weight_decay"], group["eps"], group["hessian_power"]
        # first moment (every step)
        torch._foreach_mul_(ms, beta1)
        torch._foreach_add_(ms, gs, alpha=1.0 - beta1)
        # second moment of the spatially averaged Hessian diagonal (refresh steps only)
        if ds is not None:
            torch._foreach_mul_(vs, beta2)
            torch._foreach_addcmul_(vs, ds, ds, value=1.0 - beta2)
        bc1, bc2 = _bias_corrections(group, t, h)
        denom = torch._foreach_sqrt(vs)
        torch._foreach_div_(denom, math.sqrt(bc2))
        if k != 1.0:
            torch._foreach_pow_(denom, float(k))
        torch._foreach_add_(denom, eps)
        work = [p if p.dtype == m.dtype else p.to(m.dtype) for p, m in zip(ps, ms, strict=True)]
        if wd != 0.0:
            torch._foreach_mul_(work, 1.0 - lr * wd)
        torch._foreach_addcdiv_(work, ms, denom, value=-lr / bc1)
        for p, w in zip(ps, work, strict=True):
            if w is not p:
                p.copy_(w)


def _bias_corrections(group: dict[str, Any], t: int, h: int) -> tuple[float, float]:
    """``(1 - beta1^t, 1 - beta2^h)``, or ``(1, 1)`` with ``bias_correction`` off."""
    if not group.get("bias_correction", True):
        return 1.0, 1.0
    beta1, beta2 = group["betas"]
    return 1.0 - beta1**t, 1.0 - beta2**h
