"""Checks before a run touches anything: every value it will use, and whether a resume is safe.

Each bad value ends in one line that names the key as it is typed on the command line and
what is allowed (`scripts/train.py` prints it and exits with code 2). Nothing is written before
these checks pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from secondorder.validation import (
    BOOL,
    POSITIVE_INT,
    POSITIVE_INT_OR_NULL,
    Check,
    is_int,
    is_number,
)


class ConfigError(ValueError):
    """A config value that cannot run; the message names the key."""


def check_experiment_args(argv: list[str], configs: Path | None = None) -> None:
    """Exit with code 2 and the list of experiments if `experiment=NAME` names none of them."""
    import sys

    from secondorder.paths import configs_dir

    configs = configs or configs_dir()
    known = sorted(str(p.relative_to(configs / "experiment").with_suffix(""))
                   for p in (configs / "experiment").rglob("*.yaml"))
    for arg in argv:
        key, _, value = arg.lstrip("+~").partition("=")
        for name in value.split(",") if key == "experiment" else ():  # multirun: a,b,c
            if name and name != "null" and name not in known:
                print(f"experiment={name} does not exist; the experiments are: "
                      f"{', '.join(known)}", file=sys.stderr)
                raise SystemExit(2)


# key -> (predicate, allowed); keys absent from a config are not checked (data sources differ)
CHECKS: dict[str, Check] = {
    "seed": (is_int, "an integer"),
    "resume": BOOL,
    "overwrite": BOOL,
    "trainer.epochs": POSITIVE_INT,
    "trainer.batch_size": POSITIVE_INT,
    "trainer.log_every_steps": POSITIVE_INT,
    "trainer.eval_every_steps": POSITIVE_INT_OR_NULL,
    "trainer.checkpoint_every_steps": POSITIVE_INT_OR_NULL,
    "trainer.stop_after_steps": POSITIVE_INT_OR_NULL,
    "trainer.max_steps": POSITIVE_INT_OR_NULL,
    "trainer.grad_clip_norm": (lambda x: x is None or (is_number(x) and x > 0), "a number > 0, or null"),
    "trainer.mixed_precision": (lambda x: x in ("no", "bf16", "fp16"), "'no', 'bf16' or 'fp16'"),
    "trainer.loss_scale.init_scale": (lambda x: is_number(x) and x > 0, "a number > 0"),
    "trainer.loss_scale.growth_factor": (lambda x: is_number(x) and x > 1, "a number > 1"),
    "trainer.loss_scale.backoff_factor": (lambda x: is_number(x) and 0 < x < 1, "a number in (0, 1)"),
    "trainer.loss_scale.growth_interval": POSITIVE_INT,
    "trainer.param_dtype": (lambda x: x in ("float32", "float64"), "float32 or float64"),
    "trainer.cpu": BOOL,
    "trainer.progress": BOOL,
    "trainer.keep_epoch_checkpoints": BOOL,
    "trainer.curvature_telemetry": BOOL,
    "trainer.create_graph_every_step": BOOL,
    "eval.batch_size": POSITIVE_INT,
    "eval.n_best_size": POSITIVE_INT,
    "eval.max_answer_length": POSITIVE_INT,
    "eval.null_score_diff_threshold": (is_number, "a number"),
    "data.num_train": POSITIVE_INT,
    "data.num_validation": POSITIVE_INT,
    "data.max_train_samples": POSITIVE_INT_OR_NULL,
    "data.max_eval_samples": POSITIVE_INT_OR_NULL,
    "data.heldout_questions": POSITIVE_INT_OR_NULL,
    "data.max_length": (lambda x: is_int(x) and x >= 16, "an integer >= 16"),
    "data.doc_stride": POSITIVE_INT,
    "data.max_question_length": POSITIVE_INT,
    "schedule.name": (lambda x: x in ("constant", "linear_warmup", "warmup_constant"),
                      "constant, linear_warmup or warmup_constant"),
    "schedule.warmup_fraction": (lambda x: is_number(x) and 0 <= x < 1, "a number in [0, 1)"),
    "strategy.name": (lambda x: x in ("single", "handoff"), "single or handoff"),
    "strategy.first_epochs": POSITIVE_INT,
}


def _get(cfg: Mapping, dotted: str) -> tuple[bool, Any]:
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def validate(cfg: Mapping) -> None:
    """Raise :class:`ConfigError` for the first value of `cfg` (a resolved dict) that cannot run."""
    for key, (ok, allowed) in CHECKS.items():
        present, value = _get(cfg, key)
        if present and not ok(value):
            raise ConfigError(f"{key}={value!r} is invalid; allowed: {allowed}")
    from secondorder.data.squad import FeatureConfig

    data = cfg["data"]
    try:  # its own check of the stride against the window
        FeatureConfig(max_length=data["max_length"], doc_stride=data["doc_stride"],
                      max_question_length=data["max_question_length"])
    except ValueError as err:
        raise ConfigError(str(err)) from None
    _validate_optimizers(cfg)


def _validate_optimizers(cfg: Mapping) -> None:
    """Every phase's optimizer config, now rather than when its phase starts (epochs later)."""
    from secondorder.optim.registry import validate_optimizer_config

    nodes = [("optimizer", cfg["optimizer"])]
    if cfg["strategy"]["name"] == "handoff" and not cfg["strategy"].get("init_from"):
        nodes.append(("strategy.first_optimizer", cfg["strategy"]["first_optimizer"]))
    for path, node in nodes:
        try:
            validate_optimizer_config(node)
        except ValueError as err:
            raise ConfigError(str(err).replace("optimizer.", f"{path}.", 1)) from None


