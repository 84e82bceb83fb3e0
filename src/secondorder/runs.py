"""The run directory: what a run writes, how it is written, and how a run is loaded back.

Every run lives in `<results_root>/<experiment_name>/<run_name>/` (`run_dir` in
`configs/train.yaml`; `outputs/` for a user's runs, `results/` for the published ones):

    config.yaml          the resolved Hydra config, written when the run starts
    tokenizer/           the run's tokenizer (a locally trained vocabulary is not reproducible)
    metrics.jsonl        training records every `trainer.log_every_steps` steps
    evals.jsonl          one record per evaluation; eval.json is the latest
    epochs.jsonl         time and peak memory per epoch
    curvature.jsonl      per-block preconditioner telemetry of second-order optimizers
    predictions.json     official SQuAD 2.0 formats of the latest evaluation
    na_probs.json
    checkpoints/         last.pt (and epoch<N>.pt): model, optimizer, scheduler, RNG, position
    complete.json        written when the run has trained all it was asked to (step, time, and the
                         device and environment of the process that finished it)

This module is the only one that knows that layout. The trainer writes through it; the
experiments (spectra of a trained model) and the reports (tables, figures) read through it;
:func:`load_run` rebuilds a run's tokenizer and model from the run's own `config.yaml`, so an
analysis can never silently use another model than the one trained. JSON files are written
atomically (a temporary file, then a rename), so a kill never leaves half a file.
"""

from __future__ import annotations

import errno
import logging
import os
import pickle
import random
import re
import shutil
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from secondorder.files import (  # noqa: F401 (the run files' readers and writers, re-exported)
    append_jsonl,
    read_json,
    read_jsonl,
    truncate_jsonl,
    write_json,
)

log = logging.getLogger(__name__)

CONFIG = "config.yaml"
TOKENIZER = "tokenizer"
CHECKPOINTS = "checkpoints"
HANDOFF_START = "handoff_start"  # see RunLogs.init_from
EVAL = "eval.json"
PREDICTIONS = "predictions.json"
NA_PROBS = "na_probs.json"
STREAMS = ("metrics", "evals", "epochs", "curvature")  # <stream>.jsonl
COMPLETE = "complete.json"


class RunError(RuntimeError):
    """A run directory or checkpoint that cannot be used as asked; the message says what to do."""


class RefusedRun(RunError):
    """A command that would start over in a folder that holds a run: nothing was done."""


# ------------------------------------------------------------------------------- checkpoints
# Checkpoints are opened with torch.load(weights_only=True): tensors, containers and numbers
# only, so that a crafted file cannot run code when it is opened. Everything a checkpoint holds
# is written in those forms (the NumPy RNG state as a dict with a tensor, not NumPy's tuple).
# Checkpoints written before held NumPy's tuple; its array is let through by name, nothing else:
_LEGACY_NUMPY_GLOBALS = [np.ndarray, np.dtype, type(np.dtype(np.uint32))]
try:  # numpy >= 2 and 1.x name the array constructor differently
    from numpy._core.multiarray import _reconstruct as _np_reconstruct
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct as _np_reconstruct
_LEGACY_NUMPY_GLOBALS.append(_np_reconstruct)


def _numpy_state() -> dict[str, Any]:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}


def _set_numpy_state(state: Any) -> None:
    if isinstance(state, dict):  # our form
        keys = state["keys"].numpy().astype(np.uint32)
        state = (state["kind"], keys, state["pos"], state["has_gauss"], state["cached_gaussian"])
    np.random.set_state(state)  # or NumPy's own tuple (checkpoints written before)


def rng_state() -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy": _numpy_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    _set_numpy_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tensor_bytes(obj: Any) -> int:
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, Mapping):
        return sum(_tensor_bytes(v) for v in obj.values())
    if isinstance(obj, list | tuple):
        return sum(_tensor_bytes(v) for v in obj)
    return 0


