"""Blockwise Hessian spectra of a run's QA model, at initialisation or at a saved checkpoint.

:func:`run_spectrum` takes the config composed by ``configs/spectrum.yaml`` (``train.yaml``'s
groups and experiments plus a ``spectrum`` node; ``scripts/spectrum.py`` is its Hydra entry
point) and

1. builds the data, tokenizer and model as a training run does (:mod:`secondorder.train.run`):
   the seed is set before ``build_model`` so that, at initialisation, the weights are those a
   training run with this config starts from. For a checkpoint ``<run_dir>/checkpoints/*.pt``
   the run's saved tokenizer (``<run_dir>/tokenizer/``) is used: WordPiece training is not
   deterministic, so a retrained vocabulary need not match the checkpoint's embeddings;
2. fixes the loss: the mean QA loss (``model(**batch).loss``) over ``num_batches`` batches of
   ``batch_size`` training windows, from examples drawn with ``spectrum.seed``; eval mode and the
   ``MATH`` attention kernel (:class:`secondorder.curvature.operators.ModelHessian`);
3. estimates the spectrum of every diagonal Hessian block (default: the ALBERT partition of
   :func:`secondorder.curvature.blocks.default_albert_blocks`) by stochastic Lanczos quadrature
   (:func:`secondorder.curvature.blockwise.blockwise_spectra`), and the pairwise Jensen-Shannon
   distances between the blurred block densities on their common grid
   (:func:`secondorder.curvature.divergence.pairwise_js`, standard bounded variant); JS0 is their
   mean over distinct pairs;
4. writes ``<out_root>/<name>/``:

   ``densities.npz``
       ``grid`` (common grid), ``names`` (block names), ``densities`` (blocks x grid, each
       integrating to 1 on the grid), ``lambda_min``, ``lambda_max``, ``dims``.
   ``eigenvalues.json``
       per block: dimension, parameters, extreme Ritz values (over runs), gradient norm, and
       the quadrature nodes / weights of every run (enough to recompute any density).
   ``js.csv``
       the JS distance matrix, first row and column the block names.
   ``js_heatmap.png``, ``densities.png``
       the heatmap of ``js.csv`` and one log-scale density panel per block.
   ``summary.json``
       JS0, number of blocks, loss, checkpoint, settings and bookkeeping (parameters in no
       block, parameters the loss does not depend on, blocks dropped for that reason).

Parameters that the loss does not depend on (e.g. an ALBERT layer group no layer uses) have a
zero Hessian; blocks made only of such parameters are dropped (reported, with a warning).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from secondorder.report.spectra import density_grid_figure, heatmap_figure
from secondorder.runs import load_weights, resolve_checkpoint, write_json

log = logging.getLogger(__name__)

__all__ = [
    "OUTPUT_FILES",
    "SpectrumInputs",
    "SpectrumResult",
    "checkpoint_tag",
    "resolve_checkpoint",
    "qa_loss",
    "prepare_inputs",
    "model_blocks",
    "run_spectrum",
    "write_js_csv",
    "read_js_csv",
    "js0_report",
]

OUTPUT_FILES = (
    "densities.npz",
    "eigenvalues.json",
    "js.csv",
    "js_heatmap.png",
    "densities.png",
    "summary.json",
)


# -- config helpers -----------------------------------------------------------------------------


def checkpoint_tag(checkpoint: Any) -> str:
    """``init`` for no checkpoint, else the checkpoint's file stem (``last``, ``epoch2``)."""
    if checkpoint is None or str(checkpoint) == "":
        return "init"
    return Path(str(checkpoint)).stem


if not OmegaConf.has_resolver("spectrum_tag"):  # used by configs/spectrum.yaml (spectrum.name)
    OmegaConf.register_new_resolver("spectrum_tag", checkpoint_tag)


def _container(node) -> Any:
    if isinstance(node, DictConfig) or OmegaConf.is_config(node):
        return OmegaConf.to_container(node, resolve=True)
    return node


