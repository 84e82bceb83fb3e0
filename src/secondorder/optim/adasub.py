"""AdaSub (Da Mata & Andersen, DSAA 2023): regularised Newton steps in a subspace of recent gradients.

For every *block* ``b`` of parameters at a step ``t`` that refreshes the curvature::

    G_b   <- [G_b, g_{t,b}], keeping the last m columns              (subspace construction)
    V     <- Orthonormalize(G_b)                                      (V = G R^-1, R^T R = G^T G)
    S     <- V^T H_t V                                                (k x k, k <= m)
    Lam,U <- eig(S);  alpha <- max(0, rho - min(Lam))
    w_b   <- w_b - lr V (S + alpha I)^{-1} V^T g_{t,b}

The three modes (``mode``) differ in what a block is and which Hessian ``S`` sees:

``per_tensor``  (Algorithm 2 in the appendix of the report; the default)
    Every parameter tensor ("layer") is a block with its own subspace, and ``H`` is the
    diagonal block ``H_{bb}`` of the Hessian: the block-diagonal approximation of ``000_*``
    §III-C. One autograd call per tensor and column: ``sum_b min(m, numel_b)`` calls a step.
``fused``  (the restructuring of ``000_*`` §IV-C)
    Per-tensor subspaces as above, but one autograd call per column ``j`` for all tensors at
    once, applying ``H`` to the vector that holds every tensor's ``j``-th basis vector (the basis
    of Gram-Schmidt from the oldest column: ``R`` has a positive diagonal; unlike the other two
    modes, this one depends on that choice of basis, not only on the subspace). Block
    ``b`` then sees ``sum_c H_{bc} V_c[:, j]``, so ``S`` includes cross-tensor terms: cheaper
    (``m`` calls), but neither the block-diagonal nor the full subspace Hessian.
``model``  (AdaSub as its paper defines it, Eq. 5 of ``000_*``)
    One subspace of the whole parameter vector: ``G`` holds whole-model gradients, ``S`` is the
    ``m x m`` subspace Hessian of the full Hessian, cross-tensor terms included. ``m`` calls.

``reuse_products=True`` keeps ``P = [H_{t_i} g_i]``, the product of each history column with
the Hessian of the step at which it entered, computed once then. With ``V = G R^-1``,
``S = R^-T (G^T P) R^-1`` (symmetrised), so a refresh costs one new product instead of ``k``
(``per_tensor``: one call per tensor; ``fused`` / ``model``: one call). The older products
are stale by up to ``m - 1`` refreshes; with a constant Hessian (a quadratic) the result is
exact for ``per_tensor`` and ``model`` (tested). In ``fused`` mode the reused products are
``(H g_i)_b`` of whole-model gradients, another approximation than the fresh ``fused`` one.

Decisions (tested in ``tests/optim/test_adasub.py``):

* The orthonormal basis comes from the float64 Gram matrix ``G^T G`` (``R`` its Cholesky
  factor). Columns that add no new direction (a repeated, parallel or zero gradient: relative
  residual below ``rank_tol`` against the newer columns) leave the history, so nothing is ever
  divided by ~0. A block whose history is all zero is not moved.
* ``S`` is symmetrised and solved in float64. If it is non-finite, the eigen-solver fails, or
  the direction is non-finite, the block takes a gradient step (``lr * g``) and ``fallbacks``
  counts it; a block with a non-finite gradient is not moved at all and ``skipped`` counts it
  (logged as ``adasub/fallbacks`` and ``adasub/skipped``; both are zero in normal training).
  Non-finite gradients or products never reach the weights or the history.
* Parameters whose gradient carries no autograd graph (the loss is linear in them) get a zero
  Hessian product, as in AdaHessian; ``p.grad`` is ``None``: ``per_tensor`` / ``fused`` leave
  the tensor alone, ``model`` counts its gradient as zero (every block column spans all tensors).
* ``hessian_interval = I``: the subspace, its history and ``S`` are refreshed every ``I`` steps
  (``needs_curvature()``); the steps in between project their gradient onto the last refreshed
  subspace with the last ``(S + alpha I)^{-1}``: ``w <- w - lr V (S + alpha I)^{-1} V^T g_t``.
  ``hessian_batch_fraction`` and ``step(hessian_scale=...)`` follow the trainer protocol of
  :mod:`secondorder.optim` (the products are multiplied by ``hessian_scale``).
* The subspace step is applied from the first step (Algorithm 2; ``G = [g_1]``); the authors'
  code takes a plain SGD step first. Defaults ``lr=1e-3``, ``n_directions=2``, ``rho=0.02`` as
  the authors' code. ``weight_decay`` (decoupled, default 0) is an addition: Algorithm 2 has none.
* ``p.grad`` is detached after the step (no graph survives it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import Tensor

from secondorder.curvature.hutchinson import hessian_vector_product
from secondorder.validation import (
    BOOL,
    FRACTION,
    NONNEG,
    POSITIVE,
    POSITIVE_INT,
    UNIT,
    Check,
    check_values,
    one_of,
)

from .base import CurvatureHooks, CurvatureOptimizer, GlobalStateOptimizer, state_dtype

__all__ = ["AdaSub", "HYPERPARAMETERS", "MODES"]


class _CurvatureOverflow(Exception):
    """Non-finite products under loss scaling: the step is skipped (AdaSub.step)."""

MODES = ("per_tensor", "fused", "model")

# every hyperparameter's check (secondorder.validation), here and in optim.registry
HYPERPARAMETERS: dict[str, Check] = {
    "lr": NONNEG,
    "weight_decay": NONNEG,
    "n_directions": POSITIVE_INT,
    "rho": POSITIVE,
    "mode": one_of(MODES),
    "reuse_products": BOOL,
    "hessian_interval": POSITIVE_INT,
    "hessian_batch_fraction": FRACTION,
    "rank_tol": UNIT,
}


class AdaSub(GlobalStateOptimizer, CurvatureOptimizer):
    """Regularised Newton steps in a subspace of the last ``n_directions`` gradients."""

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        n_directions: int = 2,
        rho: float = 0.02,
        weight_decay: float = 0.0,
        mode: str = "per_tensor",
        reuse_products: bool = False,
        hessian_interval: int = 1,
        hessian_batch_fraction: float = 1.0,
        rank_tol: float = 1e-4,
        hooks: CurvatureHooks | None = None,
    ) -> None:
        check_values(HYPERPARAMETERS, locals(), "AdaSub")  # the arguments, by name
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay))
        self.n_directions = n_directions
        self.rho = float(rho)
        self.mode = mode
        self.reuse_products = reuse_products
        self.hessian_interval = hessian_interval
        self.rank_tol = float(rank_tol)
        # coeff: the model block's k x k matrix (mode "model"; per-tensor blocks keep theirs
        # in self.state[p]["coeff"])
        self._global: dict[str, Any] = {"step": 0, "fallbacks": 0, "skipped": 0, "coeff": None}
        # CurvatureOptimizer members. hooks.skip_nonfinite (fp16): non-finite Hessian products
        # skip the whole step (every state as it was) instead of a counted gradient step.
        self._init_curvature(hooks, hessian_batch_fraction)

    # -- protocol ---------------------------------------------------------------------------

    def needs_curvature(self) -> bool:
        """True when the coming step refreshes the subspace and its Hessian."""
        return self._global["step"] % self.hessian_interval == 0

    def metrics(self) -> dict[str, float]:
        """Counters the trainer logs with every metrics record."""
        return {"adasub/fallbacks": self._global["fallbacks"],
                "adasub/skipped": self._global["skipped"]}

    def _extra_state(self) -> dict[str, Any]:
        return dict(self._global)

    def _load_extra_state(self, extra: dict[str, Any]) -> None:
        coeff = extra.get("coeff")
        self._global = {"step": int(extra["step"]), "fallbacks": int(extra.get("fallbacks", 0)),
                        "skipped": int(extra.get("skipped", 0)),
                        "coeff": None if coeff is None else coeff.clone()}

    # -- blocks -----------------------------------------------------------------------------

    def _collect(self) -> tuple[list[Tensor], list[Tensor], list[dict]]:
        params, grads, owners = [], [], []
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None and (self.mode != "model" or not p.requires_grad):
                    continue
                params.append(p)
                grads.append(torch.zeros_like(p) if p.grad is None else p.grad)
                owners.append(group)
        return params, grads, owners

    def _blocks(self, n: int) -> list[list[int]]:
        return [list(range(n))] if self.mode == "model" else [[i] for i in range(n)]

    def _get_coeff(self, block: Sequence[int], params) -> Tensor | None:
        if self.mode == "model":
            return self._global["coeff"]
        return self.state[params[block[0]]].get("coeff")

    def _set_coeff(self, block: Sequence[int], params, coeff: Tensor | None) -> None:
        if self.mode == "model":
            self._global["coeff"] = coeff
        elif coeff is None:
            self.state[params[block[0]]].pop("coeff", None)
        else:
            self.state[params[block[0]]]["coeff"] = coeff

    # -- refresh: history, basis, subspace Hessian ------------------------------------------

    def _push(self, block, params, grads) -> None:
        """Append the current gradient to the block's history (and a slot for its product)."""
        m = self.n_directions
        for i in block:
            state = self.state[params[i]]
            col = grads[i].detach().reshape(-1, 1).to(state_dtype(params[i]))
            hist = state.get("history")
            state["history"] = col.clone() if hist is None else torch.cat([hist, col], 1)[:, -m:]
            if self.reuse_products:
                prods = state.get("products")
                slot = torch.zeros_like(col)
                state["products"] = slot if prods is None else torch.cat([prods, slot], 1)[:, -m:]

    def _keep_columns(self, block, params, keep: list[int]) -> None:
        for i in block:
            state = self.state[params[i]]
            for key in ("history", "products") if self.reuse_products else ("history",):
                if state[key].shape[1] != len(keep):
                    state[key] = state[key][:, keep].contiguous()

    @staticmethod
    def _gram(block, hist64: dict[int, Tensor]) -> Tensor:
        return sum(hist64[i].T @ hist64[i] for i in block)

    def _independent(self, gram: Tensor) -> list[int]:
        """Columns (in history order) that span the history, the newest kept first."""
        keep: list[int] = []
        for j in reversed(range(gram.shape[0])):
            norm_sq = float(gram[j, j])
            if not norm_sq > 0.0:
                continue
            residual = norm_sq
            if keep:
                k = gram[keep][:, keep]
                c = gram[keep, j]
                residual = norm_sq - float(c @ torch.linalg.solve(k, c))
            if residual > self.rank_tol**2 * norm_sq:
                keep.append(j)
        return sorted(keep)

    def _products(self, params, grads, vectors_per_call: list[dict[int, Tensor]]) -> list[dict]:
        """One autograd call per entry of `vectors_per_call` ({param index: vector}); returns,
        per call, {param index: H v restricted to that parameter}."""
        out = []
        for c, vectors in enumerate(vectors_per_call):
            idx = sorted(vectors)
            hv = hessian_vector_product(
                [grads[i] for i in idx], [params[i] for i in idx], [vectors[i] for i in idx],
                retain_graph=c < len(vectors_per_call) - 1)
            hv = [h.detach() for h in hv]
            if self.hooks.reduce_products is not None:  # data parallel: the global batch's H v
                self.hooks.reduce_products(hv)
            out.append(dict(zip(idx, hv, strict=True)))
        return out

    def _refresh(self, params, grads, blocks, hessian_scale: float) -> list[str]:
        """Refresh every block's history, basis and (S + alpha I)^-1; returns per block
        "subspace", "zero" (an all-zero history: not moved), "gradient" (fallback) or "skip"
        (non-finite gradient)."""
        status = []
        inv_factors: dict[int, Tensor] = {}  # block -> L^-1, where G^T G = L L^T (kept columns)
        hist64: dict[int, Tensor] = {}  # parameter index -> its history in float64
        for b, block in enumerate(blocks):
            if not all(bool(torch.isfinite(grads[i]).all()) for i in block):
                status.append("skip")
                continue
            self._push(block, params, grads)
            for i in block:  # float64 once per refresh: the Gram matrix, S and V use it
                hist64[i] = self.state[params[i]]["history"].double()
            gram = self._gram(block, hist64)
            keep = self._independent(gram)
            if len(keep) < gram.shape[0]:
                self._keep_columns(block, params, keep)
                for i in block:
                    hist64[i] = hist64[i][:, keep]
                gram = gram[keep][:, keep]
            if not keep:
                status.append("zero")
                continue
            try:
                factor = torch.linalg.cholesky(gram)
                eye = torch.eye(len(keep), dtype=torch.float64, device=factor.device)
                inv_factors[b] = torch.linalg.solve_triangular(factor, eye, upper=False)
                status.append("subspace")
            except RuntimeError:  # numerically singular despite the rank test
                status.append("gradient")
        live = [b for b, s in enumerate(status) if s == "subspace"]
        smalls = self._subspace_hessians(params, grads, blocks, live, inv_factors, hist64)
        if self.hooks.skip_nonfinite and not all(
                bool(torch.isfinite(smalls[b]).all()) for b in live):
            raise _CurvatureOverflow
        for b in live:
            coeff = self._inverse(smalls[b] * float(hessian_scale), inv_factors[b])
            if coeff is None:
                status[b] = "gradient"
                if self.reuse_products:  # the new product is unusable: its column goes too
                    k = self.state[params[blocks[b][0]]]["history"].shape[1]
                    self._keep_columns(blocks[b], params, list(range(k - 1)))
            self._set_coeff(blocks[b], params, coeff)
        for b, s in enumerate(status):
            if s == "gradient":
                self._set_coeff(blocks[b], params, None)
            elif s == "zero":
                self._set_coeff(blocks[b], params, torch.zeros(0, 0, dtype=torch.float64))
        return status

    def _subspace_hessians(self, params, grads, blocks, live, inv_factors,
                           hist64) -> dict[int, Tensor]:
        """S = V^T H V (float64, symmetrised, not yet scaled) for every live block."""
        if not live:
            return {}
        if self.reuse_products:
            # one new product, H g, for the newest column of every live block: the current
            # gradient (the rank test keeps the newest column first)
            if self.mode == "per_tensor":
                calls = [{i: grads[i].detach() for i in blocks[b]} for b in live]
            else:
                calls = [{i: grads[i].detach() for b in live for i in blocks[b]}]
            for result in self._products(params, grads, calls):
                for i, h in result.items():
                    self.state[params[i]]["products"][:, -1] = h.reshape(-1)
            smalls = {}
            for b in live:
                gp = sum(hist64[i].T @ self.state[params[i]]["products"].double()
                         for i in blocks[b])
                small = inv_factors[b] @ gp @ inv_factors[b].T  # R^-T (G^T P) R^-1
                smalls[b] = 0.5 * (small + small.T)
            return smalls
        # V = G R^-1 = G L^-T, per parameter: float64 for S, the parameter's dtype for H V
        bases64 = {i: hist64[i] @ inv_factors[b].T for b in live for i in blocks[b]}
        bases = {i: v.to(params[i].dtype) for i, v in bases64.items()}
        k = {b: inv_factors[b].shape[0] for b in live}
        block_of = {i: b for b in live for i in blocks[b]}
        if self.mode == "per_tensor":  # one call per tensor and column: H_bb V_b[:, j]
            calls = [{i: bases[i][:, j].reshape(params[i].shape)}
                     for b in live for i in blocks[b] for j in range(k[b])]
        else:  # fused / model: column j of every block in one call
            calls = [{i: bases[i][:, j].reshape(params[i].shape)
                      for b in live if j < k[b] for i in blocks[b]}
                     for j in range(max(k.values()))]
        ys: dict[int, list[Tensor]] = {i: [] for i in block_of}
        for result in self._products(params, grads, calls):
            for i, h in result.items():
                ys[i].append(h.reshape(-1))
        smalls = {}
        for b in live:
            small = sum(bases64[i].T @ torch.stack(ys[i], dim=1).double()
                        for i in blocks[b])
            smalls[b] = 0.5 * (small + small.T)
        return smalls

    def _inverse(self, small: Tensor, inv_factor: Tensor) -> Tensor | None:
        """C = R^-1 (S + alpha I)^-1 R^-T, so that the step V (S + alpha I)^-1 V^T g = G C G^T g;
        None if S is non-finite or the eigen-solver fails."""
        if not bool(torch.isfinite(small).all()):
            return None
        try:
            lam, u = torch.linalg.eigh(small)
        except RuntimeError:  # torch.linalg.LinAlgError: the eigen-solver did not converge
            return None
        if not (bool(torch.isfinite(lam).all()) and bool(torch.isfinite(u).all())):
            return None
        alpha = max(0.0, self.rho - float(lam.min()))
        inner = (u / (lam + alpha)) @ u.T
        coeff = inv_factor.T @ inner @ inv_factor
        return coeff if bool(torch.isfinite(coeff).all()) else None

    # -- the step ---------------------------------------------------------------------------

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None, *, hessian_scale: float = 1.0) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        params, grads, owners = self._collect()
        if not params:
            return loss
        refresh = self.needs_curvature()
        if refresh and self.hooks.reduce_products is None and not any(g.requires_grad for g in grads):
            raise RuntimeError(
                "AdaSub needs Hessian-vector products on the steps where needs_curvature() is "
                "True; call loss.backward(create_graph=True) on them"
            )
        blocks = self._blocks(len(params))
        self.step_skipped = False
        if refresh:
            # the refresh replaces state tensors rather than writing into them: a shallow copy
            # is a snapshot
            snapshot = ({p: dict(self.state[p]) for p in params}, dict(self._global))
            try:
                with torch.enable_grad():
                    status = self._refresh(params, grads, blocks, hessian_scale)
            except _CurvatureOverflow:
                for p, saved in snapshot[0].items():
                    self.state[p] = saved
                    if p.grad is not None:
                        p.grad = p.grad.detach()
                self._global = snapshot[1]
                self.step_skipped = True
                return loss
        else:
            status = []
            for block in blocks:
                if not all(bool(torch.isfinite(grads[i]).all()) for i in block):
                    status.append("skip")
                elif self._get_coeff(block, params) is None:
                    has_history = "history" in self.state[params[block[0]]]
                    status.append("gradient" if has_history else "zero")
                else:
                    status.append("subspace")
        for p in params:
            if p.grad is not None:
                p.grad = p.grad.detach()
        grads = [g.detach() for g in grads]

        for block, s in zip(blocks, status, strict=True):
            if s == "skip":
                self._global["skipped"] += 1
                continue
            if s == "zero":  # an all-zero history: no direction (weight decay still applies)
                directions = {i: torch.zeros_like(grads[i]) for i in block}
            if s == "subspace":
                directions = self._subspace_direction(block, params, grads)
                if directions is None:
                    s = "gradient"
            if s == "gradient":
                self._global["fallbacks"] += 1
                directions = {i: grads[i] for i in block}
            for i in block:
                p, group = params[i], owners[i]
                lr, wd = group["lr"], group["weight_decay"]
                if wd != 0.0:
                    p.mul_(1.0 - lr * wd)
                p.add_(directions[i].to(p.dtype), alpha=-lr)
        self._global["step"] += 1
        return loss

    def _subspace_direction(self, block, params, grads) -> dict[int, Tensor] | None:
        """G C G^T g per parameter of the block; None if it is not finite."""
        coeff = self._get_coeff(block, params)
        gtg = None
        for i in block:
            hist = self.state[params[i]]["history"]
            part = (hist.T @ grads[i].reshape(-1).to(hist.dtype)).double()
            gtg = part if gtg is None else gtg + part
        weights = coeff @ gtg
        out = {}
        for i in block:
            hist = self.state[params[i]]["history"]
            d = (hist @ weights.to(hist.dtype)).reshape(params[i].shape)
            if not bool(torch.isfinite(d).all()):
                return None
            out[i] = d
        return out
