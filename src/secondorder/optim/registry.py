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

from collections.abc import Callable, Mapping
from typing import Any

import torch

from .adahessian import CURVATURE_SOURCES, HESSIAN_BATCHES, WHOLE_ROW, AdaHessian
from .adasub import MODES as ADASUB_MODES
from .adasub import AdaSub
from .soaa import SOAA
from .split import Split

__all__ = ["build_optimizer", "validate_optimizer_config", "OPTIMIZERS", "DEFAULT_NO_DECAY"]

DEFAULT_NO_DECAY: tuple[str, ...] = ("bias", "LayerNorm.weight", "layer_norm.weight")

Check = tuple[Callable[[Any], bool], str]


def _num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


_NONNEG: Check = (lambda x: _num(x) and x >= 0, "a number >= 0")
_UNIT: Check = (lambda x: _num(x) and 0 <= x < 1, "a number in [0, 1)")
_BETAS: Check = (
    lambda x: (
        isinstance(x, (list, tuple)) and len(x) == 2 and all(_num(b) and 0 <= b < 1 for b in x)
    ),
    "two numbers [beta1, beta2], each in [0, 1)",
)
_BOOL: Check = (lambda x: isinstance(x, bool), "true or false")

# key -> (predicate, allowed range) for each optimizer
_SPECS: dict[str, dict[str, Check]] = {
    "adamw": {
        "lr": _NONNEG,
        "weight_decay": _NONNEG,
        "betas": _BETAS,
        "eps": _NONNEG,
        "amsgrad": _BOOL,
        "foreach": (lambda x: x is None or isinstance(x, bool), "true, false or null"),
    },
    "sgd": {
        "lr": _NONNEG,
        "momentum": _UNIT,
        "weight_decay": _NONNEG,
        "dampening": _UNIT,
        "nesterov": _BOOL,
        "foreach": (lambda x: x is None or isinstance(x, bool), "true, false or null"),
    },
    "adahessian": {
        "lr": _NONNEG,
        "weight_decay": _NONNEG,
        "betas": _BETAS,
        "eps": _NONNEG,
        "hessian_power": (lambda x: _num(x) and 0 < x <= 1, "a number in (0, 1]"),
        "n_samples": (lambda x: _int(x) and x >= 1, "an integer >= 1"),
        "block_size": (lambda x: x == WHOLE_ROW or (_int(x) and x >= 1),
                       f"an integer >= 1 (1 = no averaging) or {WHOLE_ROW!r} (the whole row)"),
        "average_1d": _BOOL,
        "hessian_interval": (lambda x: _int(x) and x >= 1, "an integer >= 1"),
        "average_abs": _BOOL,
        "curvature_source": (lambda x: x in CURVATURE_SOURCES, " | ".join(CURVATURE_SOURCES)),
        "bias_correction": _BOOL,
        "hessian_batch": (lambda x: x in HESSIAN_BATCHES, " | ".join(HESSIAN_BATCHES)),
        "hessian_batch_fraction": (lambda x: _num(x) and 0 < x <= 1, "a number in (0, 1]"),
        "seed": (lambda x: x is None or _int(x), "an integer or null"),
        "foreach": _BOOL,
    },
    "soaa": {
        "lr": _NONNEG,
        "weight_decay": _NONNEG,
        "betas": _BETAS,
        "eps": (lambda x: _num(x) and x > 0, "a number > 0"),
        "gamma": _UNIT,
        "foreach": _BOOL,
    },
    "adasub": {
        "lr": _NONNEG,
        "weight_decay": _NONNEG,
        "n_directions": (lambda x: _int(x) and x >= 1, "an integer >= 1"),
        "rho": (lambda x: _num(x) and x > 0, "a number > 0"),
        "mode": (lambda x: x in ADASUB_MODES, " | ".join(ADASUB_MODES)),
        "reuse_products": _BOOL,
        "hessian_interval": (lambda x: _int(x) and x >= 1, "an integer >= 1"),
        "hessian_batch_fraction": (lambda x: _num(x) and 0 < x <= 1, "a number in (0, 1]"),
        "rank_tol": (lambda x: _num(x) and 0 <= x < 1, "a number in [0, 1)"),
    },
}

OPTIMIZERS: tuple[str, ...] = ("adamw", "adahessian", "soaa", "sgd", "adasub")
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
    cfg: Mapping[str, Any], model: torch.nn.Module, *, num_training_steps: int
) -> torch.optim.Optimizer:
    """Build the optimizer described by ``cfg`` for ``model``.

    ``num_training_steps`` is the run's total number of optimizer steps (SOAA's ``T``).
    Raises ``ValueError`` for an unknown ``name``, an unknown key or an out-of-range value.
    """
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return _build(_to_dict(cfg), named, num_training_steps)


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
        return _build(dict(conf), named, num_training_steps)
    except ValueError as err:
        raise ValueError(str(err).replace("optimizer.", "optimizer.delegate.optimizer.", 1)
                         ) from None


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


def _build(conf: dict[str, Any], named: list, num_training_steps: int) -> torch.optim.Optimizer:
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
    if not (_int(num_training_steps) and num_training_steps >= 1):
        raise ValueError(
            f"num_training_steps={num_training_steps!r} is invalid; allowed: integer >= 1"
        )

    if conf.get("delegate") is not None:
        named, theirs, delegate_conf = _split_delegate(conf["delegate"], named)
        delegate = _build_delegate(delegate_conf, theirs, num_training_steps)
        primary = _build({k: v for k, v in conf.items() if k != "delegate"}, named,
                         num_training_steps)
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
        return AdaHessian(groups, **hp)
    if name == "adasub":
        return AdaSub(groups, **hp)
    return SOAA(groups, total_steps=num_training_steps, **hp)
