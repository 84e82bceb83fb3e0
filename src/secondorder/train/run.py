"""`run(cfg)`: configs → data, tokenizer, model → Trainer → files in the run directory."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from secondorder.data.squad import build_features
from secondorder.runs import (
    CHECKPOINTS,
    CONFIG,
    RunError,
    build_components,
    check_fresh_start,
    feature_config,
)
from secondorder.train.checks import check_resume, validate
from secondorder.train.distributed import World
from secondorder.train.trainer import Trainer

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict[str, Any]:
    """Train and evaluate as `cfg` says; returns the last evaluation record.

    Before anything is written: every value is checked (secondorder.train.checks), a resume
    must not change what is trained, and a directory holding a run is only started over with
    overwrite=true. A resumed run keeps its config.yaml as it was.
    """
    run_dir = Path(cfg.run_dir)
    resolved = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    validate(resolved)
    world = _start_processes(cfg)
    resuming = bool(cfg.resume) and (run_dir / CHECKPOINTS / "last.pt").exists()
    if resuming:
        check_resume(run_dir, resolved)
    # every rank checks (so that every rank stops on bad input); rank 0 writes
    check_fresh_start(run_dir, resume=bool(cfg.resume), overwrite=bool(cfg.get("overwrite")))
    failure = None
    if world.main:
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            if not resuming:
                (run_dir / CONFIG).write_text(OmegaConf.to_yaml(resolved))
            parts = build_components(cfg, run_dir, reuse_tokenizer=bool(cfg.resume),
                                     save_tokenizer=True)
        except Exception as err:  # the other ranks must stop too, not wait for rank 0
            failure = err
    said = world.broadcast(None if failure is None else f"{type(failure).__name__}: {failure}")
    if failure is not None:
        raise failure
    if said is not None:
        raise RunError(f"rank 0 stopped before training ({said})")
    if not world.main:  # rank 0's tokenizer: a locally trained vocabulary differs per process
        parts = build_components(cfg, run_dir, reuse_tokenizer=True)
    records, tokenizer, model = parts.records, parts.tokenizer, parts.model
    fc = feature_config(cfg.data, model)
    num_proc = cfg.data.get("num_proc")
    train_features = build_features(records["train"], tokenizer, fc, train=True, num_proc=num_proc)
    eval_features = build_features(records["validation"], tokenizer, fc, train=False, num_proc=num_proc)
    log.info("%d train features from %d examples; %d eval features from %d examples",
             len(train_features), len(records["train"]), len(eval_features),
             len(records["validation"]))
    trainer = Trainer(cfg, model, tokenizer, train_features, records["validation"], eval_features,
                      run_dir, resolved)
    return trainer.fit()


def _start_processes(cfg: DictConfig) -> World:
    """Open the process group when launched by torchrun / accelerate launch / srun (their
    environment variables; accelerate picks gloo on CPU, NCCL on GPUs) and return this rank."""
    from accelerate import PartialState

    PartialState(cpu=bool(cfg.trainer.cpu))
    world = World.current()
    if world.distributed:
        log.info("data parallel: rank %d of %d, global batch %d (%d per rank)", world.rank,
                 world.size, cfg.trainer.batch_size, cfg.trainer.batch_size // world.size)
        if not world.main:  # one copy of the run's messages: rank 0's
            logging.getLogger("secondorder").setLevel(logging.WARNING)
    return world
