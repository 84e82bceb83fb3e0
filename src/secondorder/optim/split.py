"""One optimizer for part of a model and another for the rest (``optimizer.delegate``).

``make ablate`` asks where AdaHessian fails: on the encoder with AdamW on the embeddings and
the QA head, or the reverse. :class:`Split` runs two optimizers side by side as one
``torch.optim.Optimizer``: its ``param_groups`` are the two optimizers' own group dicts (so a
learning-rate schedule scales both), ``step`` steps both, and every :class:`~secondorder.optim.base.CurvatureOptimizer` member
(``needs_curvature``, ``hessian_batch_fraction``, the hooks, telemetry) is the primary
optimizer's: the delegate is a first-order optimizer that only needs ``p.grad``. The Hessian products of the primary optimizer then cover its own parameters only:
its estimate is that of the diagonal of its own block of the Hessian, which is the same diagonal.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from itertools import chain
from typing import Any

from torch import Tensor
from torch.optim import Optimizer

from .base import CurvatureHooks, CurvatureOptimizer

__all__ = ["Split"]


class _States(Mapping):
    """A read-only view of both optimizers' per-parameter state (a lookup never creates an
    entry, as a lookup in an optimizer's own defaultdict would)."""

    def __init__(self, *states: Mapping) -> None:
        self._states = states

    def __getitem__(self, key):
        for state in self._states:
            if key in state:
                return state[key]
        raise KeyError(key)

    def __iter__(self) -> Iterator:
        return chain.from_iterable(self._states)

    def __len__(self) -> int:
        return sum(len(s) for s in self._states)


class Split(CurvatureOptimizer):
    """``primary`` and ``delegate`` stepping disjoint parameters as one optimizer (a first-order
    ``primary`` makes a first-order split: ``needs_curvature()`` is then always False)."""

    def __init__(self, primary: Optimizer, delegate: Optimizer) -> None:
        own = {id(p) for g in primary.param_groups for p in g["params"]}
        if any(id(p) in own for g in delegate.param_groups for p in g["params"]):
            raise ValueError("Split: a parameter belongs to both optimizers")
        if isinstance(delegate, CurvatureOptimizer):
            raise ValueError("Split: the delegate must be a first-order optimizer")
        self.primary = primary
        self.delegate = delegate
        self._curvature = primary if isinstance(primary, CurvatureOptimizer) else None
        self._built = False
        Optimizer.__init__(self, [p for o in (primary, delegate) for g in o.param_groups
                                  for p in g["params"]], {})
        self.state = _States(primary.state, delegate.state)
        self._built = True

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        """The two optimizers' own group dicts (looked up each time: loading a state dict
        replaces them), so a scheduler that sets group["lr"] sets theirs."""
        if not self._built:  # inside torch's Optimizer.__init__: its own bookkeeping list
            return self._init_groups
        return [*self.primary.param_groups, *self.delegate.param_groups]

    @param_groups.setter
    def param_groups(self, value) -> None:  # only torch's Optimizer.__init__ assigns one
        object.__setattr__(self, "_init_groups", value)

    # ------------------------------------------------ CurvatureOptimizer: the primary's
    @property
    def hooks(self) -> CurvatureHooks:
        return self._curvature.hooks if self._curvature else CurvatureHooks()

    @property
    def hessian_batch_fraction(self) -> float:
        return self._curvature.hessian_batch_fraction if self._curvature else 1.0

    @property
    def hessian_batch(self) -> str:
        return self._curvature.hessian_batch if self._curvature else "same"

    @property
    def step_skipped(self) -> bool:
        return self._curvature.step_skipped if self._curvature else False

    @property
    def reports_preconditioner(self) -> bool:  # type: ignore[override]
        return self._curvature.reports_preconditioner if self._curvature else False

    @property
    def negative_share(self) -> dict[int, float]:
        return self._curvature.negative_share if self._curvature else {}

    def needs_curvature(self) -> bool:
        return self._curvature.needs_curvature() if self._curvature else False

    def metrics(self) -> dict[str, float]:
        return self._curvature.metrics() if self._curvature else {}

    def preconditioner(self, p: Tensor) -> tuple[Tensor, float, Tensor] | None:
        return self._curvature.preconditioner(p) if self._curvature else None

    def step(self, closure=None, **curvature_kwargs):
        """The primary step (with the protocol's keyword arguments), then the delegate's; a
        step the primary skips (an fp16 overflow in its curvature) is skipped by both."""
        loss = self.primary.step(closure, **curvature_kwargs)
        if not self.step_skipped:
            self.delegate.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.primary.zero_grad(set_to_none=set_to_none)
        self.delegate.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return {"primary": self.primary.state_dict(), "delegate": self.delegate.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.primary.load_state_dict(state_dict["primary"])
        self.delegate.load_state_dict(state_dict["delegate"])
