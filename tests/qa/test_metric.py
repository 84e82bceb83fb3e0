"""Tests of the SQuAD 2.0 metric against hand-worked numbers."""

from __future__ import annotations

import json

import pytest

from secondorder.qa.metric import (
    exact_match,
    f1_score,
    gold_answers,
    main,
    normalize_answer,
    squad_v2_scores,
)

# --------------------------------------------------------------------------------------------
# normalisation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("The Cat", "cat"),  # case + leading article
        ("an apple a day", "apple day"),  # articles as whole words, anywhere
        ("banana", "banana"),  # "an" inside a word is untouched
        ("Anthem of theirs", "anthem of theirs"),  # "an"/"the" prefixes are not articles
        ("U.S.A.", "usa"),  # punctuation removed, not replaced by a space
        ("rock-n-roll!", "rocknroll"),
        ("the-end", "theend"),  # punctuation goes first, so "the" is no longer a word
        ("  hello \t  world\n", "hello world"),  # white space collapsed
        ("a", ""),  # a lone article normalises to nothing
        ("1\u20132", "1\u20132"),  # en dash is not in string.punctuation: kept
    ],
)
def test_normalize_answer(raw, expected):
    assert normalize_answer(raw) == expected


# --------------------------------------------------------------------------------------------
# exact match / F1 on single pairs
# --------------------------------------------------------------------------------------------


def test_exact_match_uses_normalisation():
    assert exact_match("The Denver Broncos", "denver broncos.") == 1
    assert exact_match("Denver Broncos", "Broncos") == 0


def test_partial_f1_by_hand():
    # gold "the cat sat on the mat" -> tokens [cat, sat, on, mat] (4)
    # pred "cat on mat"             -> tokens [cat, on, mat]      (3), all 3 shared
    # precision = 3/3 = 1, recall = 3/4, F1 = 2 * 1 * 0.75 / 1.75 = 6/7
    assert f1_score("the cat sat on the mat", "cat on mat") == pytest.approx(6 / 7)
    assert exact_match("the cat sat on the mat", "cat on mat") == 0


def test_f1_counts_repeated_tokens_as_a_multiset():
    # gold [red, red, apple], pred [red, apple, apple]: shared = min(2,1) + min(1,2) = 2
    # precision = 2/3, recall = 2/3 -> F1 = 2/3
    assert f1_score("a red red apple", "red apple apple") == pytest.approx(2 / 3)


def test_f1_no_overlap_and_empty_sides():
    assert f1_score("Paris", "London") == 0.0
    assert f1_score("", "") == 1.0
    assert f1_score("", "something") == 0.0
    assert f1_score("Paris", "") == 0.0
    # "the" normalises to no tokens, so it counts as an empty prediction (official quirk)
    assert f1_score("", "the") == 1.0
    assert exact_match("", "the") == 1


def test_gold_answers_drop_texts_that_normalise_to_nothing():
    rec = {"answers": {"text": ["The", "Broncos", "!"], "answer_start": [0, 4, 11]}}
    assert gold_answers(rec) == ["Broncos"]
    assert gold_answers({"answers": {"text": [], "answer_start": []}}) == [""]
    assert gold_answers({"answers": {"text": ["the"], "answer_start": [0]}}) == [""]


# --------------------------------------------------------------------------------------------
# data-set level scores
# --------------------------------------------------------------------------------------------


def _rec(qid, texts):
    # The metric only looks at id and answer texts; the context holds every answer so that the
    # records are also valid SQuAD records.
    context = "Denver Broncos; the cat sat on the mat; New York City; Paris."
    starts = [context.index(t) for t in texts]
    return {
        "id": qid,
        "title": "T",
        "context": context,
        "question": f"question {qid}?",
        "answers": {"text": list(texts), "answer_start": starts},
    }


RECORDS = [
    _rec("q1", ["Denver Broncos", "Broncos"]),
    _rec("q2", ["the cat sat on the mat"]),
    _rec("q3", ["Paris"]),
    _rec("q4", []),
    _rec("q5", []),
    _rec("q6", []),
]
PREDS = {
    "q1": "Broncos",  # EM 1, F1 1 (matches the second gold)
    "q2": "cat on mat",  # EM 0, F1 6/7
    "q3": "London",  # EM 0, F1 0
    "q4": "",  # unanswerable, abstains: EM 1, F1 1
    "q5": "something",  # unanswerable, answers: 0, 0
    "q6": "the answer",  # unanswerable, answers: 0, 0
}
NA_PROBS = {"q1": 0.1, "q2": 0.3, "q3": 0.6, "q4": 0.9, "q5": 0.4, "q6": 0.7}