def _size(n: int) -> str:
    return f"{n / 1024**3:.2f} GiB" if n >= 1024**3 else f"{n / 1024**2:.0f} MiB"


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """`state` plus every RNG state, written to a temporary file and renamed (kill-safe).

    If the write fails (a full disk), the partial file is removed, the previous checkpoint at
    `path` is left as it was, and :class:`RunError` says how much space a checkpoint needs.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save({**state, "rng": rng_state()}, tmp)
    except (OSError, RuntimeError) as err:  # torch reports a failed write as RuntimeError
        tmp.unlink(missing_ok=True)
        code = getattr(err, "errno", None)
        reason = os.strerror(code) if code else str(err).strip().splitlines()[-1]
        full = code == errno.ENOSPC or "write failed" in reason
        kept = f"{path} from before is kept" if path.exists() else "no earlier checkpoint exists"
        raise RunError(
            f"could not write the checkpoint {path}{' (disk full?)' if full else ''}: {reason}; "
            f"it needs about {_size(_tensor_bytes(state))} and "
            f"{_size(shutil.disk_usage(path.parent).free)} are free in {path.parent}; {kept}. "
            "Free some space, then resume with resume=true") from None
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"no checkpoint at {path}: check run_dir (resume=true continues the run in run_dir) "
            "or strategy.init_from"
        )
    try:
        with torch.serialization.safe_globals(_LEGACY_NUMPY_GLOBALS):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:  # the safe loader met something that is not data
        found = re.search(r"GLOBAL (\S+)", str(err))
        what = f"it holds {found.group(1)}" if found else "it holds more than tensors and numbers"
        raise RunError(
            f"{path} is refused: {what}, which a checkpoint of this project never holds, and "
            "opening it could run code; nothing from it was run. Use a checkpoint written by "
            "scripts/train.py") from None
    except Exception as err:  # a truncated or corrupt file: torch raises many kinds
        others = sorted(p.name for p in path.parent.glob("*.pt") if p != path)
        choices = (f"start from an earlier one ({', '.join(others)}: copy it to {path.name})"
                   if others else "no earlier checkpoint exists")
        raise RunError(
            f"{path} is truncated or corrupt ({type(err).__name__}: {str(err).splitlines()[0]}); "
            f"{choices}, or start the run over with overwrite=true") from None


def resolve_checkpoint(value: Any, run_dir: str | Path) -> Path | None:
    """``None`` (initialisation), a path, or a bare name for ``<run_dir>/checkpoints/<name>.pt``."""
    if value is None or str(value) == "":
        return None
    text = str(value)
    path = Path(text)
    if path.suffix == "" and "/" not in text and "\\" not in text:
        path = Path(run_dir) / CHECKPOINTS / f"{text}.pt"
    return path


def check_fresh_start(run_dir: Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse to start over in a directory that holds a run, unless `overwrite` says so."""
    if resume or overwrite or not run_dir.exists():
        return
    held = [n for n in (EVAL, COMPLETE, f"{CHECKPOINTS}/last.pt", "metrics.jsonl")
            if (run_dir / n).exists()]
    if held:
        state = "a complete run" if COMPLETE in held else "a run"
        raise RefusedRun(
            f"{run_dir} holds {state} ({', '.join(held)}): pass resume=true to continue it, or "
            "overwrite=true to delete its results and start over")


# ------------------------------------------------------------------------------- components
def feature_config(data_cfg: Mapping, model):
    """The feature-window settings of `data_cfg`, checked against the model's position table."""
    from secondorder.data.squad import FeatureConfig

    fc = FeatureConfig(
        max_length=int(data_cfg["max_length"]),
        doc_stride=int(data_cfg["doc_stride"]),
        max_question_length=int(data_cfg["max_question_length"]),
    )
    limit = getattr(model.config, "max_position_embeddings", None)
    if limit is not None and fc.max_length > limit:
        raise ValueError(
            f"data.max_length={fc.max_length} exceeds the model's max_position_embeddings={limit}"
        )
    return fc


def _saved_tokenizer(run_dir: Path | None):
    if run_dir is None or not (run_dir / TOKENIZER / "tokenizer_config.json").exists():
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(run_dir / TOKENIZER))


@dataclass
class Components:
    """What a run is built from: raw records per split, tokenizer, model (initial weights)."""

    records: Any  # {"train": datasets.Dataset, "validation": ...}
    tokenizer: Any
    model: Any
    tokenizer_source: str  # the run directory's tokenizer/ or "build_tokenizer"


