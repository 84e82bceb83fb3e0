"""Build an optimizer from the Hydra ``optimizer`` config group.

``cfg`` (a ``DictConfig`` or a plain mapping) holds ``name`` (one of :data:`OPTIMIZERS`),
the optimizer's hyperparameters and ``no_decay``: a list of parameter-name substrings
whose parameters get ``weight_decay = 0`` (default :data:`DEFAULT_NO_DECAY`; ``[]``: every
tensor decays, as ``torch.optim.AdamW(model.parameters())`` does).  The model's
trainable parameters are split into two groups, ``"decay"`` and ``"no_decay"`` (a group's
name is stored under the ``group_name`` key; empty groups are dropped).

``delegate`` (optional): ``{"match": [substrings], "optimizer": {...}}`` gives the parameters
whose names contain one of the substrings to a second optimizer (its own config, built the
same way) and the rest to this one, as one :class:`secondorder.optim.split.Split`.

Every hyperparameter is checked here, before the optimizer is constructed, so that a bad
config fails with one readable line naming the key and its allowed range.  Unknown keys
are errors (a typo must not silently fall back to a default).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from secondorder.validation import (
    BETAS,
    BOOL,
    NONNEG,
    POSITIVE,
    POSITIVE_INT,
    UNIT,
    Check,
    is_int,
    is_number,
)

from .adahessian import HYPERPARAMETERS as ADAHESSIAN_HYPERPARAMETERS
from .adahessian import AdaHessian
from .adasub import HYPERPARAMETERS as ADASUB_HYPERPARAMETERS
from .adasub import AdaSub
from .base import CurvatureHooks, CurvatureOptimizer
from .library import library_optimizer
from .soaa import HYPERPARAMETERS as SOAA_HYPERPARAMETERS
from .soaa import SOAA
from .sophia import HYPERPARAMETERS as SOPHIA_HYPERPARAMETERS
from .sophia import SophiaH
from .split import Split

__all__ = ["build_optimizer", "validate_optimizer_config", "OPTIMIZERS", "DEFAULT_NO_DECAY"]

DEFAULT_NO_DECAY: tuple[str, ...] = ("bias", "LayerNorm.weight", "layer_norm.weight")

_FOREACH: Check = (lambda x: x is None or isinstance(x, bool), "true, false or null")

# key -> check for each optimizer: torch's two here, ours from their own modules
_SPECS: dict[str, dict[str, Check]] = {
    "adamw": {"lr": NONNEG, "weight_decay": NONNEG, "betas": BETAS, "eps": NONNEG,
              "amsgrad": BOOL, "foreach": _FOREACH},
    "sgd": {"lr": NONNEG, "momentum": UNIT, "weight_decay": NONNEG, "dampening": UNIT,
            "nesterov": BOOL, "foreach": _FOREACH},
    "adahessian": ADAHESSIAN_HYPERPARAMETERS,
    # SOAA's total_steps is the run's length (num_training_steps), not a config key
    "soaa": {k: v for k, v in SOAA_HYPERPARAMETERS.items() if k != "total_steps"},
    "adasub": ADASUB_HYPERPARAMETERS,
    "sophia_h": SOPHIA_HYPERPARAMETERS,
    # from pytorch_optimizer (a maintained library; its defaults, the keys it documents)
    "soap": {"lr": NONNEG, "weight_decay": NONNEG, "betas": BETAS,
             "shampoo_beta": (lambda x: x is None or (is_number(x) and 0 <= x < 1),
                              "a number in [0, 1), or null (= beta2)"),
             "precondition_frequency": POSITIVE_INT, "max_precondition_dim": POSITIVE_INT,
             "precondition_1d": BOOL, "correct_bias": BOOL, "eps": POSITIVE},
    "shampoo": {"lr": NONNEG, "weight_decay": NONNEG, "momentum": UNIT,
                "weight_decouple": BOOL, "preconditioning_compute_steps": POSITIVE_INT,
                "matrix_eps": POSITIVE,
                # ours (optim/library.py): the inverse roots also on the first step
                "roots_from_step_one": BOOL},
}

# name -> class name in pytorch_optimizer (imported when such an optimizer is built)
LIBRARY = {"soap": "SOAP", "shampoo": "Shampoo"}

OPTIMIZERS: tuple[str, ...] = ("adamw", "adahessian", "soaa", "sgd", "adasub", "sophia_h", "soap",
                               "shampoo")
assert set(OPTIMIZERS) == set(_SPECS)
_COMMON_KEYS = ("name", "no_decay", "delegate")


def _to_dict(cfg: Mapping[str, Any]) -> dict[str, Any]:
    try:
        from omegaconf import DictConfig, OmegaConf
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        DictConfig = ()  # type: ignore[assignment]
    if DictConfig and isinstance(cfg, DictConfig):
        out = OmegaConf.to_container(cfg, resolve=True)
        assert isinstance(out, dict)
        return out
    return dict(cfg)


def _param_groups(
    named: list[tuple[str, torch.nn.Parameter]], no_decay: list[str], weight_decay: float
) -> list[dict[str, Any]]:
    decay, plain = [], []
    for name, p in named:
        (plain if any(s in name for s in no_decay) else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": weight_decay, "group_name": "decay"},
        {"params": plain, "weight_decay": 0.0, "group_name": "no_decay"},
    ]
    groups = [g for g in groups if g["params"]]
    if not groups:
        raise ValueError("build_optimizer: the model has no trainable parameters")
    return groups


def build_optimizer(
    cfg: Mapping[str, Any], model: torch.nn.Module, *, num_training_steps: int,
    hooks: CurvatureHooks | None = None,
) -> torch.optim.Optimizer:
    """Build the optimizer described by ``cfg`` for ``model``.

    ``num_training_steps`` is the run's total number of optimizer steps (SOAA's ``T``).
    ``hooks``: what the training loop provides to a curvature optimizer
    (:class:`~secondorder.optim.base.CurvatureHooks`; ignored by first-order ones).
    Raises ``ValueError`` for an unknown ``name``, an unknown key or an out-of-range value.
    """
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return _build(_to_dict(cfg), named, num_training_steps, hooks)


def validate_optimizer_config(cfg: Mapping[str, Any]) -> None:
    """Check every key of an optimizer config, and its delegate's, without the model (on a
    probe layer): whether ``delegate.match`` splits the model is checked when the optimizer is
    built for it. Raises ``ValueError`` as :func:`build_optimizer` does."""
    probe = list(torch.nn.Linear(2, 2).named_parameters())
    conf = _to_dict(cfg)
    delegate = conf.pop("delegate", None)
    if delegate is not None:
        _check_delegate(delegate)
        _build_delegate(delegate["optimizer"], probe, 1)
    _build(conf, probe, 1)


def _check_delegate(delegate: Any) -> None:
    ok = (isinstance(delegate, dict) and set(delegate) == {"match", "optimizer"}
          and isinstance(delegate["match"], (list, tuple)) and delegate["match"]
          and all(isinstance(m, str) and m for m in delegate["match"])
          and isinstance(delegate["optimizer"], dict))
    if not ok:
        raise ValueError(f"optimizer.delegate={delegate!r} is invalid; allowed: "
                         "{match: [name substrings], optimizer: {name: ..., ...}}")


def _build_delegate(conf: dict, named: list, num_training_steps: int) -> torch.optim.Optimizer:
    try:
        delegate = _build(dict(conf), named, num_training_steps)
    except ValueError as err:
        raise ValueError(str(err).replace("optimizer.", "optimizer.delegate.optimizer.", 1)
                         ) from None
    if isinstance(delegate, CurvatureOptimizer):
        raise ValueError(f"optimizer.delegate.optimizer.name={conf.get('name')!r} is a curvature "
                         "optimizer; a delegate must be first-order (adamw, sgd, soaa)")
    return delegate


def _split_delegate(delegate: Any, named: list) -> tuple[list, list, dict]:
    """(this optimizer's parameters, the delegate's, the delegate's config)."""
    _check_delegate(delegate)
    theirs = [(n, p) for n, p in named if any(m in n for m in delegate["match"])]
    ours = [(n, p) for n, p in named if not any(m in n for m in delegate["match"])]
    if not theirs or not ours:
        side = "no" if not theirs else "every"
        raise ValueError(f"optimizer.delegate.match={list(delegate['match'])} selects {side} "
                         "trainable parameter; it must split the model in two")
    return ours, theirs, delegate["optimizer"]


def _build(conf: dict[str, Any], named: list, num_training_steps: int,
           hooks: CurvatureHooks | None = None) -> torch.optim.Optimizer:
    name = conf.get("name")
    if name not in _SPECS:
        raise ValueError(f"optimizer.name={name!r} is unknown; choose one of {list(OPTIMIZERS)}")
    spec = _SPECS[name]
    unknown = sorted(k for k in conf if k not in spec and k not in _COMMON_KEYS)
    if unknown:
        raise ValueError(
            f"optimizer ({name}): unknown key(s) {unknown}; allowed: {sorted(spec) + ['no_decay']}"
        )
    for key, value in conf.items():
        if key in spec:
            ok, allowed = spec[key]
            if not ok(value):
                raise ValueError(
                    f"optimizer.{key}={value!r} is invalid for {name}; allowed: {allowed}"
                )
    no_decay = conf.get("no_decay", list(DEFAULT_NO_DECAY))
    if no_decay is None:
        no_decay = []
    if not isinstance(no_decay, (list, tuple)) or not all(isinstance(s, str) for s in no_decay):
        raise ValueError(f"optimizer.no_decay={no_decay!r} is invalid; allowed: a list of strings")
    if not (is_int(num_training_steps) and num_training_steps >= 1):
        raise ValueError(
            f"num_training_steps={num_training_steps!r} is invalid; allowed: integer >= 1"
        )

    if conf.get("delegate") is not None:
        named, theirs, delegate_conf = _split_delegate(conf["delegate"], named)
        delegate = _build_delegate(delegate_conf, theirs, num_training_steps)
        primary = _build({k: v for k, v in conf.items() if k != "delegate"}, named,
                         num_training_steps, hooks)
        return Split(primary, delegate)

    hp = {k: v for k, v in conf.items() if k in spec}
    if "betas" in hp:
        hp["betas"] = tuple(float(b) for b in hp["betas"])
    weight_decay = float(hp.pop("weight_decay", 0.0))
    groups = _param_groups(named, list(no_decay), weight_decay)

    if name == "adamw":
        return torch.optim.AdamW(groups, **hp)
    if name == "sgd":
        hp.setdefault("momentum", 0.9)
        return torch.optim.SGD(groups, **hp)
    if name == "adahessian":
        return AdaHessian(groups, hooks=hooks, **hp)
    if name == "adasub":
        return AdaSub(groups, hooks=hooks, **hp)
    if name == "sophia_h":
        return SophiaH(groups, hooks=hooks, **hp)
    if name in LIBRARY:
        cls, kwargs = library_optimizer(name, LIBRARY[name], hp)
        return cls(groups, **kwargs)
    return SOAA(groups, total_steps=num_training_steps, **hp)
