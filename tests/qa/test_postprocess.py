"""Tests of logits -> answers post-processing on hand-built features and logits."""

from __future__ import annotations

import math

import numpy as np
import pytest

from secondorder.qa.postprocess import (
    na_prob_to_score_diff,
    nbest_predictions,
    postprocess_predictions,
    score_diff_to_na_prob,
)

CONTEXT = "The cat sat on the mat."
#          0123456789012345678901 2
# One window: [CLS] question [SEP] The cat sat on the mat . [SEP] [PAD]
OFFSETS = [
    None,  # 0 CLS
    None,  # 1 question token
    None,  # 2 SEP
    (0, 3),  # 3 The
    (4, 7),  # 4 cat
    (8, 11),  # 5 sat
    (12, 14),  # 6 on
    (15, 18),  # 7 the
    (19, 22),  # 8 mat
    (22, 23),  # 9 .
    None,  # 10 SEP
    None,  # 11 PAD
]
SEQ = len(OFFSETS)
EXAMPLES = [{"id": "e1", "context": CONTEXT}]
FEATURES = [{"example_id": "e1", "offset_mapping": OFFSETS}]


def _logits(values: dict[int, float]) -> np.ndarray:
    row = np.full(SEQ, -10.0)
    for i, v in values.items():
        row[i] = v
    return row[None, :]


def test_offsets_fixture_matches_context():
    words = [CONTEXT[a:b] for a, b in OFFSETS[3:10]]
    assert words == ["The", "cat", "sat", "on", "the", "mat", "."]


def _run(start, end, **kw):
    return postprocess_predictions(EXAMPLES, FEATURES, start, end, **kw)


def test_best_span_is_chosen():
    # valid pairs: (4,8) 5+4 = 9 "cat sat on the mat", (4,4) 5+3.5 = 8.5, (8,8) 3+4 = 7;
    # (8,4) would score 6.5 but ends before it starts. null = 1 + 1 = 2.
    start = _logits({0: 1.0, 4: 5.0, 8: 3.0})
    end = _logits({0: 1.0, 8: 4.0, 4: 3.5})
    preds, na = _run(start, end)
    assert preds == {"e1": "cat sat on the mat"}
    # na = sigmoid(2 - 9) = 1 / (1 + e^7) = 1 / 1097.633 = 0.00091105
    assert na["e1"] == pytest.approx(0.00091105, rel=1e-4)


def test_null_answer_when_null_score_wins():
    # same spans, null = 6 + 5 = 11 > 9: diff = 2 > 0 -> ""
    start = _logits({0: 6.0, 4: 5.0, 8: 3.0})
    end = _logits({0: 5.0, 8: 4.0, 4: 3.5})
    preds, na = _run(start, end)
    assert preds == {"e1": ""}
    # sigmoid(2) = 1 / (1 + e^-2) = 1 / 1.135335 = 0.880797
    assert na["e1"] == pytest.approx(0.880797, rel=1e-5)


def test_threshold_moves_the_decision():
    start = _logits({0: 6.0, 4: 5.0, 8: 3.0})
    end = _logits({0: 5.0, 8: 4.0, 4: 3.5})
    # diff = 11 - 9 = 2
    assert _run(start, end, null_score_diff_threshold=1.5)[0]["e1"] == ""
    assert _run(start, end, null_score_diff_threshold=2.0)[0]["e1"] == "cat sat on the mat"
    assert _run(start, end, null_score_diff_threshold=2.5)[0]["e1"] == "cat sat on the mat"
    # the probability does not depend on the threshold
    assert _run(start, end, null_score_diff_threshold=2.5)[1]["e1"] == pytest.approx(
        0.880797, rel=1e-5
    )


def test_tokens_outside_the_context_are_refused():
    # The largest logits sit on the question token (start) and the final SEP (end): any span
    # using them is refused; the only valid candidate left is "sat" (2 + 2 = 4) vs null 0.
    start = _logits({0: 0.0, 1: 20.0, 5: 2.0})
    end = _logits({0: 0.0, 10: 20.0, 5: 2.0, 2: 15.0})
    preds, na = _run(start, end)
    assert preds == {"e1": "sat"}
    assert na["e1"] == pytest.approx(1 / (1 + math.exp(4)))


def test_max_answer_length():
    # (3,9) "The cat sat on the mat." is 7 tokens, score 10; (3,5) "The cat sat" 3 tokens, 9
    start = _logits({0: -5.0, 3: 5.0})
    end = _logits({0: -5.0, 9: 5.0, 5: 4.0})
    assert _run(start, end, max_answer_length=7)[0]["e1"] == "The cat sat on the mat."
    assert _run(start, end, max_answer_length=6)[0]["e1"] == "The cat sat"
    assert _run(start, end, max_answer_length=3)[0]["e1"] == "The cat sat"


def test_n_best_size_limits_the_search_and_no_valid_span_gives_empty():
    # top start = token 8 (5), top end = token 4 (5): end < start.
    start = _logits({0: -1.0, 8: 5.0, 4: 1.0})
    end = _logits({0: -1.0, 4: 5.0, 8: 1.5})
    preds, na = _run(start, end, n_best_size=1)
    assert preds == {"e1": ""} and na == {"e1": 1.0}
    # with two of each: (8,8) 5 + 1.5 = 6.5 "mat" beats (4,4) 1 + 5 = 6 and (4,8) 2.5
    preds, _ = _run(start, end, n_best_size=2)
    assert preds == {"e1": "mat"}
    # the n-best list keeps the n_best_size best spans, best first
    nbest, null = nbest_predictions(EXAMPLES, FEATURES, start, end, n_best_size=2)
    assert [(c.text, c.score) for c in nbest["e1"]] == [("mat", 6.5), ("cat", 6.0)]
    nbest, _ = nbest_predictions(EXAMPLES, FEATURES, start, end, n_best_size=3)
    assert [(c.text, c.score) for c in nbest["e1"]] == [
        ("mat", 6.5),
        ("cat", 6.0),
        ("cat sat on the mat", 2.5),
    ]
    assert null == {"e1": -2.0}


