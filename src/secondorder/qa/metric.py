"""SQuAD 2.0 scoring, written to give the same numbers as the official v2.0 evaluation script.

The ``evaluate`` library's ``squad_v2`` metric downloads its code from the Hub at run time,
which is impossible on offline machines, so the scoring lives here.

Behaviour matches the official script in every number it reports (exact / F1 as percentages,
HasAns / NoAns breakdowns, the no-answer threshold and the best-threshold search). One deliberate
difference: the official script prints "Missing prediction for ..." and skips such questions;
here a missing prediction, a prediction for an unknown id or a missing no-answer probability
raises ``ValueError`` so that nothing is dropped silently.

Command line (same arguments as the official script, minus the plotting options)::

    python -m secondorder.qa.metric DATA.json PREDICTIONS.json \
        [--na-prob-file NA_PROBS.json] [--na-prob-thresh 1.0] [--out-file OUT.json]
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import string
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "exact_match",
    "f1_score",
    "find_best_thresh",
    "gold_answers",
    "main",
    "normalize_answer",
    "squad_v2_scores",
]

_PUNCT = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def normalize_answer(s: str) -> str:
    """Lower case, drop ASCII punctuation, drop the articles a/an/the, collapse white space."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCT)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def _tokens(s: str) -> list[str]:
    return normalize_answer(s).split() if s else []


def exact_match(gold: str, pred: str) -> int:
    """1 if the normalised strings are equal, else 0."""
    return int(normalize_answer(gold) == normalize_answer(pred))


