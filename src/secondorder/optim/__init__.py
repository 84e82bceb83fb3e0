"""Optimizers: AdaHessian, Sophia-H, SOAA, AdaSub and the AdamW / SGD baselines.

:func:`build_optimizer` builds ``adamw``, ``adahessian``, ``sophia_h``, ``soaa``, ``sgd`` and
``adasub`` from
the Hydra ``optimizer`` group (``configs/optimizer/*.yaml``).

Trainer protocol
----------------
Every optimizer built here is driven by the same loop.  Second-order optimizers are
:class:`CurvatureOptimizer` s: ``needs_curvature()`` is True when the coming step refreshes
the Hessian estimate (so the double-backward graph must be built), ``hessian_batch_fraction``
says on how much of the batch; the others are first-order (a plain backward).
:func:`~secondorder.optim.protocol.backward_for_step` does this for any loop::

    curvature = isinstance(optimizer, CurvatureOptimizer) and optimizer.needs_curvature()
    fraction = optimizer.hessian_batch_fraction if curvature else 1.0
    if fraction < 1.0:   # Hessian from a slice of the batch, no example forwarded twice
        n_s = curvature_slice_size(batch_size, fraction)           # max(1, round(fraction*B))
        (loss(batch[:n_s]) * n_s / B).backward(create_graph=True)  # graph kept for the slice only
        (loss(batch[n_s:]) * (B - n_s) / B).backward()             # rest only adds to the gradient
        optimizer.step(closure, hessian_scale=B / n_s)             # HVP of p.grad = (n_s/B) H_slice z
    else:
        loss.backward(create_graph=curvature)
        optimizer.step(closure)   # closure() returns the detached batch loss already computed
    optimizer.zero_grad(set_to_none=True)

* ``p.grad`` may be clipped in place under ``torch.no_grad()`` before ``step()``: this
  changes the first moment only; AdaHessian's Hutchinson estimate differentiates the
  gradient's autograd graph and is unaffected.
* After ``step()`` no ``p.grad`` holds an autograd graph (AdaHessian detaches them).
* On steps where ``needs_curvature()`` is False the trainer does a plain backward and
  AdaHessian does no Hessian-vector product (delayed Hessian, ``hessian_interval``).
* AdaSub follows the same protocol with ``needs_curvature()`` always True.
* SOAA reads the batch loss from ``closure()`` (or ``step(loss=...)``) for its trust region;
  AdaHessian, AdamW and SGD only return it.
* Random Rademacher vectors come from a seeded ``torch.Generator`` on the parameters'
  device; give every data-parallel rank the same ``seed``.
* Data parallel (``secondorder.train.distributed``): each rank calls ``backward_for_step``
  with its ``rank`` and ``world_size`` on the global batch, sums ``p.grad`` across ranks, and
  builds the optimizer with ``hooks=CurvatureHooks(reduce_products=...)``, an in-place sum
  across ranks that the optimizer applies to every Hessian-vector product of its local graph.
  fp16 (``hooks.skip_nonfinite``) and telemetry (``hooks.track_negatives``) are hooks too.
"""

from secondorder.curvature.hutchinson import (
    hessian_vector_product,
    hutchinson_diagonal,
    rademacher_like,
)

from .adahessian import AdaHessian, spatial_average
from .adasub import AdaSub
from .base import CurvatureHooks, CurvatureOptimizer
from .protocol import backward_for_step, curvature_slice_size
from .registry import DEFAULT_NO_DECAY, OPTIMIZERS, build_optimizer
from .soaa import SOAA
from .sophia import SophiaH

__all__ = [
    "AdaHessian",
    "AdaSub",
    "SOAA",
    "SophiaH",
    "CurvatureHooks",
    "CurvatureOptimizer",
    "backward_for_step",
    "build_optimizer",
    "OPTIMIZERS",
    "DEFAULT_NO_DECAY",
    "curvature_slice_size",
    "hessian_vector_product",
    "hutchinson_diagonal",
    "rademacher_like",
    "spatial_average",
]
