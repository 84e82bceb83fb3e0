"""One optimizer for part of a model and another for the rest (``optimizer.delegate``).

``make ablate`` asks where AdaHessian fails: on the encoder with AdamW on the embeddings and
the QA head, or the reverse. :class:`Split` runs two optimizers side by side as one
``torch.optim.Optimizer``: its ``param_groups`` are the two optimizers' own group dicts (so a
learning-rate schedule scales both), ``step`` steps both, and the curvature protocol
(``needs_curvature``, ``hessian_batch_fraction``, the loss-scale and data-parallel hooks,
telemetry) is the primary optimizer's: the delegate is a first-order optimizer that only needs
``p.grad``. The Hessian products of the primary optimizer then cover its own parameters only:
its estimate is that of the diagonal of its own block of the Hessian, which is the same diagonal.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from itertools import chain
from typing import Any

from torch.optim import Optimizer

__all__ = ["Split"]

# members of the curvature protocol that belong to the primary optimizer (read and set)
_PRIMARY = ("needs_curvature", "hessian_batch_fraction", "hessian_batch", "reduce_products",
            "skip_nonfinite_curvature", "step_skipped", "track_negatives", "negative_share",
            "preconditioner", "metrics")


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


class Split(Optimizer):
    """``primary`` and ``delegate`` stepping disjoint parameters as one optimizer."""

    def __init__(self, primary: Optimizer, delegate: Optimizer) -> None:
        own = {id(p) for g in primary.param_groups for p in g["params"]}
        if any(id(p) in own for g in delegate.param_groups for p in g["params"]):
            raise ValueError("Split: a parameter belongs to both optimizers")
        object.__setattr__(self, "primary", primary)
        object.__setattr__(self, "delegate", delegate)
        object.__setattr__(self, "_built", False)
        super().__init__([p for o in (primary, delegate) for g in o.param_groups
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

    def __getattr__(self, name: str) -> Any:
        if name in _PRIMARY:
            return getattr(self.primary, name)
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _PRIMARY:
            setattr(self.primary, name, value)
        else:
            object.__setattr__(self, name, value)

    def step(self, closure=None, **curvature_kwargs):
        """The primary step (with the protocol's keyword arguments), then the delegate's; a
        step the primary skips (an fp16 overflow in its curvature) is skipped by both."""
        loss = self.primary.step(closure, **curvature_kwargs)
        if not getattr(self.primary, "step_skipped", False):
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
