"""Curvature primitives shared by the second-order optimizers and the Hessian analysis.

All functions work on *lists of tensors* (one entry per parameter) so that the
whole model is treated as a single flat vector, as in the AdaHessian paper.

Randomness
----------
Every random draw goes through an explicit :class:`torch.Generator`.  Under data
parallelism, seed one generator per rank with the *same* seed so that all ranks
draw the same Rademacher vector ``z`` (the Hutchinson estimate then stays
consistent with the all-reduced gradient).  The generator must live on the
parameters' device (``torch.Generator(device=p.device)``): a CPU generator cannot
drive ``torch.randint`` on a CUDA tensor.  With ``generator=None`` the global RNG
of the relevant device is used.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    "rademacher_like",
    "hessian_vector_product",
    "hutchinson_diagonal",
    "spatial_average",
    "curvature_slice_size",
]


def rademacher_like(
    tensors: Sequence[Tensor], generator: torch.Generator | None = None
) -> list[Tensor]:
    """Draw independent Rademacher vectors (entries ``-1`` or ``+1`` with probability 1/2).

    Each output has the shape, dtype and device of the corresponding input.  The
    draw is made as integers in ``{0, 1}`` and mapped to ``{-1, +1}`` with
    ``2 * b - 1`` so that both signs occur.
    """
    out: list[Tensor] = []
    for t in tensors:
        bits = torch.randint(0, 2, t.shape, generator=generator, device=t.device, dtype=torch.int8)
        out.append(bits.to(t.dtype).mul_(2).sub_(1))
    return out


def hessian_vector_product(
    grads: Sequence[Tensor],
    params: Sequence[Tensor],
    vectors: Sequence[Tensor],
    *,
    retain_graph: bool = True,
) -> list[Tensor]:
    """Return ``H v`` (one tensor per parameter) by differentiating ``g^T v`` (Eq. 5 of AdaHessian).

    ``grads`` must have been produced with ``create_graph=True`` (e.g. ``p.grad`` after
    ``loss.backward(create_graph=True)``).  ``vectors`` are treated as constants.
    A parameter whose gradient does not depend on any parameter (the loss is
    linear in it) gets a zero Hessian-vector product.  Set ``retain_graph=False``
    for the last product so that autograd frees the double-backward graph.
    """
    grads = list(grads)
    params = list(params)
    vectors = list(vectors)
    if not (len(grads) == len(params) == len(vectors)):
        raise ValueError(
            f"grads, params and vectors must have equal lengths, got "
            f"{len(grads)}, {len(params)}, {len(vectors)}"
        )
    # Only gradients that carry a graph can be differentiated again.
    idx = [i for i, g in enumerate(grads) if g is not None and g.requires_grad]
    if not idx:
        return [torch.zeros_like(p) for p in params]
    hv = torch.autograd.grad(
        [grads[i] for i in idx],
        params,
        grad_outputs=[vectors[i].detach() for i in idx],
        retain_graph=retain_graph,
        allow_unused=True,
    )
    # zeros only where autograd found no path (no model-sized allocation that is overwritten)
    return [torch.zeros_like(p) if h is None else h for p, h in zip(params, hv, strict=True)]


def hutchinson_diagonal(
    grads: Sequence[Tensor],
    params: Sequence[Tensor],
    *,
    n_samples: int = 1,
    generator: torch.Generator | None = None,
    retain_graph: bool = False,
) -> list[Tensor]:
    """Hutchinson estimate of ``diag(H)``: the mean over ``n_samples`` draws of ``z * (H z)`` (Eq. 6).

    ``z`` is Rademacher, drawn with :func:`rademacher_like` from ``generator``.
    The returned tensors are detached.  The graph is retained between samples;
    after the last sample it is kept only if ``retain_graph`` is True.
    """
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    params = list(params)
    grads = list(grads)
    acc: list[Tensor] | None = None
    for s in range(n_samples):
        zs = rademacher_like(params, generator)
        keep = retain_graph or s < n_samples - 1
        hz = hessian_vector_product(grads, params, zs, retain_graph=keep)
        est = [z * h.detach() for z, h in zip(zs, hz, strict=True)]
        if acc is None:
            acc = est
        else:
            torch._foreach_add_(acc, est)
    assert acc is not None
    if n_samples > 1:
        torch._foreach_div_(acc, float(n_samples))
    return acc


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
    :class:`secondorder.optim.AdaHessian` for how the optimizer handles 4-D tensors).
    """
    if block_size <= 1 or d.dim() == 0:
        return d
    n = d.shape[-1]
    if n % block_size == 0:
        blocks = d.reshape(*d.shape[:-1], n // block_size, block_size)
        return blocks.mean(dim=-1, keepdim=True).expand_as(blocks).reshape(d.shape)
    return d.mean(dim=-1, keepdim=True).expand_as(d).clone()


def curvature_slice_size(batch_size: int, fraction: float) -> int:
    """Number of examples used for the Hessian when ``hessian_batch_fraction < 1``.

    ``max(1, round(fraction * batch_size))``, capped at ``batch_size``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    return min(batch_size, max(1, round(fraction * batch_size)))
