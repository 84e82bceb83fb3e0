"""How a training loop drives the optimizers: the curvature protocol.

Any loop (ours in `secondorder.train`, the step-cost benchmark, a user's own) asks the
optimizer before each step whether it needs curvature, builds the double-backward graph only
then, and passes `step()` the keyword arguments returned here. The protocol is documented in
`secondorder.optim`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping

import torch

from .curvature import curvature_slice_size

__all__ = ["attention_for", "backward_for_step", "batch_loss"]

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


def backward_for_step(loss_fn, batch: Mapping[str, torch.Tensor], optimizer,
                      loss_scale: float = 1.0):
    """Forward and backward for the coming `optimizer.step`, as the optimizer asks.

    Returns the detached (unscaled) batch loss and the keyword arguments for `step()`. With
    curvature and `hessian_batch_fraction < 1`, only a slice of the batch keeps its
    double-backward graph and the rest only adds to the gradient, so p.grad is still the
    full-batch gradient and no example is forwarded twice (protocol in `secondorder.optim`).
    `loss_scale` S (fp16, `secondorder.optim.scaling`): the backward runs on S * loss, so p.grad
    holds S g (the caller unscales it) and the products from its graph are S H z, undone by the
    1 / S in the `hessian_scale` returned here.
    """
    curvature = bool(getattr(optimizer, "needs_curvature", lambda: False)())
    fraction = float(getattr(optimizer, "hessian_batch_fraction", 1.0)) if curvature else 1.0
    size = len(batch["input_ids"])
    n_slice = curvature_slice_size(size, fraction) if fraction < 1.0 else size
    hessian_scale = (size / n_slice) / float(loss_scale)
    kwargs = {"hessian_scale": hessian_scale} if curvature and hessian_scale != 1.0 else {}
    with attention_for(curvature):
        if n_slice < size:
            head = {k: v[:n_slice] for k, v in batch.items()}
            tail = {k: v[n_slice:] for k, v in batch.items()}
            loss_head = loss_fn(head) * (n_slice / size)
            (loss_head * loss_scale).backward(create_graph=True)
            loss_tail = loss_fn(tail) * ((size - n_slice) / size)
            (loss_tail * loss_scale).backward()
            return (loss_head + loss_tail).detach(), kwargs
        loss = loss_fn(batch)
        (loss * loss_scale if loss_scale != 1.0 else loss).backward(create_graph=curvature)
        return loss.detach(), kwargs


def batch_loss(model, batch: Mapping[str, torch.Tensor], device, autocast) -> torch.Tensor:
    """The model's mean loss on one collated batch (fp32 even under autocast)."""
    inputs = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    with autocast():
        return model(**inputs).loss.float()
