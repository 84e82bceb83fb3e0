"""`run(cfg)`: configs → data, tokenizer, model → Trainer → files in the run directory."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from secondorder.data.squad import FeatureConfig, build_features, load_records
from secondorder.data.tokenizer import build_tokenizer
from secondorder.models.albert import build_model
from secondorder.train.trainer import Trainer

log = logging.getLogger(__name__)


def feature_config(data_cfg, model) -> FeatureConfig:
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


def run_tokenizer(cfg: DictConfig, train_records, run_dir: Path):
    """The run's tokenizer, saved in the run directory and reused from there on resume.

    Training a WordPiece vocabulary is not deterministic across processes (the `tokenizers`
    trainer breaks ties between equally frequent merges in hash order), so a resumed run
    must not retrain it: the same ids must mean the same pieces as before the interruption.
    """
    from transformers import AutoTokenizer

    saved = run_dir / "tokenizer"
    if cfg.resume and (saved / "tokenizer_config.json").exists():
        return AutoTokenizer.from_pretrained(str(saved))
    tokenizer = build_tokenizer(cfg.model, train_records, cfg.cache_dir)
    tokenizer.save_pretrained(str(saved))
    return tokenizer


def run(cfg: DictConfig) -> dict[str, Any]:
    """Train and evaluate as `cfg` says; returns the last evaluation record."""
    from accelerate.utils import set_seed

    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    resolved = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(resolved))

    set_seed(int(cfg.seed))
    records = load_records(cfg.data)
    tokenizer = run_tokenizer(cfg, records["train"], run_dir)
    set_seed(int(cfg.seed))  # the model's initial weights depend on the seed alone
    model = build_model(cfg.model, tokenizer)
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
