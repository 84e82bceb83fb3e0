"""What the optimizers share: a base class for model-wide state that survives ``state_dict`` round trips in the saved dtypes, and
:class:`CurvatureOptimizer`, every member a training loop uses of a second-order optimizer."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from itertools import chain
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from secondorder.curvature.hutchinson import hutchinson_samples

__all__ = ["CurvatureHooks", "CurvatureOptimizer", "DeviceGenerators", "GlobalStateOptimizer",
           "state_dtype"]

_LOW_PRECISION = (torch.float16, torch.bfloat16)


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

    @property
    def step_count(self) -> int:
        """Steps taken (``self._global["step"]``)."""
        return self._global["step"]

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


@dataclass(frozen=True)
class CurvatureHooks:
    """What a training loop gives a curvature optimizer when it builds it.

    ``reduce_products``: data parallel (`secondorder.train.distributed`): sums a list of
    Hessian-vector products across the processes in place, so that ``H z`` is the global
    batch's; None in one process.
    ``skip_nonfinite``: fp16 loss scaling (`secondorder.optim.scaling`): a step whose Hessian
    products are not finite is skipped (every state as it was) and sets ``step_skipped``, so
    that the scaler backs off.
    ``track_negatives``: telemetry (`secondorder.optim.telemetry`): count the share of negative
    Hutchinson entries per parameter at each refresh (``negative_share``).
    """

    reduce_products: Callable[[list[Tensor]], None] | None = None
    skip_nonfinite: bool = False
    track_negatives: bool = False


class CurvatureOptimizer(Optimizer, ABC):
    """The contract between a second-order optimizer and the loop that drives it
    (`secondorder.optim.protocol.backward_for_step`, `secondorder.train.Trainer`, the step-cost
    benchmark). A loop asks nothing else of an optimizer; one that is not a
    ``CurvatureOptimizer`` is first-order (a plain backward, ``step()``).

    Before each step the loop calls :meth:`needs_curvature`; when it is True the gradient must
    carry its double-backward graph (``backward(create_graph=True)``), on the first
    ``hessian_batch_fraction`` of the batch (or, with ``hessian_batch == "independent"``, on a
    second batch passed to ``step(hessian_grads=...)``). After ``step()`` the loop reads
    ``step_skipped`` (True: the step was skipped for non-finite curvature under fp16) and
    :meth:`metrics` (counters to log).
    """

    hooks: CurvatureHooks
    hessian_batch_fraction: float
    hessian_batch: str
    step_skipped: bool
    #: whether :meth:`preconditioner` reports the per-parameter denominator (telemetry)
    reports_preconditioner: bool = False

    def _init_curvature(self, hooks: CurvatureHooks | None, hessian_batch_fraction: float,
                        hessian_batch: str = "same") -> None:
        self.hooks = hooks if hooks is not None else CurvatureHooks()
        self.hessian_batch_fraction = float(hessian_batch_fraction)
        self.hessian_batch = hessian_batch
        self.step_skipped = False
        self.negative_share: dict[int, float] = {}

    @abstractmethod
    def needs_curvature(self) -> bool:
        """True when the coming :meth:`step` uses Hessian products (so the gradient must carry
        its autograd graph)."""

    def metrics(self) -> dict[str, float]:
        """Counters worth logging with the training loss (none by default)."""
        return {}

    def _hutchinson_mean(self, params: list[Tensor], grads: list[Tensor], scale: float,
                         n_samples: int, generator: Callable[[torch.device], torch.Generator],
                         per_sample: Callable[[int, list[Tensor]], None] | None = None,
                         ) -> list[Tensor]:
        """``scale`` times the mean over `n_samples` Hutchinson samples ``z * (H z)`` of the
        graph of `grads`, in each parameter's state dtype; ``hooks.reduce_products`` sums each
        ``H z`` across processes. `per_sample(s, estimate)` may edit sample `s` in place
        before it is added. RuntimeError if no gradient carries a graph (under data
        parallelism a rank whose shard holds no curvature examples has none, legitimately)."""
        if self.hooks.reduce_products is None and not any(g.requires_grad for g in grads):
            raise RuntimeError(
                f"{type(self).__name__}: this step refreshes the Hessian estimate "
                "(needs_curvature() is True) but no gradient carries an autograd graph; call "
                "loss.backward(create_graph=True) on such steps")
        acc: list[Tensor] | None = None
        samples = hutchinson_samples(grads, params, n_samples=n_samples, generator=generator,
                                     reduce_products=self.hooks.reduce_products)
        for s, sample in enumerate(samples):
            est = [d.to(state_dtype(p)) for d, p in zip(sample, params, strict=True)]
            if per_sample is not None:
                per_sample(s, est)
            if acc is None:
                acc = est
            else:
                torch._foreach_add_(acc, est)
        assert acc is not None
        factor = float(scale) / n_samples
        if factor != 1.0:
            torch._foreach_mul_(acc, factor)
        return acc

    def preconditioner(self, p: Tensor) -> tuple[Tensor, float, Tensor] | None:
        """``(denominator, eps, last update)`` of ``p`` for the curvature telemetry, where
        ``reports_preconditioner`` is True; None otherwise."""
        return None


class DeviceGenerators:
    """Seeded ``torch.Generator`` s, one per device, created on first use (a CPU generator
    cannot drive ``torch.randint`` on a CUDA tensor). Give every data-parallel rank the same seed
    so that all draw the same Rademacher vectors. ``state()`` / ``load()`` round-trip through a
    checkpoint; ``snapshot()`` / ``restore()`` undo the draws of a step that is skipped."""

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)
        self._generators: dict[str, torch.Generator] = {}

    def __call__(self, device: torch.device) -> torch.Generator:
        key = str(device)
        if key not in self._generators:
            self._generators[key] = torch.Generator(device=device)
            self._generators[key].manual_seed(self.seed)
        return self._generators[key]

    def snapshot(self) -> dict[str, Tensor]:
        return {k: g.get_state() for k, g in self._generators.items()}

    def restore(self, snapshot: dict[str, Tensor]) -> None:
        self._generators = {k: g for k, g in self._generators.items() if k in snapshot}
        for key, gen in self._generators.items():
            gen.set_state(snapshot[key])

    def state(self) -> dict[str, Any]:
        return {"seed": self.seed, "generators": self.snapshot()}

    def load(self, state: dict[str, Any]) -> None:
        self.seed = int(state["seed"])
        self._generators = {}
        for key, gstate in state["generators"].items():
            self._generators[key] = torch.Generator(device=torch.device(key))
            self._generators[key].set_state(gstate.cpu())
