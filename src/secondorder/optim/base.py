"""What the optimizers share: one way to check a hyperparameter, and a base class for
model-wide state that survives ``state_dict`` round trips in the saved dtypes."""

from __future__ import annotations

from itertools import chain
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

__all__ = ["GlobalStateOptimizer", "check", "check_betas", "state_dtype"]

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def check(name: str, value: Any, ok: bool, allowed: str, owner: str) -> None:
    if not ok:
        raise ValueError(f"{owner}: {name}={value!r} is invalid; allowed: {allowed}")


def check_betas(betas: Any, owner: str) -> tuple[float, float]:
    ok = (
        isinstance(betas, (tuple, list))
        and len(betas) == 2
        and all(isinstance(b, (int, float)) and 0.0 <= b < 1.0 for b in betas)
    )
    check("betas", betas, ok, "two numbers, each in [0, 1)", owner)
    return float(betas[0]), float(betas[1])


def state_dtype(p: Tensor) -> torch.dtype:
    return torch.float32 if p.dtype in _LOW_PRECISION else p.dtype


class GlobalStateOptimizer(Optimizer):
    """Base for optimizers with model-wide (not per-parameter) state.

    Subclasses keep such state in ``self._global`` (plain Python values or CPU tensors)
    and implement :meth:`_extra_state` / :meth:`_load_extra_state`.  The state dict gains
    a ``"secondorder"`` entry; loading it also restores per-parameter state tensors in
    their saved dtype (``torch.optim.Optimizer`` would cast them to the parameter dtype,
    which would round the float32 state of bf16 parameters).
    """

    _EXTRA_KEY = "secondorder"

    def _extra_state(self) -> dict[str, Any]:  # pragma: no cover - overridden
        return {}

    def _load_extra_state(self, extra: dict[str, Any]) -> None:  # pragma: no cover
        pass

    def state_dict(self) -> dict[str, Any]:
        sd = super().state_dict()
        sd[self._EXTRA_KEY] = self._extra_state()
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        extra = state_dict.pop(self._EXTRA_KEY, None)
        if extra is None:
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: missing '{self._EXTRA_KEY}' entry "
                "(state dict not produced by this optimizer)"
            )
        super().load_state_dict(state_dict)
        id_map = dict(
            zip(
                chain.from_iterable(g["params"] for g in state_dict["param_groups"]),
                chain.from_iterable(g["params"] for g in self.param_groups),
                strict=True,
            )
        )
        for pid, saved in state_dict["state"].items():
            p = id_map.get(pid)
            if p is None:
                continue
            for key, val in saved.items():
                if isinstance(val, Tensor) and val.is_floating_point():
                    self.state[p][key] = val.to(device=p.device, dtype=val.dtype, copy=True)
        self._load_extra_state(extra)
