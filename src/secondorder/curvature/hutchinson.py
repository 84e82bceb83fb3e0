"""Hessian-vector products and the Hutchinson estimate: the one implementation that the
second-order optimizers (`secondorder.optim`) and the Hessian analysis (`operators.py`) use.

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

from collections.abc import Callable, Iterator, Sequence

import torch
from torch import Tensor

__all__ = [
    "rademacher_like",
    "hessian_vector_product",
    "hutchinson_samples",
    "hutchinson_diagonal",
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


def hutchinson_samples(
    grads: Sequence[Tensor],
    params: Sequence[Tensor],
    *,
    n_samples: int = 1,
    generator: torch.Generator | Callable[[torch.device], torch.Generator] | None = None,
    retain_graph: bool = False,
    reduce_products: Callable[[list[Tensor]], None] | None = None,
) -> Iterator[list[Tensor]]:
    """Yield ``z * (H z)`` (one tensor per parameter, detached) for each of ``n_samples``
    Rademacher draws ``z`` (Eq. 6 of AdaHessian, one sample at a time).

    ``z`` is drawn with :func:`rademacher_like` from ``generator``, one parameter after the
    other (``generator`` may also be a function of the parameter's device, for one generator
    per device).  ``reduce_products`` (data parallel) sums each ``H z`` across processes in place
    before it is multiplied by ``z``.  The graph is retained between samples; after the last
    one it is kept only if ``retain_graph`` is True.
    """
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    params = list(params)
    grads = list(grads)
    for s in range(n_samples):
        zs = [rademacher_like([p], generator(p.device) if callable(generator) else generator)[0]
              for p in params]
        with torch.enable_grad():
            hz = hessian_vector_product(grads, params, zs,
                                        retain_graph=retain_graph or s < n_samples - 1)
        if reduce_products is not None:
            reduce_products(hz)
        yield [z * h.detach() for z, h in zip(zs, hz, strict=True)]


def hutchinson_diagonal(
    grads: Sequence[Tensor],
    params: Sequence[Tensor],
    *,
    n_samples: int = 1,
    generator: torch.Generator | None = None,
    retain_graph: bool = False,
) -> list[Tensor]:
    """Hutchinson estimate of ``diag(H)``: the mean over ``n_samples`` draws of ``z * (H z)``
    (Eq. 6), from :func:`hutchinson_samples`."""
    acc: list[Tensor] | None = None
    for est in hutchinson_samples(grads, params, n_samples=n_samples, generator=generator,
                                  retain_graph=retain_graph):
        if acc is None:
            acc = est
        else:
            torch._foreach_add_(acc, est)
    assert acc is not None
    if n_samples > 1:
        torch._foreach_div_(acc, float(n_samples))
    return acc