def _flat_items(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flat_items(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: obj}


def _ignored_overrides(cfg: DictConfig, run_cfg: DictConfig) -> list[str]:
    """``model`` / ``data`` keys where ``cfg`` differs from the run's own config (which wins)."""
    diffs = []
    for section in ("model", "data"):
        ours = _flat_items(_container(cfg[section]), f"{section}.")
        theirs = _flat_items(_container(run_cfg.get(section, {})), f"{section}.")
        for key in sorted(set(ours) | set(theirs)):
            if ours.get(key) != theirs.get(key):
                diffs.append(f"{key}: {theirs.get(key)!r} (run) vs {ours.get(key)!r}")
    if diffs:
        msg = ("the run's own config.yaml is used; this config differs from it (ignored): "
               + "; ".join(diffs))
        log.warning("%s", msg)
        warnings.warn(msg, stacklevel=3)
    return diffs


# -- inputs -----------------------------------------------------------------------------------


def qa_loss(model, batch) -> torch.Tensor:
    """The QA span loss of one collated batch (start/end positions included)."""
    return model(**batch).loss


@dataclass
class SpectrumInputs:
    """What the spectra are computed from: model (weights loaded), tokenizer, fixed batches."""

    model: Any
    tokenizer: Any
    batches: list[dict]
    checkpoint: Path | None
    tokenizer_source: str
    checkpoint_info: dict = field(default_factory=dict)
    config_differences: list[str] = field(default_factory=list)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def hessian_batches(records, tokenizer, fc, *, num_batches: int, batch_size: int, seed: int,
                    device: torch.device, num_proc: int | None = None) -> list[dict]:
    """``num_batches`` collated batches of training windows from examples drawn with ``seed``.

    The first ``num_batches * batch_size`` examples of a seeded permutation are tokenised (each
    gives at least one window) and the first ``num_batches * batch_size`` windows kept in order.
    """
    from secondorder.data.squad import build_features, iterate_batches

    need = int(num_batches) * int(batch_size)
    if need <= 0:
        raise ValueError("spectrum.num_batches and spectrum.batch_size must be positive")
    gen = torch.Generator().manual_seed(int(seed))
    pick = torch.randperm(len(records), generator=gen)[:need].tolist()
    if len(pick) < need:
        log.warning("only %d examples for %d batches of %d", len(pick), num_batches, batch_size)
    features = build_features(records.select(pick), tokenizer, fc, train=True, num_proc=num_proc)
    order = list(range(min(need, len(features))))
    return [
        {k: v.to(device) for k, v in b.items()}
        for b in iterate_batches(features, order, int(batch_size), tokenizer.pad_token_id)
    ]


def prepare_inputs(cfg: DictConfig) -> SpectrumInputs:
    """Tokenizer, model (at init or with a checkpoint's weights) and the fixed batches.

    A checkpoint is read with :func:`secondorder.runs.load_run`: model, data and tokenizer are
    the run's own. At initialisation the model is the one a run of ``cfg`` starts from (the
    run's own if ``run_dir`` holds one, else built from ``cfg`` with the same seeding).
    """
    from secondorder.runs import CONFIG, build_components, feature_config, load_run

    sc = cfg.spectrum
    checkpoint = resolve_checkpoint(sc.checkpoint, cfg.run_dir)
    if checkpoint is not None and not checkpoint.exists():
        raise FileNotFoundError(
            f"no checkpoint at {checkpoint} (spectrum.checkpoint={sc.checkpoint!r}); train the "
            "run first or set spectrum.checkpoint=null for the spectra at initialisation"
        )
    info: dict = {}
    diffs: list[str] = []
    if checkpoint is not None and checkpoint.parent.name == "checkpoints":
        run = load_run(checkpoint.parent.parent, checkpoint)
        diffs = _ignored_overrides(cfg, run.cfg)
        parts, data_cfg = run.components, run.cfg.data
        info = {k: run.checkpoint[k] for k in ("progress", "phase_optimizer") if k in run.checkpoint}
    elif checkpoint is None and (Path(cfg.run_dir) / CONFIG).exists():
        run = load_run(cfg.run_dir, None)
        diffs = _ignored_overrides(cfg, run.cfg)
        parts, data_cfg = run.components, run.cfg.data
    else:  # a run not trained yet, or a checkpoint file outside a run directory
        parts, data_cfg = build_components(cfg), cfg.data
        if checkpoint is not None:
            state = load_weights(parts.model, checkpoint, "the model of this config (pick the "
                                 "run's experiment and model overrides)")
            info = {k: state[k] for k in ("progress", "phase_optimizer") if k in state}
    model = parts.model
    fc = feature_config(data_cfg, model)
    device = _device(str(sc.get("device", "auto")))
    dtype = {"float32": torch.float32, "float64": torch.float64}[str(sc.get("dtype", "float32"))]
    model.to(device=device, dtype=dtype)
    split = str(sc.get("split", "train"))
    batches = hessian_batches(
        parts.records[split], parts.tokenizer, fc, num_batches=sc.num_batches,
        batch_size=sc.batch_size, seed=sc.seed, device=device, num_proc=data_cfg.get("num_proc"),
    )
    return SpectrumInputs(model, parts.tokenizer, batches, checkpoint, parts.tokenizer_source,
                          info, diffs)


def model_blocks(model, blocks_cfg=None) -> tuple[dict[str, list[str]], dict[str, list[str]], list[str]]:
    """``(globs, resolved parameter names, unmatched parameters)`` of a block partition.

    ``blocks_cfg`` None: :func:`default_albert_blocks`; else a mapping block -> glob(s).
    """
    from secondorder.curvature.blocks import default_albert_blocks, resolve_blocks

    if blocks_cfg is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # unmatched parameters are reported below
            blocks = default_albert_blocks(model)
    else:
        raw = _container(blocks_cfg)
        blocks = {str(k): [v] if isinstance(v, str) else [str(p) for p in v] for k, v in raw.items()}
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    resolved, unmatched = resolve_blocks(names, blocks)
    if unmatched:
        msg = f"parameters in no block (not analysed): {unmatched}"
        log.warning("%s", msg)
        warnings.warn(msg, stacklevel=2)
    return blocks, resolved, unmatched


def _loss_and_grad_norms(model, batches, resolved, average: bool):
    """The fixed loss, per-block gradient norms and the parameters the loss does not reach."""
    from secondorder.curvature.operators import hessian_mode

    named = dict(model.named_parameters())
    names = [n for ns in resolved.values() for n in ns]
    params = [named[n] for n in names]
    total = 0.0
    acc = dict.fromkeys(names)  # summed gradients (None: the loss does not reach it)
    with hessian_mode(model):
        for batch in batches:
            with torch.enable_grad():
                loss = qa_loss(model, batch)
                grads = torch.autograd.grad(loss, params, allow_unused=True)
            total += float(loss.detach())
            for n, g in zip(names, grads, strict=True):
                if g is not None:
                    acc[n] = (acc[n] if acc[n] is not None else 0) + g.detach().double()
    scale = 1.0 / len(batches) if average else 1.0
    unused = [n for n in names if acc[n] is None]
    norms = {
        b: math.sqrt(sum(float((acc[n] * scale).pow(2).sum()) for n in ns if acc[n] is not None))
        for b, ns in resolved.items()
    }
    return total * scale, norms, unused


# -- outputs ----------------------------------------------------------------------------------


def write_js_csv(path: str | Path, names: Sequence[str], matrix: np.ndarray) -> Path:
    path = Path(path)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["block", *names])
        for n, row in zip(names, np.asarray(matrix), strict=True):
            w.writerow([n, *(repr(float(x)) for x in row)])
    return path