def build_components(cfg: Mapping, run_dir: Path | None = None, *, reuse_tokenizer: bool = False,
                     save_tokenizer: bool = False) -> Components:
    """Records, tokenizer and model of `cfg`, seeded exactly as a training run starts.

    With `reuse_tokenizer`, the tokenizer saved in `run_dir` is used if there is one (a locally
    trained WordPiece vocabulary is not deterministic across processes: `tokenizers` breaks
    ties between equally frequent merges in hash order, so a resumed run or an analysis of a
    trained model must not retrain it). With `save_tokenizer` it is saved there.
    """
    from accelerate.utils import set_seed

    from secondorder.data.squad import load_records
    from secondorder.data.tokenizer import build_tokenizer
    from secondorder.models.albert import build_model

    set_seed(int(cfg["seed"]))
    records = load_records(cfg["data"])
    if cfg["data"].get("heldout_questions"):  # tuning: validate on part of the training split
        from secondorder.data.splits import hold_out

        train, held = hold_out(records["train"], int(cfg["data"]["heldout_questions"]),
                               int(cfg["data"].get("subsample_seed", 0)))
        records = {"train": train, "validation": held}
    tokenizer = _saved_tokenizer(run_dir) if reuse_tokenizer else None
    source = str(run_dir / TOKENIZER) if tokenizer is not None else "build_tokenizer"
    if tokenizer is None:
        tokenizer = build_tokenizer(cfg["model"], records["train"], cfg["cache_dir"])
        if save_tokenizer and run_dir is not None:
            tokenizer.save_pretrained(str(run_dir / TOKENIZER))
    set_seed(int(cfg["seed"]))  # the model's initial weights depend on the seed alone
    model = build_model(cfg["model"], tokenizer)
    return Components(records, tokenizer, model, source)


@dataclass
class LoadedRun:
    """A run read back from its directory: its own config, tokenizer and model weights."""

    dir: Path
    cfg: Any  # the run's config.yaml (a DictConfig)
    components: Components
    checkpoint_path: Path | None
    checkpoint: dict | None  # the loaded checkpoint (None: the run's initial weights)

    @property
    def model(self):
        return self.components.model

    @property
    def tokenizer(self):
        return self.components.tokenizer

    @property
    def records(self):
        return self.components.records


def load_run(run_dir: str | Path, checkpoint: Any = "last") -> LoadedRun:
    """The run in `run_dir` with the weights of `checkpoint`.

    `checkpoint`: a bare name (``"last"``, ``"epoch2"``) for ``checkpoints/<name>.pt``, a path,
    or None for the weights the run started from. The model, data and seed come from the run's
    `config.yaml`, the tokenizer from its `tokenizer/` directory.
    """
    from omegaconf import OmegaConf

    run_dir = Path(run_dir)
    config = run_dir / CONFIG
    if not config.exists():
        raise FileNotFoundError(
            f"no run in {run_dir} ({CONFIG} missing): train it first (scripts/train.py), or "
            "check run_dir / experiment"
        )
    cfg = OmegaConf.load(config)
    path = resolve_checkpoint(checkpoint, run_dir)
    if path is not None and not path.exists():
        raise FileNotFoundError(
            f"no checkpoint at {path}: the run has not reached it (train or resume it first), or "
            "pick another of its checkpoints"
        )
    if _saved_tokenizer(run_dir) is None and cfg.model.tokenizer.kind == "local":
        msg = (f"no saved tokenizer in {run_dir / TOKENIZER}: rebuilding it from the config; if "
               "it is not the one the run was trained with, token ids will not match its weights")
        log.warning("%s", msg)
        warnings.warn(msg, stacklevel=2)
    components = build_components(cfg, run_dir, reuse_tokenizer=True)
    state = None if path is None else load_weights(components.model, path, f"the model of {config}")
    return LoadedRun(run_dir, cfg, components, path, state)