def f1_score(gold: str, pred: str) -> float:
    """Bag-of-tokens F1 between normalised gold and prediction.

    If either side has no tokens the score is 1 when both are empty and 0 otherwise.
    """
    gold_toks = _tokens(gold)
    pred_toks = _tokens(pred)
    if not gold_toks or not pred_toks:
        return float(gold_toks == pred_toks)
    overlap = sum((collections.Counter(gold_toks) & collections.Counter(pred_toks)).values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(pred_toks)
    recall = overlap / len(gold_toks)
    return 2 * precision * recall / (precision + recall)


def gold_answers(record: Mapping[str, Any]) -> list[str]:
    """Gold texts of a record whose normalised form is non-empty, or ``[""]`` if there are none."""
    golds = [t for t in record["answers"]["text"] if normalize_answer(t)]
    return golds or [""]


def _has_answer(record: Mapping[str, Any]) -> bool:
    # As officially: a question is "HasAns" when its answer list is non-empty.
    return bool(record["answers"]["text"])


def _check_ids(kind: str, given: Iterable[str], expected: Sequence[str]) -> None:
    given_set = set(given)
    expected_set = set(expected)
    missing = [q for q in expected if q not in given_set]
    if missing:
        raise ValueError(
            f"{len(missing)} of {len(expected)} questions have no {kind}; first ids: {missing[:5]}"
        )
    extra = [q for q in given if q not in expected_set]
    if extra:
        raise ValueError(
            f"{len(extra)} {kind}s are for ids that are not in the data; first ids: {extra[:5]}"
        )


def find_best_thresh(
    preds: Mapping[str, str],
    scores: Mapping[str, float],
    na_probs: Mapping[str, float],
    has_ans: Mapping[str, bool],
) -> tuple[float, float]:
    """Best achievable score (percentage) over no-answer thresholds, and that threshold.

    Questions are visited in increasing ``na_prob`` (ties keep the order of ``na_probs``). The
    running score starts at the number of unanswerable questions (everything predicted
    no-answer); letting an answerable question answer adds its raw score, letting an unanswerable
    one answer costs 1 if its prediction is non-empty. The threshold of the best running score is
    kept; it stays 0.0 if nothing beats the start.
    """
    cur = sum(1 for v in has_ans.values() if not v)
    best = cur
    best_thresh = 0.0
    for qid in sorted(na_probs, key=lambda k: na_probs[k]):
        if qid not in scores:
            continue
        if has_ans[qid]:
            cur += scores[qid]
        elif preds[qid]:
            cur -= 1
        if cur > best:
            best = cur
            best_thresh = na_probs[qid]
    return 100.0 * best / len(scores), best_thresh


def _eval_dict(exact: Mapping[str, float], f1: Mapping[str, float], qids: Sequence[str]) -> dict:
    total = len(qids)
    return {
        "exact": 100.0 * sum(exact[q] for q in qids) / total,
        "f1": 100.0 * sum(f1[q] for q in qids) / total,
        "total": total,
    }


def squad_v2_scores(
    records: Iterable[Mapping[str, Any]],
    predictions: Mapping[str, str],
    na_probs: Mapping[str, float] | None = None,
    na_prob_thresh: float = 1.0,
) -> dict[str, float]:
    """Official SQuAD 2.0 scores of ``predictions`` (id -> text) on flat ``records``.

    Returns percentages under the official keys ``exact, f1, total``, ``HasAns_*`` / ``NoAns_*``
    (only for non-empty subsets) and, when ``na_probs`` is given, ``best_exact,
    best_exact_thresh, best_f1, best_f1_thresh``. A question whose ``na_prob`` exceeds
    ``na_prob_thresh`` counts as predicted no-answer (score 1 if unanswerable, else 0). With
    ``na_probs=None`` every question gets probability 0, as in the official script.
    """
    records = list(records)
    if not records:
        raise ValueError("no records to score")
    qids = [r["id"] for r in records]
    if len(set(qids)) != len(qids):
        raise ValueError("duplicate question ids in records")
    _check_ids("prediction", predictions, qids)
    for qid in qids:
        if not isinstance(predictions[qid], str):
            raise ValueError(f"prediction for {qid!r} is not a string: {predictions[qid]!r}")
    probs = {q: 0.0 for q in qids} if na_probs is None else na_probs
    _check_ids("no-answer probability", probs, qids)
    for qid in qids:
        p = probs[qid]
        if isinstance(p, bool) or not isinstance(p, int | float) or p != p:
            raise ValueError(f"no-answer probability for {qid!r} is not a number: {p!r}")

    has_ans = {r["id"]: _has_answer(r) for r in records}
    exact_raw: dict[str, float] = {}
    f1_raw: dict[str, float] = {}
    for rec in records:
        qid = rec["id"]
        golds = gold_answers(rec)
        pred = predictions[qid]
        exact_raw[qid] = max(exact_match(g, pred) for g in golds)
        f1_raw[qid] = max(f1_score(g, pred) for g in golds)

    def thresholded(raw: Mapping[str, float]) -> dict[str, float]:
        return {
            q: (float(not has_ans[q]) if probs[q] > na_prob_thresh else s) for q, s in raw.items()
        }

    exact_th = thresholded(exact_raw)
    f1_th = thresholded(f1_raw)
    out: dict[str, float] = _eval_dict(exact_th, f1_th, qids)
    for prefix, subset in (
        ("HasAns", [q for q in qids if has_ans[q]]),
        ("NoAns", [q for q in qids if not has_ans[q]]),
    ):
        if subset:
            for key, value in _eval_dict(exact_th, f1_th, subset).items():
                out[f"{prefix}_{key}"] = value
    if na_probs is not None:
        out["best_exact"], out["best_exact_thresh"] = find_best_thresh(
            predictions, exact_raw, probs, has_ans
        )
        out["best_f1"], out["best_f1_thresh"] = find_best_thresh(
            predictions, f1_raw, probs, has_ans
        )
    return out


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------


def _load_json_object(path: str, what: str) -> dict:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{what} file {path!r} does not exist")
    try:
        obj = json.loads(p.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as err:
        raise ValueError(
            f"{path}: malformed JSON at line {err.lineno}, column {err.colno}: {err.msg}"
        ) from err
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: {what} must be a JSON object mapping question id -> value")
    return obj


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m secondorder.qa.metric",
        description="SQuAD 2.0 evaluation (same numbers as the official v2.0 script).",
        epilog="Every question of the data file needs a prediction (and a no-answer "
        "probability, with --na-prob-file). The official evaluate-v2.0.py prints 'Missing "
        "prediction for <id>' for each missing one and then stops with a KeyError while "
        "scoring the HasAns / NoAns subsets; here the missing ids are printed the same way and "
        "the run ends with one error line and exit code 2. Any other bad input (a missing "
        "file, malformed JSON, a list instead of an object, ids not in the data, a prediction "
        "that is not a string, a probability that is not a number) ends the same way.",
    )
    parser.add_argument("data_file", help="SQuAD data: official JSON, JSON lines or JSON list.")
    parser.add_argument("pred_file", help="JSON object: question id -> predicted text.")
    parser.add_argument(
        "--na-prob-file", "-n", default=None, help="JSON object: question id -> P(no answer)."
    )
    parser.add_argument(
        "--na-prob-thresh",
        "-t",
        type=float,
        default=1.0,
        help='Predict "" if the no-answer probability exceeds this (default 1.0).',
    )
    parser.add_argument("--out-file", "-o", default=None, help="Also write the scores here.")
    return parser


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Command-line entry point; prints the scores as JSON and returns them."""
    from secondorder.data.squad_files import read_squad_file

    args = _parser().parse_args(argv)
    try:
        records = read_squad_file(args.data_file)
        preds = _load_json_object(args.pred_file, "predictions")
        na_probs = (
            _load_json_object(args.na_prob_file, "no-answer probability")
            if (args.na_prob_file)
            else None
        )
        for qid in (r["id"] for r in records if r["id"] not in preds):
            print(f"Missing prediction for {qid}", file=sys.stderr)  # as evaluate-v2.0.py
        scores = squad_v2_scores(records, preds, na_probs, args.na_prob_thresh)
    except (OSError, ValueError, TypeError, KeyError, UnicodeDecodeError) as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    text = json.dumps(scores, indent=2)
    print(text)
    if args.out_file:
        out = Path(args.out_file)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n", encoding="utf-8")
    return scores


if __name__ == "__main__":
    main(sys.argv[1:])
