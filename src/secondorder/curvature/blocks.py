"""Partitions of a model's parameters into named blocks (glob patterns over parameter names).

The spectra of `002_*` are taken per block; the curvature telemetry of the trainer reports
per block too. The default partition is ALBERT's: embeddings, the embedding projection, and per
layer query, key, value, attention output, FFN in / out and the LayerNorms, then the task head.
"""

from __future__ import annotations

import fnmatch
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence

from torch import nn

__all__ = ["resolve_blocks", "default_albert_blocks", "role_blocks"]


def resolve_blocks(
    names: Iterable[str], blocks: Mapping[str, Sequence[str]]
) -> tuple[dict[str, list[str]], list[str]]:
    """Match parameter names against ``blocks`` (block name -> globs).

    Returns ``({block: [parameter names]}, unmatched names)``. Raises ``ValueError`` when a
    parameter matches more than one block or a block matches no parameter.
    """
    names = list(names)
    out: dict[str, list[str]] = {b: [] for b in blocks}
    owner: dict[str, str] = {}
    for n in names:
        for b, pats in blocks.items():
            if any(fnmatch.fnmatchcase(n, p) for p in pats):
                if n in owner:
                    raise ValueError(f"parameter {n!r} matches blocks {owner[n]!r} and {b!r}")
                owner[n] = b
                out[b].append(n)
    empty = [b for b, ns in out.items() if not ns]
    if empty:
        raise ValueError(f"blocks match no parameter: {empty}")
    return out, [n for n in names if n not in owner]


_ALBERT_LAYER = re.compile(r"albert_layer_groups\.(\d+)\.albert_layers\.(\d+)\.")

_ALBERT_LAYER_ROLES = (
    ("query", "attention.query.*"),
    ("key", "attention.key.*"),
    ("value", "attention.value.*"),
    ("attention_output", "attention.dense.*"),
    ("attention_layernorm", "attention.LayerNorm.*"),
    ("ffn_in", "ffn.*"),
    ("ffn_out", "ffn_output.*"),
    ("ffn_layernorm", "full_layer_layer_norm.*"),
)


def default_albert_blocks(model: nn.Module, *, strict: bool = False) -> dict[str, list[str]]:
    """Default block partition of a Hugging Face ALBERT (``AlbertModel`` or a task model).

    Blocks (each takes a module's weight and bias together):
    ``word_embeddings``, ``position_embeddings``, ``token_type_embeddings``,
    ``embedding_layernorm``, ``embedding_projection`` (``embedding_hidden_mapping_in``), and for
    the shared layer ``query``, ``key``, ``value``, ``attention_output`` (``attention.dense``),
    ``attention_layernorm``, ``ffn_in`` (``ffn``), ``ffn_out`` (``ffn_output``),
    ``ffn_layernorm`` (``full_layer_layer_norm``), then ``pooler`` (``AlbertModel``) and
    ``qa_outputs`` (question answering) when present. With several layer groups / inner layers
    the shared-layer blocks are prefixed ``group{g}.layer{i}.``.

    Values are glob lists for :func:`resolve_blocks` / :func:`blockwise_spectra`. Parameters
    matched by no block are reported with a warning (``strict=True``: ``ValueError``).
    """
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    blocks: dict[str, list[str]] = {}
    top = (
        ("word_embeddings", "*embeddings.word_embeddings.*"),
        ("position_embeddings", "*embeddings.position_embeddings.*"),
        ("token_type_embeddings", "*embeddings.token_type_embeddings.*"),
        ("embedding_layernorm", "*embeddings.LayerNorm.*"),
        ("embedding_projection", "*encoder.embedding_hidden_mapping_in.*"),
    )
    for b, pat in top:
        if any(fnmatch.fnmatchcase(n, pat) for n in names):
            blocks[b] = [pat]
    layers = sorted({(int(m[1]), int(m[2])) for n in names if (m := _ALBERT_LAYER.search(n))})
    for g, i in layers:
        prefix = "" if len(layers) == 1 else f"group{g}.layer{i}."
        for role, pat in _ALBERT_LAYER_ROLES:
            glob = f"*albert_layer_groups.{g}.albert_layers.{i}.{pat}"
            if any(fnmatch.fnmatchcase(n, glob) for n in names):
                blocks[prefix + role] = [glob]
    for b, pat in (("pooler", "*pooler.*"), ("qa_outputs", "*qa_outputs.*")):
        if any(fnmatch.fnmatchcase(n, pat) for n in names):
            blocks[b] = [pat]
    _, unmatched = resolve_blocks(names, blocks)
    if unmatched:
        msg = f"default_albert_blocks: parameters in no block: {unmatched}"
        if strict:
            raise ValueError(msg)
        warnings.warn(msg, stacklevel=2)
    return blocks


# Roles of a parameter in an ALBERT or BERT-family encoder (first match wins); the layer index
# is dropped, so a role pools its tensors over all layers.
_ROLES = (
    ("word_embeddings", r"embeddings\.word_embeddings\."),
    ("position_embeddings", r"embeddings\.position_embeddings\."),
    ("token_type_embeddings", r"embeddings\.token_type_embeddings\."),
    ("embedding_layernorm", r"embeddings\.LayerNorm\."),
    ("embedding_projection", r"embedding_hidden_mapping_in\."),
    ("query", r"attention\.(self\.)?query\."),
    ("key", r"attention\.(self\.)?key\."),
    ("value", r"attention\.(self\.)?value\."),
    ("attention_output", r"attention\.(output\.)?dense\."),
    ("attention_layernorm", r"attention\.(output\.)?LayerNorm\."),
    ("ffn_in", r"(\.ffn\.|intermediate\.dense\.)"),
    ("ffn_out", r"(ffn_output\.|\.output\.dense\.)"),
    ("ffn_layernorm", r"(full_layer_layer_norm\.|\.output\.LayerNorm\.)"),
    ("pooler", r"pooler\."),
    ("qa_outputs", r"qa_outputs\."),
)


def role_blocks(names: Iterable[str]) -> dict[str, list[str]]:
    """Parameter names grouped by their role in an ALBERT / BERT encoder, pooled over layers.

    A dozen blocks whatever the depth (embeddings, query, key, value, attention output, FFN in /
    out, the LayerNorms, the head), for per-block training telemetry; names that fit no role go
    to ``other``. Returns only non-empty blocks, in the order above.
    """
    out: dict[str, list[str]] = {role: [] for role, _ in _ROLES}
    out["other"] = []
    patterns = [(role, re.compile(p)) for role, p in _ROLES]
    for n in names:
        role = next((r for r, pat in patterns if pat.search(n)), "other")
        out[role].append(n)
    return {b: ns for b, ns in out.items() if ns}
