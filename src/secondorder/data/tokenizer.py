"""Tokenizers: the model's own (Hub, local directory or installed package), or one trained locally.

The local tokenizer is a lower-casing WordPiece (BERT-style pre-tokenisation, `[CLS] q [SEP] c
[SEP]` pairs with token types) trained with the `tokenizers` library and wrapped as a
`PreTrainedTokenizerFast`, so that offsets, overflowing windows and `sequence_ids` behave like
the Hub tokenizers. ALBERT's own tokenizer is a SentencePiece unigram; we do not build ours
through `AlbertTokenizer(vocab_file=...)` because in transformers 5.x that maps every word of
a raw SentencePiece model to `<unk>`. The tokenizer is cached on disk under a key that hashes
its corpus and settings, so a second run reuses it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path

from secondorder.files import publish_directory
from secondorder.hub import hub_load

log = logging.getLogger(__name__)

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def train_wordpiece(texts: Iterable[str], vocab_size: int, min_frequency: int = 2):
    """Train a fast WordPiece tokenizer on `texts`; returns a `PreTrainedTokenizerFast`."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from tokenizers.trainers import WordPieceTrainer
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = WordPieceTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=SPECIAL_TOKENS
    )
    tok.train_from_iterator(texts, trainer)
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )


def corpus_key(texts: list[str], settings: Mapping) -> str:
    """A short hash of the corpus and tokenizer settings, naming the cache directory."""
    digest = hashlib.sha256(json.dumps(dict(settings), sort_keys=True).encode())
    for text in texts:
        digest.update(text.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def local_tokenizer(texts: Iterable[str], *, vocab_size: int, cache_dir: str | Path):
    """The locally trained tokenizer for this corpus, loaded from `cache_dir` when present."""
    from transformers import PreTrainedTokenizerFast

    texts = list(texts)
    settings = {"kind": "wordpiece", "vocab_size": vocab_size, "lowercase": True}
    path = Path(cache_dir).expanduser() / f"wordpiece-{vocab_size}-{corpus_key(texts, settings)}"
    if (path / "tokenizer.json").exists():
        return PreTrainedTokenizerFast.from_pretrained(str(path))
    log.info("training a WordPiece tokenizer (vocab %d) on %d texts", vocab_size, len(texts))
    tokenizer = train_wordpiece(texts, vocab_size)
    # several jobs of a multirun may train the same tokenizer at once
    publish_directory(path, lambda tmp: tokenizer.save_pretrained(str(tmp)), "tokenizer.json")
    return PreTrainedTokenizerFast.from_pretrained(str(path))


def pretrained_tokenizer(name_or_path: str, local_files_only: bool = False):
    """The tokenizer of a Hub model or local directory (fast tokenizer required for offsets).

    `local_files_only`: a directory we extracted ourselves; it is loaded without the Hub probe.
    """
    from transformers import AutoTokenizer

    if local_files_only:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, use_fast=True, local_files_only=True)
    else:
        with hub_load(
            f"tokenizer '{name_or_path}'",
            "Download it where the Hub is reachable (it is cached under HF_HOME), pass a local "
            "directory as model.name_or_path, or run the embedded default with model=albert_tiny.",
        ):
            tokenizer = AutoTokenizer.from_pretrained(name_or_path, use_fast=True)
    if not tokenizer.is_fast:
        raise ValueError(
            f"tokenizer of '{name_or_path}' is not a fast tokenizer; SQuAD features need offset "
            "mappings. Install `tokenizers` or pick a model that ships tokenizer.json."
        )
    return tokenizer


def build_tokenizer(model_cfg: Mapping, train_records, cache_dir: str | Path):
    """The tokenizer the `model` config asks for: the model's own, or a locally trained one."""
    from secondorder.data.squad import corpus_texts
    from secondorder.models.packaged import pretrained_source

    spec = model_cfg["tokenizer"]
    if spec["kind"] == "pretrained":
        if spec.get("name_or_path"):
            return pretrained_tokenizer(spec["name_or_path"])
        return pretrained_tokenizer(*pretrained_source(model_cfg, cache_dir))
    if spec["kind"] == "local":
        return local_tokenizer(
            corpus_texts(train_records), vocab_size=int(spec["vocab_size"]), cache_dir=cache_dir
        )
    raise ValueError(f"model.tokenizer.kind must be 'pretrained' or 'local'; got {spec['kind']!r}")
