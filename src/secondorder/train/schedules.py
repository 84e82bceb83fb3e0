"""Learning-rate schedules (per phase): linear warm-up then linear decay to zero (the paper's),
linear warm-up then constant, or constant."""

from __future__ import annotations

import math
from collections.abc import Mapping

from torch.optim.lr_scheduler import LambdaLR


def linear_warmup_decay(step: int, warmup_steps: int, total_steps: int) -> float:
    """Multiplier of the base learning rate after `step` scheduler steps."""
    if step < warmup_steps:
        return step / warmup_steps
    return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


def build_scheduler(schedule_cfg: Mapping, optimizer, total_steps: int) -> LambdaLR:
    name = schedule_cfg["name"]
    if name == "linear_warmup":
        fraction = float(schedule_cfg["warmup_fraction"])
        if not 0.0 <= fraction < 1.0:
            raise ValueError(f"schedule.warmup_fraction must be in [0, 1); got {fraction}")
        warmup = math.ceil(fraction * total_steps)
        return LambdaLR(optimizer, lambda step: linear_warmup_decay(step, warmup, total_steps))
    if name == "warmup_constant":
        warmup = math.ceil(float(schedule_cfg["warmup_fraction"]) * total_steps)
        return LambdaLR(optimizer, lambda step: min(1.0, step / warmup) if warmup else 1.0)
    if name == "constant":
        return LambdaLR(optimizer, lambda step: 1.0)
    raise ValueError(
        f"schedule.name must be 'linear_warmup', 'warmup_constant' or 'constant'; got {name!r}"
    )
