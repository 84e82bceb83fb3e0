"""Turn start/end logits of tokenized windows into SQuAD 2.0 answers.

The procedure follows the usual extractive-QA post-processing with a no-answer option (as in
the Hugging Face question-answering example, ``version_2_with_negative``):

* every example is split into one or more features (windows); each feature has an
  ``offset_mapping`` giving, for every token, the ``(start, end)`` character span in the context,
  or ``None`` for tokens outside the context (question, special tokens, padding);
* the null (no-answer) score of a feature is ``start[cls] + end[cls]``; the example's null score
  is the minimum over its features;
* candidate spans pair the ``n_best_size`` highest start logits with the ``n_best_size`` highest
  end logits of each feature; a pair is refused if either token is outside the context, if
  ``end < start``, if it is longer than ``max_answer_length`` tokens, or if it covers no
  characters (empty text); its score is ``start_logit + end_logit``;
* the answer is ``""`` when ``null_score - best_span_score > null_score_diff_threshold`` (or when
  no valid span exists), otherwise the text of the best span.

No-answer probabilities are ``sigmoid(null_score - best_span_score)`` (1.0 without a valid span).
This is a monotone function of the score difference, so the official best-threshold search can
be run on it; a threshold ``t`` on these probabilities is the same decision as the score
difference threshold ``logit(t) = log(t / (1 - t))``: ``na_prob_thresh=0.5`` <-> a score
difference threshold of 0.0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "Candidate",
    "na_prob_to_score_diff",
    "nbest_predictions",
    "postprocess_predictions",
    "score_diff_to_na_prob",
]


@dataclass(frozen=True)
class Candidate:
    """One candidate answer span of an example."""

    text: str
    score: float
    start_logit: float
    end_logit: float
    feature_index: int
    start_token: int
    end_token: int
    char_start: int
    char_end: int


def score_diff_to_na_prob(diff: float) -> float:
    """Numerically stable logistic function: ``1 / (1 + exp(-diff))``."""
    if diff >= 0:
        return 1.0 / (1.0 + math.exp(-diff))
    e = math.exp(diff)
    return e / (1.0 + e)


def na_prob_to_score_diff(p: float) -> float:
    """Inverse of :func:`score_diff_to_na_prob` (``logit(p)``), for translating thresholds."""
    if not 0.0 < p < 1.0:
        return math.inf if p >= 1.0 else -math.inf
    return math.log(p / (1.0 - p))


def _as_2d_array(x: Any, name: str) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor (possibly bf16 / on GPU)
        x = x.detach().float().cpu().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must have shape (n_features, seq_len), got {arr.shape}")
    return arr


def _valid_token_mask(offsets: Sequence[Any] | None, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-token context mask and (seq_len, 2) char offsets (-1 where not context)."""
    mask = np.zeros(seq_len, dtype=bool)
    chars = np.full((seq_len, 2), -1, dtype=np.int64)
    if offsets is None:
        return mask, chars
    for i, off in enumerate(offsets[:seq_len]):
        if off is None or len(off) < 2 or off[0] is None or off[1] is None:
            continue
        mask[i] = True
        chars[i, 0] = int(off[0])
        chars[i, 1] = int(off[1])
    return mask, chars


def _top_k(values: np.ndarray, k: int) -> np.ndarray:
    # Stable sort: among equal logits the earlier token comes first.
    return np.argsort(-values, kind="stable")[:k]


