"""Question-answering models: a pretrained encoder from the Hub / a local directory, or a small
ALBERT built from a config for the embedded default.

`model.name_or_path` takes any encoder the Auto classes know (ALBERT, BERT, RoBERTa, MiniLM,
...): a checkpoint with a QA head loads it, a base checkpoint gets a freshly initialised
span head (transformers logs which weights are new).
"""

from __future__ import annotations

from collections.abc import Mapping

from secondorder.hub import hub_load


def build_model(model_cfg: Mapping, tokenizer):
    """The `*ForQuestionAnswering` model described by the `model` config group."""
    from transformers import AlbertConfig, AlbertForQuestionAnswering, AutoModelForQuestionAnswering

    attn = model_cfg.get("attn_implementation", "sdpa")
    if model_cfg.get("pretrained", False):
        name = model_cfg["name_or_path"]
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
    return AlbertForQuestionAnswering(config)