def load_weights(model, path: str | Path, what: str = "this model") -> dict:
    """Load a checkpoint's model weights into `model`; returns the checkpoint. A checkpoint of
    another architecture is one line (ValueError) naming both."""
    state = load_checkpoint(path)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as err:
        raise ValueError(f"the checkpoint {path} does not fit {what}: {err}") from err
    return state


# ------------------------------------------------------------------------------- reading runs
def is_complete(run_dir: str | Path) -> bool:
    """True once the run has trained everything its config asks for (`complete.json`)."""
    return (Path(run_dir) / COMPLETE).exists()


SUMMARY_FILES = (CONFIG, EVAL, COMPLETE, *(f"{s}.jsonl" for s in STREAMS))


def publish_run(run_dir: str | Path, results_root: str | Path, *,
                overwrite: bool = False) -> Path:
    """Copy a complete run's summaries (`SUMMARY_FILES`: its config, logs and final scores; not
    its checkpoints, predictions or tokenizer) to `<results_root>/<experiment_name>/<run_name>/`,
    the published layout that `make report` reads; the copied config names its new place.
    Returns that folder. RunError if the run is not complete, or if a published run is
    already there (unless `overwrite`)."""
    from omegaconf import OmegaConf

    run_dir = Path(run_dir)
    if not (run_dir / CONFIG).is_file():
        raise RunError(f"{run_dir} is not a run folder (no {CONFIG}); give the folder of one "
                       "run, e.g. outputs/demo/tiny_albert/adamw-seed42")
    if not is_complete(run_dir):
        raise RunError(f"{run_dir} has not finished ({COMPLETE} missing): finish it with "
                       "resume=true first; only complete runs are published")
    cfg = OmegaConf.load(run_dir / CONFIG)
    target = Path(results_root) / str(cfg.experiment_name) / str(cfg.run_name)
    if target.resolve() == run_dir.resolve():
        raise RunError(f"{run_dir} is already in {results_root}")
    if target.exists() and not overwrite:
        raise RunError(f"{target} already holds a published run; nothing was copied "
                       "(overwrite=true replaces it)")
    target.mkdir(parents=True, exist_ok=True)
    cfg.results_root = str(results_root)
    cfg.run_dir = str(target)
    (target / CONFIG).write_text(OmegaConf.to_yaml(cfg))
    for name in SUMMARY_FILES:  # the config, rewritten above, aside
        if name != CONFIG and (run_dir / name).is_file():
            shutil.copyfile(run_dir / name, target / name)
    return target


def experiment_runs(results_root: str | Path, experiment_name: str) -> list[Path]:
    """The complete runs (one per seed or setting) of `results/<experiment_name>/`."""
    base = Path(results_root) / experiment_name
    return sorted(p.parent for p in base.glob(f"*/{COMPLETE}"))


@dataclass
class RunLogs:
    """What a finished run logged: its config and every record stream, read once."""

    dir: Path
    config: dict
    metrics: list[dict]
    evals: list[dict]
    epochs: list[dict]
    final: dict  # eval.json

    @property
    def init_from(self) -> Path | None:
        """The run whose checkpoint this one started from (a hand-off's first phase): the
        recorded run if it is here; else a copy published beside this run's experiment
        (`<experiment>/HANDOFF_START/<run>`, for a start trained apart from the committed run of
        its experiment); else the run of the same experiment and name under our results root."""
        source = (self.config.get("strategy") or {}).get("init_from")
        if not source:
            return None
        path = Path(source)
        if path.parent.name != CHECKPOINTS:
            return None
        run = path.parent.parent
        if run.exists():
            return run
        published = self.dir.parent / HANDOFF_START / run.name
        if published.exists():
            return published
        return self.dir.parents[2].joinpath(*run.parts[-3:])


def read_logs(run_dir: str | Path) -> RunLogs:
    from omegaconf import OmegaConf

    run_dir = Path(run_dir)
    config = OmegaConf.to_container(OmegaConf.load(run_dir / CONFIG)) if (
        run_dir / CONFIG).exists() else {}
    final = read_json(run_dir / EVAL) if (run_dir / EVAL).exists() else {}
    return RunLogs(run_dir, config, *(read_jsonl(run_dir / f"{s}.jsonl") for s in STREAMS[:3]),
                   final)
