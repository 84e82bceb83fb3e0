"""Hessian operators of a model's loss: the whole Hessian and its diagonal blocks ``H_ll``
(Zhang et al. 2024, Sections 2.2-2.3).

The operator
------------
:class:`ModelHessian` is the Hessian of a *fixed* loss

    L(w) = (1 / n) * sum_i loss_fn(model, batch_i)        (``average=True``, the default)

over a fixed list of batches, evaluated with the model in ``eval()`` mode (no dropout; the
training flag is restored afterwards) and with scaled-dot-product attention forced to the
``MATH`` kernel (``torch.nn.attention.sdpa_kernel(SDPBackend.MATH)``), whose backward is made of
ordinary differentiable ops, so a double backward exists (the fused/flash kernels have none).
Each product accumulates, batch by batch, ``d/dw (g_i . v)`` with ``g_i`` the batch gradient
built with ``create_graph=True`` (Pearlmutter's trick), using
:func:`secondorder.curvature.hutchinson.hessian_vector_product`. The paper's public code *sums* the
batch products (no ``1 / n``); pass ``average=False`` for that scaling.

Blockwise operators
-------------------
For a parameter block ``l`` the operator is the principal sub-matrix ``H_ll``: the vector is
non-zero only on block ``l`` and the product is read only on block ``l``. It is computed as
``d/dw_l (g_l . v_l)``: the first backward still depends on all parameters, but the second one
is taken only with respect to ``w_l``.

Several blocks may advance together (:meth:`ModelHessian.block_matvecs`), but only *exactly*:
putting each block's vector into its own slot of one big vector and doing a single product would
return ``sum_k H_lk v_k`` on block ``l``, i.e. the off-diagonal blocks would leak in. What is
shared instead is the forward pass and the first (``create_graph=True``) backward of every batch;
then one second backward per block, ``d/dw_l (g_l . v_l)``, is taken from the retained graph.
This is exact and saves ``(L - 1)`` forwards and first backwards per batch and Lanczos step
(the public hessian-spectrum code does the same).
"""

from __future__ import annotations

import contextlib
import fnmatch
from collections.abc import Callable, Iterable, Mapping, Sequence

import torch
from torch import Tensor, nn

from secondorder.curvature.hutchinson import hessian_vector_product

__all__ = ["ModelHessian", "BlockOperator", "hessian_mode", "LossFn"]

LossFn = Callable[[nn.Module, object], Tensor]