def read_js_csv(path: str | Path) -> tuple[list[str], np.ndarray]:
    with Path(path).open(newline="") as f:
        rows = list(csv.reader(f))
    names = rows[0][1:]
    if [r[0] for r in rows[1:]] != names:
        raise ValueError(f"{path}: row and column names differ")
    return names, np.array([[float(x) for x in r[1:]] for r in rows[1:]], dtype=np.float64)



@dataclass
class SpectrumResult:
    out_dir: Path
    summary: dict
    spectra: Any  # secondorder.curvature.blockwise.BlockwiseSpectra
    names: list[str]
    js: np.ndarray
    unmatched: list[str]
    inputs: SpectrumInputs

    @property
    def js0(self) -> float | None:
        return self.summary["js0"]


def run_spectrum(cfg: DictConfig, *, progress: bool | None = None) -> SpectrumResult:
    """Blockwise spectra of ``cfg``'s model (see the module docstring); returns what it wrote."""
    from secondorder.curvature.blockwise import blockwise_spectra
    from secondorder.curvature.divergence import JS_MAX, js0, pairwise_js

    t0 = time.time()
    sc = cfg.spectrum
    if sc.get("threads"):
        torch.set_num_threads(int(sc.threads))
    progress = bool(sc.get("progress", True)) if progress is None else progress
    out_dir = Path(str(sc.out_root)) / str(sc.name)
    inputs = prepare_inputs(cfg)
    model = inputs.model
    globs, resolved, unmatched = model_blocks(model, sc.get("blocks"))
    average = bool(sc.get("average", True))
    loss, grad_norms, unused = _loss_and_grad_norms(model, inputs.batches, resolved, average)
    unused_set = set(unused)
    dropped = [b for b, ns in resolved.items() if all(n in unused_set for n in ns)]
    if dropped:
        msg = f"blocks on which the loss does not depend (zero Hessian), dropped: {dropped}"
        log.warning("%s", msg)
        warnings.warn(msg, stacklevel=2)
    blocks = {b: globs[b] for b in resolved if b not in dropped}
    if not blocks:
        raise ValueError("no block left to analyse")
    dims = {b: sum(dict(model.named_parameters())[n].numel() for n in resolved[b]) for b in blocks}
    if sc.reorthogonalize:
        gb = 8 * int(sc.num_steps) * sum(dims.values()) / 1e9
        log.info("re-orthogonalised Lanczos bases: about %.2f GB (float64)", gb)
    log.info("%d blocks, %d windows in %d batches, loss %.6g", len(blocks),
             sum(len(b["input_ids"]) for b in inputs.batches), len(inputs.batches), loss)
    grid_kind = str(sc.get("grid", "uniform"))
    if grid_kind not in ("uniform", "adaptive"):
        raise ValueError(f"spectrum.grid must be 'uniform' or 'adaptive', got {grid_kind!r}")
    spectra = blockwise_spectra(
        model,
        qa_loss,
        inputs.batches,
        blocks,
        num_steps=int(sc.num_steps),
        num_runs=int(sc.num_runs),
        seed=int(sc.seed),
        grid="adaptive" if grid_kind == "adaptive" else None,
        grid_points=int(sc.grid_points),
        sigma2=float(sc.sigma2),
        scale_by_range=bool(sc.get("scale_by_range", False)),
        reorthogonalize=bool(sc.reorthogonalize),
        average=average,
        progress=progress,
        desc=f"SLQ, {len(blocks)} blocks",
    )
    names, mat = pairwise_js(spectra.densities, spectra.grid)
    value = js0(mat) if len(names) >= 2 else None

    out_dir.mkdir(parents=True, exist_ok=True)
    est = spectra.blocks
    np.savez_compressed(
        out_dir / "densities.npz",
        grid=spectra.grid,
        names=np.array(names),
        densities=np.stack([est[b].density for b in names]),
        lambda_min=np.array([est[b].lambda_min for b in names]),
        lambda_max=np.array([est[b].lambda_max for b in names]),
        dims=np.array([est[b].dim for b in names]),
    )
    eig = {
        "lambda_min": min(e.lambda_min for e in est.values()),
        "lambda_max": max(e.lambda_max for e in est.values()),
        "sigma2": spectra.sigma2,
        "blocks": {
            b: {
                "dim": est[b].dim,
                "lambda_min": est[b].lambda_min,
                "lambda_max": est[b].lambda_max,
                "grad_norm": grad_norms[b],
                "params": est[b].params,
                "nodes": [r.nodes.tolist() for r in est[b].runs],
                "weights": [r.weights.tolist() for r in est[b].runs],
            }
            for b in names
        },
    }
    write_json(out_dir / "eigenvalues.json", eig, indent=1)
    write_js_csv(out_dir / "js.csv", names, mat)
    tag = checkpoint_tag(sc.checkpoint)
    label = f"{cfg.experiment_name}/{cfg.run_name} ({tag})"
    if len(names) >= 2:
        heatmap_figure(names, mat, out_dir / "js_heatmap.png", vmax=JS_MAX,
                       title=f"{label}: JS distance, JS0 = {value:.4f}")
    else:  # a single block: nothing to compare, still write the (1x1) heatmap
        heatmap_figure(names, mat, out_dir / "js_heatmap.png", vmax=JS_MAX, title=label)
    density_grid_figure(spectra, out_dir / "densities.png",
                        title=f"{label}: blockwise Hessian spectra, loss {loss:.4g}")
    n_params = sum(p.numel() for p in model.parameters())
    summary = {
        "name": str(sc.name),
        "js0": value,
        "num_blocks": len(names),
        "blocks": names,
        "loss": loss,
        "checkpoint": str(inputs.checkpoint) if inputs.checkpoint is not None else None,
        "at": tag,
        "checkpoint_info": inputs.checkpoint_info,
        "experiment_name": str(cfg.experiment_name),
        "run_name": str(cfg.run_name),
        "run_dir": str(cfg.run_dir),
        "tokenizer": inputs.tokenizer_source,
        "config_differences_from_run": inputs.config_differences,
        "num_parameters": n_params,
        "num_analysed_parameters": int(sum(dims.values())),
        "num_windows": int(sum(len(b["input_ids"]) for b in inputs.batches)),
        "lambda_min": eig["lambda_min"],
        "lambda_max": eig["lambda_max"],
        "js": {
            "variant": "standard JS distance of the cell probabilities, natural log "
                       f"(at most sqrt(ln 2) = {JS_MAX:.4f}); JS0 = mean over distinct pairs",
            "grid": grid_kind,
            "grid_size": int(spectra.grid.size),
            "grid_range": [float(spectra.grid[0]), float(spectra.grid[-1])],
        },
        "unmatched_params": unmatched,
        "unused_params": unused,
        "dropped_blocks": dropped,
        "settings": _container(sc),
        "seed": int(cfg.seed),
        "device": str(next(model.parameters()).device),
        "dtype": str(next(model.parameters()).dtype),
        "files": list(OUTPUT_FILES),
        "wall_time_s": time.time() - t0,
    }
    write_json(out_dir / "summary.json", summary, indent=1)
    return SpectrumResult(out_dir, summary, spectra, names, mat, unmatched, inputs)


def js0_report(out_dirs: Sequence[str | Path]) -> str:
    """One line per output folder: JS0, blocks, loss, checkpoint (from its ``summary.json``)."""
    lines = []
    for d in out_dirs:
        s = json.loads((Path(d) / "summary.json").read_text())
        js = "n/a" if s["js0"] is None else f"{s['js0']:.4f}"
        lines.append(
            f"JS0 {js}  ({s['at']}: {s['num_blocks']} blocks, loss {s['loss']:.4f}, "
            f"lambda_max {s['lambda_max']:.4g})  {d}"
        )
    return "\n".join(lines)
