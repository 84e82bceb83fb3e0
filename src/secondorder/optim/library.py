"""Optimizers from ``pytorch_optimizer`` (a maintained library), built by the registry.

``pytorch_optimizer`` is imported only when one of them is built, so the rest of the package
works without it. One adaptation, a switch of ``optimizer=shampoo``:

- **Shampoo's first inverse roots** (``roots_from_step_one``, default true). The library starts
  every inverse root at zero and computes the roots on the steps where
  ``step % preconditioning_compute_steps == 0``. With an interval P > 1 its first P - 1 updates
  are therefore zero: the weights do not move until step P. With the switch on, the roots are
  also computed on the first step, from the first gradient's statistics, and then every P steps
  as the library does; false keeps the library's behaviour.
"""

from __future__ import annotations

import functools

import torch


def import_library(name: str):
    """pytorch_optimizer, or one line saying how to install it (`name`: the optimizer asked for)."""
    try:
        import pytorch_optimizer
    except ImportError:
        raise ValueError(f"optimizer.name={name} comes from pytorch_optimizer, which is not "
                         "installed: make install (or pip install --no-deps "
                         "pytorch_optimizer==4.1.0)") from None
    return pytorch_optimizer


@functools.cache
def shampoo_roots_from_step_one() -> type[torch.optim.Optimizer]:
    """pytorch_optimizer's Shampoo whose first step computes the inverse roots (module doc)."""
    library = import_library("shampoo")

    class Shampoo(library.Shampoo):
        def step(self, closure=None):
            if any(group.get("step", 0) == 0 for group in self.param_groups):
                # the library refreshes when step % interval == 0: an interval of 1 refreshes
                every, self.preconditioning_compute_steps = self.preconditioning_compute_steps, 1
                try:
                    return super().step(closure)
                finally:
                    self.preconditioning_compute_steps = every
            return super().step(closure)

    Shampoo.__qualname__ = "Shampoo"
    Shampoo.__module__ = __name__
    return Shampoo


def library_optimizer(name: str, class_name: str, hp: dict) -> tuple[type, dict]:
    """The class of `name` (pytorch_optimizer's `class_name`) and the keyword arguments it takes
    (`hp` without our switches)."""
    library = import_library(name)
    hp = dict(hp)
    if name == "shampoo" and hp.pop("roots_from_step_one", True):
        return shampoo_roots_from_step_one(), hp
    return getattr(library, class_name), hp