# Keys a resumed run may change: they decide what is logged, shown or saved, not what is trained.
RESUME_SAFE = (
    "resume", "overwrite", "cache_dir", "results_root", "run_dir", "logger",
    "trainer.progress", "trainer.log_every_steps", "trainer.eval_every_steps",
    "trainer.checkpoint_every_steps", "trainer.stop_after_steps", "trainer.curvature_telemetry",
    # the scaler's state (its scale) is in the checkpoint; these settings only shape what follows
    "trainer.loss_scale",
    "eval.batch_size", "data.num_proc",
)


def _flat(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out if out or not prefix else {prefix[:-1]: {}}
    return {prefix[:-1]: obj}


# keys added after runs were saved without them: absent means this value
ADDED_KEYS = {"trainer.param_dtype": "float32", "trainer.create_graph_every_step": False}
# and keys of one optimizer, absent from runs saved before them (optimizer.<key>)
ADDED_OPTIMIZER_KEYS = {"adahessian": {"curvature_source": "hutchinson", "bias_correction": True,
                                       "hessian_batch": "same"}}


def _added_optimizer_keys(cfg: Mapping) -> dict[str, Any]:
    name = (cfg.get("optimizer") or {}).get("name")
    return {f"optimizer.{k}": v for k, v in ADDED_OPTIMIZER_KEYS.get(name, {}).items()}


def resume_differences(saved: Mapping, current: Mapping) -> list[str]:
    """`key: saved -> current` for every key that differs and is not safe to change on resume."""
    a, b = ({**ADDED_KEYS, **_added_optimizer_keys(c), **_flat(c)} for c in (saved, current))

    def safe(key: str) -> bool:
        return any(key == s or key.startswith(s + ".") for s in RESUME_SAFE)

    return [f"{k}: {a.get(k, '<absent>')!r} -> {b.get(k, '<absent>')!r}"
            for k in sorted(set(a) | set(b)) if not safe(k) and a.get(k) != b.get(k)]


def check_resume(run_dir: Path, current: Mapping) -> None:
    """Refuse to resume a run whose config.yaml differs from `current` in an unsafe key."""
    from omegaconf import OmegaConf

    from secondorder.runs import CONFIG

    saved_file = run_dir / CONFIG
    if not saved_file.exists():
        return
    saved = OmegaConf.to_container(OmegaConf.load(saved_file))
    diffs = resume_differences(saved, current)
    if diffs:
        raise ConfigError(
            f"resume=true, but this config differs from the run's {saved_file}: "
            + "; ".join(diffs) + ". Resume with the run's own values, or start over with "
            "overwrite=true (safe to change on resume: " + ", ".join(RESUME_SAFE[2:]) + ")")