@contextlib.contextmanager
def hessian_mode(model: nn.Module):
    """``model.eval()`` plus the ``MATH`` attention kernel; restores the training flags after."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    flags = {m: m.training for m in model.modules()}
    model.eval()
    try:
        with sdpa_kernel(SDPBackend.MATH):
            yield
    finally:
        for m, t in flags.items():
            m.training = t


class ModelHessian:
    """Matrix-free Hessian of a fixed loss over fixed batches (see the module docstring).

    ``params`` selects the variables (name -> parameter); by default all parameters of
    ``model`` that require gradients, in ``named_parameters`` order. Flat vectors follow that
    order, each parameter flattened row-major. Vectors are cast to each parameter's dtype for the
    product; results are returned in float64 on the parameters' device.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        batches: Sequence,
        params: Mapping[str, nn.Parameter] | None = None,
        *,
        average: bool = True,
    ) -> None:
        self.model = model
        self.loss_fn = loss_fn
        self.batches = list(batches)
        if not self.batches:
            raise ValueError("at least one batch is needed")
        if params is None:
            params = {n: p for n, p in model.named_parameters() if p.requires_grad}
        self.names = list(params)
        self.params = [params[n] for n in self.names]
        if not self.params:
            raise ValueError("no parameters to differentiate")
        self.index = {n: i for i, n in enumerate(self.names)}
        self.numels = [p.numel() for p in self.params]
        self.dim = int(sum(self.numels))
        self.average = average
        self.device = self.params[0].device
        self.num_products = 0  # number of (block) Hessian-vector products evaluated

    # -- helpers -------------------------------------------------------------------------
    def split(self, flat: Tensor, names: Sequence[str] | None = None) -> list[Tensor]:
        """Cut a flat vector into per-parameter tensors (for ``names``, default all)."""
        names = self.names if names is None else names
        sizes = [self.numels[self.index[n]] for n in names]
        if flat.numel() != sum(sizes):
            raise ValueError(f"vector has {flat.numel()} entries, expected {sum(sizes)}")
        parts = torch.split(flat.reshape(-1), sizes)
        return [
            part.reshape(self.params[self.index[n]].shape).to(
                dtype=self.params[self.index[n]].dtype, device=self.params[self.index[n]].device
            )
            for n, part in zip(names, parts, strict=True)
        ]

    @staticmethod
    def _flat(tensors: Iterable[Tensor]) -> Tensor:
        return torch.cat([t.detach().reshape(-1).to(torch.float64) for t in tensors])

    def block_dim(self, names: Sequence[str]) -> int:
        return int(sum(self.numels[self.index[n]] for n in names))

    # -- products ------------------------------------------------------------------------
    def block_matvecs(self, vectors: Mapping[str, tuple[Sequence[str], Tensor]]) -> dict:
        """Exact diagonal-block products ``H_ll v_l`` for several blocks, sharing forwards.

        ``vectors`` maps a block key to ``(parameter names, flat vector on those parameters)``.
        Returns ``{key: flat float64 H_ll v_l}``. Per batch: one forward, one first backward
        with ``create_graph=True`` for the union of the blocks' parameters, then one second
        backward per block (see the module docstring for why a single product of the stacked
        vector would not be the block-diagonal product).
        """
        if not vectors:
            return {}
        keys = list(vectors)
        needed = sorted({self.index[n] for k in keys for n in vectors[k][0]})
        pos = {i: j for j, i in enumerate(needed)}
        needed_params = [self.params[i] for i in needed]
        split = {k: self.split(vectors[k][1], vectors[k][0]) for k in keys}
        acc: dict = {k: None for k in keys}
        with hessian_mode(self.model):
            for batch in self.batches:
                with torch.enable_grad():
                    loss = self.loss_fn(self.model, batch)
                    grads = torch.autograd.grad(
                        loss, needed_params, create_graph=True, allow_unused=True
                    )
                for j, k in enumerate(keys):
                    names = vectors[k][0]
                    idx = [pos[self.index[n]] for n in names]
                    hv = hessian_vector_product(
                        [grads[i] for i in idx],
                        [needed_params[i] for i in idx],
                        split[k],
                        retain_graph=j < len(keys) - 1,
                    )
                    flat = self._flat(hv)
                    acc[k] = flat if acc[k] is None else acc[k] + flat
                    self.num_products += 1
                del loss, grads
        scale = 1.0 / len(self.batches) if self.average else 1.0
        return {k: v * scale for k, v in acc.items()}

    def matvec(self, vec: Tensor) -> Tensor:
        """Full Hessian-vector product ``H v`` (flat, float64)."""
        return self.block_matvecs({"_all": (self.names, vec)})["_all"]

    def block_operator(self, names_or_globs: str | Sequence[str]) -> BlockOperator:
        """The diagonal block ``H_ll`` for the parameters matching the glob(s) (exact names too)."""
        pats = [names_or_globs] if isinstance(names_or_globs, str) else list(names_or_globs)
        names = [n for n in self.names if any(fnmatch.fnmatchcase(n, p) for p in pats)]
        if not names:
            raise KeyError(f"no parameter matches {pats}")
        return BlockOperator(self, names)

    def loss(self) -> float:
        """The fixed loss itself (same mode and averaging as the products)."""
        total = 0.0
        with hessian_mode(self.model), torch.no_grad():
            for batch in self.batches:
                total += float(self.loss_fn(self.model, batch))
        return total / len(self.batches) if self.average else total


class BlockOperator:
    """``H_ll`` of one parameter block: ``.matvec(flat)`` on the block's ``.dim`` coordinates."""

    def __init__(self, hessian: ModelHessian, names: Sequence[str]) -> None:
        self.hessian = hessian
        self.names = list(names)
        self.dim = hessian.block_dim(self.names)

    def matvec(self, vec: Tensor) -> Tensor:
        return self.hessian.block_matvecs({"_b": (self.names, vec)})["_b"]

    __call__ = matvec