def test_scores_without_na_probs():
    s = squad_v2_scores(RECORDS, PREDS)
    # exact: (1+0+0+1+0+0)/6 = 1/3;   f1: (1 + 6/7 + 0 + 1 + 0 + 0)/6 = (20/7)/6 = 10/21
    assert s["exact"] == pytest.approx(100 / 3)
    assert s["f1"] == pytest.approx(100 * 10 / 21)  # 47.619...
    assert s["total"] == 6
    # HasAns q1..q3: exact 1/3, f1 (1 + 6/7)/3 = 13/21
    assert s["HasAns_exact"] == pytest.approx(100 / 3)
    assert s["HasAns_f1"] == pytest.approx(100 * 13 / 21)  # 61.904...
    assert s["HasAns_total"] == 3
    # NoAns q4..q6: only q4 right
    assert s["NoAns_exact"] == pytest.approx(100 / 3)
    assert s["NoAns_f1"] == pytest.approx(100 / 3)
    assert s["NoAns_total"] == 3
    assert not any(k.startswith("best_") for k in s)


def test_scores_with_na_probs_and_best_thresholds():
    s = squad_v2_scores(RECORDS, PREDS, NA_PROBS)
    # Default na_prob_thresh = 1.0: no probability exceeds it, so the plain scores are unchanged.
    assert s["exact"] == pytest.approx(100 / 3)
    assert s["f1"] == pytest.approx(100 * 10 / 21)
    # Sweep in increasing na_prob: q1 .1, q2 .3, q5 .4, q3 .6, q6 .7, q4 .9; start = 3 (NoAns).
    # exact: 3 -> q1 +1 = 4 (best, .1) -> q2 +0 = 4 -> q5 -1 = 3 -> q3 3 -> q6 2 -> q4 2
    assert s["best_exact"] == pytest.approx(100 * 4 / 6)
    assert s["best_exact_thresh"] == pytest.approx(0.1)
    # f1: 3 -> q1 4 (.1) -> q2 4 + 6/7 = 34/7 (best, .3) -> q5 27/7 -> ... only decreases
    assert s["best_f1"] == pytest.approx(100 * (34 / 7) / 6)  # 80.952...
    assert s["best_f1_thresh"] == pytest.approx(0.3)


def test_na_prob_thresh_turns_questions_into_no_answer():
    s = squad_v2_scores(RECORDS, PREDS, NA_PROBS, na_prob_thresh=0.5)
    # q3 (.6), q6 (.7), q4 (.9) now predict no-answer: q3 -> 0, q6 -> 1, q4 -> 1
    # exact: q1 1, q2 0, q3 0, q4 1, q5 0, q6 1 -> 3/6
    # f1:    q1 1, q2 6/7, q3 0, q4 1, q5 0, q6 1 -> (3 + 6/7)/6 = 9/14
    assert s["exact"] == pytest.approx(50.0)
    assert s["f1"] == pytest.approx(100 * 9 / 14)
    assert s["HasAns_exact"] == pytest.approx(100 / 3)
    assert s["NoAns_exact"] == pytest.approx(200 / 3)
    assert s["NoAns_f1"] == pytest.approx(200 / 3)
    # the best-threshold search uses the raw scores, so it does not move
    assert s["best_f1"] == pytest.approx(100 * (34 / 7) / 6)
    assert s["best_f1_thresh"] == pytest.approx(0.3)


def test_na_prob_thresh_is_strict():
    # thresh 0.3: q2 (exactly .3) keeps its answer, q5 (.4), q3, q6, q4 abstain
    # f1: q1 1, q2 6/7, q3 0, q4 1, q5 1, q6 1 -> (4 + 6/7)/6 = 17/21
    s = squad_v2_scores(RECORDS, PREDS, NA_PROBS, na_prob_thresh=0.3)
    assert s["f1"] == pytest.approx(100 * 17 / 21)
    assert s["exact"] == pytest.approx(100 * 4 / 6)
    # thresh 0.25: q2 abstains too and loses its 6/7 -> f1 = 4/6
    s = squad_v2_scores(RECORDS, PREDS, NA_PROBS, na_prob_thresh=0.25)
    assert s["f1"] == pytest.approx(100 * 4 / 6)


def test_best_thresh_stays_zero_when_nothing_beats_abstaining():
    recs = [_rec("a", []), _rec("b", ["Paris"])]
    preds = {"a": "x", "b": "London"}
    # start = 1; a (.2) answers wrongly -> 0; b (.5) scores 0 -> 0. Best stays 1/2 at 0.0.
    s = squad_v2_scores(recs, preds, {"a": 0.2, "b": 0.5})
    assert s["best_exact"] == pytest.approx(50.0)
    assert s["best_exact_thresh"] == 0.0
    assert s["best_f1_thresh"] == 0.0
    assert s["exact"] == 0.0