def test_cls_index_override():
    start = _logits({0: -10.0, 11: 10.0, 4: 5.0})
    end = _logits({0: -10.0, 11: 10.0, 4: 5.0})
    feats = [{"example_id": "e1", "offset_mapping": OFFSETS, "cls_index": 11}]
    preds, _ = postprocess_predictions(EXAMPLES, feats, start, end)
    assert preds == {"e1": ""}  # null 20 > "cat" 10
    preds, _ = postprocess_predictions(EXAMPLES, FEATURES, start, end)
    assert preds == {"e1": "cat"}  # null at index 0 is -20


# Two windows over a longer context.
LONG = "Alpha beta gamma. Delta epsilon zeta."
WIN_A = [None, None, None, (0, 5), (6, 10), (11, 16), (16, 17), None]
WIN_B = [None, None, None, (11, 16), (16, 17), (18, 23), (24, 31), (32, 36)]


def test_two_windows_best_span_and_minimum_null():
    assert [LONG[a:b] for a, b in WIN_A[3:7]] == ["Alpha", "beta", "gamma", "."]
    assert [LONG[a:b] for a, b in WIN_B[3:8]] == ["gamma", ".", "Delta", "epsilon", "zeta"]
    examples = [{"id": "other", "context": CONTEXT}, {"id": "long", "context": LONG}]
    features = [
        {"example_id": "long", "offset_mapping": WIN_A},
        {"example_id": "other", "offset_mapping": OFFSETS[:8]},
        {"example_id": "long", "offset_mapping": WIN_B},
    ]
    start = np.full((3, 8), -10.0)
    end = np.full((3, 8), -10.0)
    # window A: null 1 + 1 = 2, best "beta" 3 + 3 = 6
    start[0, [0, 4]] = [1.0, 3.0]
    end[0, [0, 4]] = [1.0, 3.0]
    # other example: null 0, "cat" (token 4) 1 + 1 = 2
    start[1, [0, 4]] = [0.0, 1.0]
    end[1, [0, 4]] = [0.0, 1.0]
    # window B: null 0.5 + 0.5 = 1, best "epsilon zeta" 4 + 3.5 = 7.5
    start[2, [0, 6]] = [0.5, 4.0]
    end[2, [0, 7]] = [0.5, 3.5]
    preds, na = postprocess_predictions(examples, features, start, end)
    assert preds == {"other": "cat", "long": "epsilon zeta"}
    assert list(preds) == ["other", "long"]  # example order
    # example null = min(2, 1) = 1; diff = 1 - 7.5 = -6.5; sigmoid(-6.5) = 1/666.1416
    assert na["long"] == pytest.approx(0.00150118, rel=1e-4)
    # With threshold -6: the minimum null gives -6.5 <= -6 -> answer. (Using the larger null 2
    # would give -5.5 > -6 -> "".)
    preds, _ = postprocess_predictions(
        examples, features, start, end, null_score_diff_threshold=-6.0
    )
    assert preds["long"] == "epsilon zeta"
    preds, _ = postprocess_predictions(
        examples, features, start, end, null_score_diff_threshold=-7.0
    )
    assert preds["long"] == ""


def test_na_prob_and_threshold_conversion():
    assert score_diff_to_na_prob(0.0) == 0.5
    assert na_prob_to_score_diff(0.5) == 0.0
    # logit(0.8) = ln 4 = 1.386294
    assert na_prob_to_score_diff(0.8) == pytest.approx(1.386294, rel=1e-6)
    assert score_diff_to_na_prob(-1000.0) == 0.0  # no overflow
    assert score_diff_to_na_prob(1000.0) == 1.0


def test_errors():
    start = _logits({0: 0.0})
    with pytest.raises(ValueError, match="unknown example id"):
        postprocess_predictions(
            EXAMPLES, [{"example_id": "nope", "offset_mapping": OFFSETS}], start, start
        )
    with pytest.raises(ValueError, match="no features"):
        postprocess_predictions(EXAMPLES + [{"id": "e2", "context": "x"}], FEATURES, start, start)
    with pytest.raises(ValueError, match="features"):
        postprocess_predictions(EXAMPLES, FEATURES * 2, start, start)


def test_torch_tensors_and_hf_dataset_rows():
    torch = pytest.importorskip("torch")
    datasets = pytest.importorskip("datasets")
    start = _logits({0: 1.0, 4: 5.0, 8: 3.0})
    end = _logits({0: 1.0, 8: 4.0, 4: 3.5})
    examples = datasets.Dataset.from_list(EXAMPLES)
    features = datasets.Dataset.from_list(
        [{"example_id": "e1", "offset_mapping": [None if o is None else list(o) for o in OFFSETS]}]
    )
    preds, _ = postprocess_predictions(
        examples,
        features,
        torch.tensor(start, dtype=torch.bfloat16),
        torch.tensor(end, dtype=torch.float32),
    )
    assert preds == {"e1": "cat sat on the mat"}
