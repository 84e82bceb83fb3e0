"""Curvature telemetry: what a second-order optimizer's preconditioner looks like, per block.

Logged by the trainer every `trainer.log_every_steps` steps (stream `curvature.jsonl` and W&B
`curvature/*`) for optimizers that expose ``preconditioner(p) -> (denominator, eps, update)``
(AdaHessian). Per parameter block, over all entries of its tensors:

    denom_p01, denom_median, denom_p99   percentiles of the denominator (sqrt(v_hat))^k + eps
    eps_share                            share of entries where eps >= (sqrt(v_hat))^k
    negative_share                       share of negative Hutchinson entries z * Hz at the last
                                         Hessian refresh (before spatial averaging)
    update_ratio                         ||last update|| / ||weights|| of the block

Percentiles are taken on at most `max_entries` entries per block, a fixed stride through the
flattened tensors (deterministic; an embedding table of millions of entries would otherwise
cost a sort per log).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from .base import CurvatureOptimizer

__all__ = ["has_telemetry", "curvature_telemetry"]


def has_telemetry(optimizer) -> bool:
    return isinstance(optimizer, CurvatureOptimizer) and optimizer.reports_preconditioner


@torch.no_grad()
def curvature_telemetry(optimizer, named_params: Mapping[str, Tensor],
                        blocks: Mapping[str, Sequence[str]], *,
                        max_entries: int = 1 << 20) -> dict[str, float]:
    """``{"<block>/<stat>": value}`` for every block of `blocks` (block -> parameter names)."""
    if not has_telemetry(optimizer):
        return {}
    shares = optimizer.negative_share
    out: dict[str, float] = {}
    for block, names in blocks.items():
        parts = [(named_params[n], optimizer.preconditioner(named_params[n])) for n in names]
        parts = [(p, r) for p, r in parts if r is not None]
        if not parts:
            continue
        total = sum(p.numel() for p, _ in parts)
        stride = max(1, math.ceil(total / max_entries))
        sample = torch.cat([d.reshape(-1)[::stride].double().cpu() for _, (d, _, _) in parts])
        q = torch.quantile(sample, torch.tensor([0.01, 0.5, 0.99], dtype=torch.float64))
        eps_dominant = sum(int((d - eps <= eps).sum()) for _, (d, eps, _) in parts)
        update_sq = sum(float(u.double().pow(2).sum()) for _, (_, _, u) in parts)
        weight_sq = sum(float(p.double().pow(2).sum()) for p, _ in parts)
        out.update({
            f"{block}/denom_p01": float(q[0]),
            f"{block}/denom_median": float(q[1]),
            f"{block}/denom_p99": float(q[2]),
            f"{block}/eps_share": eps_dominant / total,
            f"{block}/update_ratio": math.sqrt(update_sq / weight_sq) if weight_sq else math.nan,
        })
        counted = [(p.numel(), shares[id(p)]) for p, _ in parts if id(p) in shares]
        if counted:
            out[f"{block}/negative_share"] = (
                sum(n * s for n, s in counted) / sum(n for n, _ in counted))
    return out
