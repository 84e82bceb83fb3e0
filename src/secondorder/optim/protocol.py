"""How a training loop drives the optimizers: the curvature protocol.

Any loop (ours in `secondorder.train`, the step-cost benchmark, a user's own) asks a
:class:`~secondorder.optim.base.CurvatureOptimizer` before each step whether it needs
curvature, builds the double-backward graph only then, and passes `step()` the keyword
arguments returned here. The protocol is documented in `secondorder.optim`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping

import torch

from .base import CurvatureOptimizer

__all__ = ["attention_for", "backward_for_step", "batch_loss", "curvature_slice_size",
           "shard_ranges", "split_range"]

log = logging.getLogger(__name__)

_said_math_attention = False


def attention_for(curvature: bool):
    """Fused SDPA kernels have no double backward: use the math kernel on curvature steps."""
    global _said_math_attention
    if not curvature:
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    if not _said_math_attention:
        log.info("curvature steps run attention with the math SDPA kernel "
                 "(fused kernels have no double backward)")
        _said_math_attention = True
    return sdpa_kernel(SDPBackend.MATH)


def curvature_slice_size(batch_size: int, fraction: float) -> int:
    """Number of examples used for the Hessian when ``hessian_batch_fraction < 1``.

    ``max(1, round(fraction * batch_size))``, capped at ``batch_size``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    return min(batch_size, max(1, round(fraction * batch_size)))


def split_range(n: int, rank: int, size: int) -> tuple[int, int]:
    """Part `rank` of `size` contiguous parts [start, stop) of range(n); the first n % size parts
    have one item more."""
    if not 0 <= rank < size:
        raise ValueError(f"rank must be in [0, {size}); got {rank}")
    base, extra = divmod(n, size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def shard_ranges(size: int, n_slice: int, rank: int, world_size: int):
    """This rank's part of a global batch: (head, tail) index ranges.

    The head (examples [0, n_slice), the ones that keep the double-backward graph) and the tail
    ([n_slice, size)) are each split across the ranks, so that every rank does its share of
    curvature work and the union over ranks is the single-process batch with the same slice.
    """
    h0, h1 = split_range(n_slice, rank, world_size)
    t0, t1 = split_range(size - n_slice, rank, world_size)
    return (h0, h1), (n_slice + t0, n_slice + t1)


def backward_for_step(loss_fn, batch: Mapping[str, torch.Tensor], optimizer,
                      loss_scale: float = 1.0, *, rank: int = 0, world_size: int = 1,
                      hessian_batch: Mapping[str, torch.Tensor] | None = None,
                      always_create_graph: bool = False):
    """Forward and backward for the coming `optimizer.step`, as the optimizer asks.

    Returns the detached (unscaled) batch loss and the keyword arguments for `step()`. With
    curvature and `hessian_batch_fraction < 1`, only a slice of the batch keeps its
    double-backward graph and the rest only adds to the gradient, so p.grad is still the
    full-batch gradient and no example is forwarded twice (protocol in `secondorder.optim`).
    `loss_scale` S (fp16, `secondorder.optim.scaling`): the backward runs on S * loss, so p.grad
    holds S g (the caller unscales it) and the products from its graph are S H z, undone by the
    1 / S in the `hessian_scale` returned here.

    Data parallel (`world_size` > 1, `secondorder.train.distributed`): `batch` is the global
    batch; this rank forwards its `shard_ranges` only, each part weighted by its share of the
    global batch, so the returned loss, p.grad and the products are this rank's terms of sums
    over ranks (the caller sums gradients and loss; the optimizer sums products).

    `hessian_batch` (for an optimizer with ``hessian_batch == "independent"``, on curvature
    steps; one process only): the gradient batch gets a plain backward and the Hessian products
    come from the gradient of this second batch, passed to `step()` as ``hessian_grads``.
    `always_create_graph`: build the double-backward graph on every step, for every optimizer,
    as the report's training loop did (the same update, the cost of a curvature step).
    """
    curvature = isinstance(optimizer, CurvatureOptimizer) and optimizer.needs_curvature()
    if curvature and optimizer.hessian_batch == "independent":
        if hessian_batch is None or world_size > 1:
            raise ValueError("hessian_batch='independent' needs a second batch for the Hessian "
                             "(the trainer draws it) and one process")
        return _backward_independent(loss_fn, batch, hessian_batch, optimizer, loss_scale)
    fraction = optimizer.hessian_batch_fraction if curvature else 1.0
    size = len(batch["input_ids"])
    n_slice = curvature_slice_size(size, fraction) if fraction < 1.0 else size
    hessian_scale = (size / n_slice) / float(loss_scale)
    kwargs = {"hessian_scale": hessian_scale} if curvature and hessian_scale != 1.0 else {}
    with attention_for(curvature or always_create_graph):
        ranges = shard_ranges(size, n_slice, rank, world_size)
        graph = (curvature or always_create_graph, always_create_graph)
        return _backward_parts(loss_fn, batch, graph, loss_scale, ranges), kwargs


def _backward_independent(loss_fn, batch, hessian_batch, optimizer, loss_scale: float):
    """A plain backward on `batch` for p.grad; the gradient of `hessian_batch` with its graph,
    for the Hessian products (``step(hessian_grads=...)``)."""
    params = [p for g in optimizer.param_groups for p in g["params"] if p.requires_grad]
    loss = loss_fn(batch)
    (loss * loss_scale if loss_scale != 1.0 else loss).backward()
    with attention_for(True):
        h_loss = loss_fn(hessian_batch)
        grads = torch.autograd.grad(h_loss * loss_scale if loss_scale != 1.0 else h_loss, params,
                                    create_graph=True, allow_unused=True)
    hessian_grads = {id(p): torch.zeros_like(p) if g is None else g
                     for p, g in zip(params, grads, strict=True)}
    kwargs = {"hessian_grads": hessian_grads}
    if loss_scale != 1.0:
        kwargs["hessian_scale"] = 1.0 / float(loss_scale)
    return loss.detach(), kwargs


def _backward_parts(loss_fn, batch, graph: tuple[bool, bool], loss_scale: float, ranges):
    """Backward on this rank's part of the batch: the head ([0, n_slice) in one process) with the
    double-backward graph on curvature steps (`graph`: for the head, the tail), the tail without
    (unless every step builds it), each weighted by its share of the
    batch (a part that is the whole batch is not reweighted: one process, no slice, is exactly
    `loss.backward()`). An empty part is skipped (a short last batch can leave a rank nothing)."""
    size = len(batch["input_ids"])
    total = None
    for (start, stop), create_graph in zip(ranges, graph, strict=True):
        if stop == start:
            continue
        whole = stop - start == size
        part = loss_fn(batch if whole else {k: v[start:stop] for k, v in batch.items()})
        if not whole:
            part = part * ((stop - start) / size)
        (part * loss_scale if loss_scale != 1.0 else part).backward(create_graph=create_graph)
        total = part.detach() if total is None else total + part.detach().to(total.device)
    return torch.zeros(()) if total is None else total


def batch_loss(model, batch: Mapping[str, torch.Tensor], device, autocast) -> torch.Tensor:
    """The model's mean loss on one collated batch (fp32 even under autocast; a float64 model's
    stays float64)."""
    inputs = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    with autocast():
        loss = model(**inputs).loss
    return loss if loss.dtype == torch.float64 else loss.float()