def _collect(
    examples: Iterable[Mapping[str, Any]],
    features: Iterable[Mapping[str, Any]],
    start_logits: Any,
    end_logits: Any,
    n_best_size: int,
    max_answer_length: int,
) -> tuple[dict[str, float], dict[str, list[Candidate]], list[str]]:
    """Null score and score-sorted valid candidates (all of them) for every example."""
    if n_best_size < 1 or max_answer_length < 1:
        raise ValueError("n_best_size and max_answer_length must be >= 1")
    starts = _as_2d_array(start_logits, "start_logits")
    ends = _as_2d_array(end_logits, "end_logits")
    if starts.shape != ends.shape:
        raise ValueError(f"start_logits {starts.shape} and end_logits {ends.shape} differ")

    contexts: dict[str, str] = {}
    order: list[str] = []
    for ex in examples:
        qid = ex["id"]
        if qid in contexts:
            raise ValueError(f"duplicate example id {qid!r}")
        contexts[qid] = ex["context"]
        order.append(qid)

    features = list(features)
    if len(features) != starts.shape[0]:
        raise ValueError(f"{len(features)} features but logits for {starts.shape[0]} features")
    seq_len = starts.shape[1]
    null_score: dict[str, float] = {}
    candidates: dict[str, list[Candidate]] = {qid: [] for qid in order}
    for f_idx, feat in enumerate(features):
        qid = feat["example_id"]
        if qid not in contexts:
            raise ValueError(f"feature #{f_idx} refers to unknown example id {qid!r}")
        s_log, e_log = starts[f_idx], ends[f_idx]
        cls = feat.get("cls_index", 0)
        cls = 0 if cls is None else int(cls)
        feat_null = float(s_log[cls] + e_log[cls])
        if qid not in null_score or feat_null < null_score[qid]:
            null_score[qid] = feat_null

        mask, chars = _valid_token_mask(feat["offset_mapping"], seq_len)
        s_idx = _top_k(s_log, n_best_size)
        e_idx = _top_k(e_log, n_best_size)
        si, ei = np.meshgrid(s_idx, e_idx, indexing="ij")  # (k, k) grids of token indices
        length = ei - si + 1
        ok = mask[si] & mask[ei] & (length >= 1) & (length <= max_answer_length)
        ok &= chars[ei, 1] > chars[si, 0]  # the span must cover at least one character
        if not ok.any():
            continue
        context = contexts[qid]
        for s, e in zip(si[ok].tolist(), ei[ok].tolist(), strict=True):
            c0, c1 = int(chars[s, 0]), int(chars[e, 1])
            candidates[qid].append(
                Candidate(
                    text=context[c0:c1],
                    score=float(s_log[s] + e_log[e]),
                    start_logit=float(s_log[s]),
                    end_logit=float(e_log[e]),
                    feature_index=f_idx,
                    start_token=s,
                    end_token=e,
                    char_start=c0,
                    char_end=c1,
                )
            )

    no_features = [q for q in order if q not in null_score]
    if no_features:
        raise ValueError(
            f"{len(no_features)} examples have no features; first ids: {no_features[:5]}"
        )
    for qid in order:
        candidates[qid].sort(key=lambda c: -c.score)  # stable: ties keep feature/token order
    return null_score, candidates, order


def nbest_predictions(
    examples: Iterable[Mapping[str, Any]],
    features: Iterable[Mapping[str, Any]],
    start_logits: Any,
    end_logits: Any,
    *,
    n_best_size: int = 20,
    max_answer_length: int = 30,
) -> tuple[dict[str, list[Candidate]], dict[str, float]]:
    """The ``n_best_size`` best valid spans of every example (best first) and its null score."""
    null_score, candidates, order = _collect(
        examples, features, start_logits, end_logits, n_best_size, max_answer_length
    )
    return {q: candidates[q][:n_best_size] for q in order}, null_score


def postprocess_predictions(
    examples: Iterable[Mapping[str, Any]],
    features: Iterable[Mapping[str, Any]],
    start_logits: Any,
    end_logits: Any,
    *,
    n_best_size: int = 20,
    max_answer_length: int = 30,
    null_score_diff_threshold: float = 0.0,
) -> tuple[dict[str, str], dict[str, float]]:
    """Predicted answer text and no-answer probability for every example.

    ``examples``: rows with ``id`` and ``context`` (a list of dicts or a ``datasets.Dataset``).
    ``features``: rows with ``example_id`` and ``offset_mapping`` (``None`` for non-context
    tokens), optionally ``cls_index`` (default 0). ``start_logits`` / ``end_logits``: arrays or
    tensors of shape ``(n_features, seq_len)``.

    Returns ``(predictions, na_probs)``, both keyed by example id in example order. The
    prediction is ``""`` when ``null_score - best_span_score > null_score_diff_threshold`` or no
    valid span exists. ``na_probs[id] = sigmoid(null_score - best_span_score)`` (1.0 without a
    valid span), so ``na_prob > sigmoid(threshold)`` is exactly the no-answer decision.
    """
    null_score, candidates, order = _collect(
        examples, features, start_logits, end_logits, n_best_size, max_answer_length
    )
    predictions: dict[str, str] = {}
    na_probs: dict[str, float] = {}
    for qid in order:
        if not candidates[qid]:
            predictions[qid] = ""
            na_probs[qid] = 1.0
            continue
        best = candidates[qid][0]
        diff = null_score[qid] - best.score
        predictions[qid] = "" if diff > null_score_diff_threshold else best.text
        na_probs[qid] = score_diff_to_na_prob(diff)
    return predictions, na_probs