def test_best_thresh_penalises_answering_an_unanswerable_question():
    recs = [_rec("u", []), _rec("a", ["Paris"])]
    na = {"u": 0.1, "a": 0.2}
    # start 1; u (.1) answers "x": -1 -> 0; a (.2) correct: +1 -> 1, not above the start
    s = squad_v2_scores(recs, {"u": "x", "a": "Paris"}, na)
    assert s["best_exact"] == pytest.approx(50.0)
    assert s["best_exact_thresh"] == 0.0
    # the same with u abstaining (""): u costs 0 -> 1; a -> 2 (best, .2)
    s = squad_v2_scores(recs, {"u": "", "a": "Paris"}, na)
    assert s["best_exact"] == pytest.approx(100.0)
    assert s["best_exact_thresh"] == pytest.approx(0.2)


def test_subset_keys_only_for_non_empty_subsets():
    s = squad_v2_scores([_rec("a", ["Paris"])], {"a": "paris"})
    assert s == {
        "exact": 100.0,
        "f1": 100.0,
        "total": 1,
        "HasAns_exact": 100.0,
        "HasAns_f1": 100.0,
        "HasAns_total": 1,
    }


def test_max_over_golds():
    recs = [_rec("a", ["New York City", "Paris"])]
    # vs "New York City": shared 2, P = 2/2, R = 2/3 -> F1 0.8; vs "Paris": 0
    s = squad_v2_scores(recs, {"a": "New York"})
    assert s["f1"] == pytest.approx(80.0)
    assert s["exact"] == 0.0


def test_missing_and_unknown_predictions_raise():
    preds = dict(PREDS)
    del preds["q2"], preds["q5"]
    with pytest.raises(ValueError, match=r"2 of 6 .*'q2', 'q5'"):
        squad_v2_scores(RECORDS, preds)
    with pytest.raises(ValueError, match="zz"):
        squad_v2_scores(RECORDS, {**PREDS, "zz": "x"})
    na = dict(NA_PROBS)
    del na["q4"]
    with pytest.raises(ValueError, match="q4"):
        squad_v2_scores(RECORDS, PREDS, na)


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------


def test_cli_on_official_format_file(tmp_path, capsys):
    data = {
        "version": "v2.0",
        "data": [
            {
                "title": "Broncos",
                "paragraphs": [
                    {
                        "context": "The Denver Broncos won.",
                        "qas": [
                            {
                                "id": "x1",
                                "question": "Who won?",
                                "answers": [{"text": "Denver Broncos", "answer_start": 4}],
                                "is_impossible": False,
                            },
                            {
                                "id": "x2",
                                "question": "Who lost?",
                                "answers": [],
                                "plausible_answers": [{"text": "Broncos", "answer_start": 11}],
                                "is_impossible": True,
                            },
                        ],
                    }
                ],
            }
        ],
    }
    data_file = tmp_path / "dev.json"
    data_file.write_text(json.dumps(data))
    pred_file = tmp_path / "pred.json"
    pred_file.write_text(json.dumps({"x1": "Broncos", "x2": "Broncos"}))
    na_file = tmp_path / "na.json"
    na_file.write_text(json.dumps({"x1": 0.2, "x2": 0.8}))
    out_file = tmp_path / "out" / "scores.json"

    main(
        [
            str(data_file),
            str(pred_file),
            "--na-prob-file",
            str(na_file),
            "--na-prob-thresh",
            "0.5",
            "--out-file",
            str(out_file),
        ]
    )
    printed = json.loads(capsys.readouterr().out)
    # x1: "Broncos" vs "Denver Broncos": P 1, R 1/2 -> F1 2/3, EM 0. x2 abstains (.8 > .5): 1.
    assert printed["exact"] == pytest.approx(50.0)
    assert printed["f1"] == pytest.approx(100 * (2 / 3 + 1) / 2)
    assert printed["HasAns_total"] == 1 and printed["NoAns_total"] == 1
    # sweep: start 1; x1 (.2) +2/3 -> 5/3 (best, .2); x2 (.8) answers "Broncos" -> 2/3
    assert printed["best_f1"] == pytest.approx(100 * (5 / 3) / 2)
    assert printed["best_f1_thresh"] == pytest.approx(0.2)
    # EM sweep: x1 adds 0, nothing beats the start of 1 -> 50 at 0.0
    assert printed["best_exact"] == pytest.approx(50.0)
    assert printed["best_exact_thresh"] == 0.0
    assert json.loads(out_file.read_text()) == printed

    # without an na-prob file: no best_* keys, x2 answers "Broncos" and scores 0
    main([str(data_file), str(pred_file)])
    printed = json.loads(capsys.readouterr().out)
    assert printed["exact"] == 0.0
    assert printed["f1"] == pytest.approx(100 * (2 / 3) / 2)
    assert "best_f1" not in printed
