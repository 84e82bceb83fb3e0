"""Property-based check of the training features on random contexts, questions and spans: every
labelled window's offsets cut out exactly the gold answer (answers end on word boundaries, so on
token boundaries), every window that holds the whole answer is labelled, all others point at CLS."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from secondorder.data.squad import CLS_INDEX, FeatureConfig, prepare_train_features

FC = FeatureConfig(max_length=48, doc_stride=16, max_question_length=12)
WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
               min_size=1, max_size=9)
PUNCT = st.sampled_from(["", "", "", ",", ".", ")", "'s"])


@st.composite
def examples(draw):
    words = draw(st.lists(st.tuples(WORD, PUNCT).map("".join), min_size=1, max_size=80))
    question = " ".join(draw(st.lists(WORD, min_size=1, max_size=20)))
    context = " ".join(words)
    if draw(st.booleans()) and draw(st.booleans()):  # a quarter unanswerable
        return {"question": question, "context": context,
                "answers": {"text": [], "answer_start": []}}
    i = draw(st.integers(0, len(words) - 1))
    j = draw(st.integers(i + 1, min(len(words), i + 5)))
    start = len(" ".join(words[:i])) + (1 if i else 0)
    text = " ".join(words[i:j])
    assert context[start:start + len(text)] == text
    return {"question": question, "context": context,
            "answers": {"text": [text], "answer_start": [start]}}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(examples(), min_size=1, max_size=4))
def test_windows_label_exactly_the_answer_or_cls(small_tokenizer, batch):
    columns = {k: [b[k] for b in batch] for k in ("question", "context", "answers")}
    feats = prepare_train_features(columns, small_tokenizer, FC, with_offsets=True)
    enc_ids = feats["input_ids"]
    assert len(enc_ids) >= len(batch)  # at least one window per example
    for w, (s, e) in enumerate(zip(feats["start_positions"], feats["end_positions"], strict=True)):
        example = batch[feats["example_index"][w]]
        offsets = feats["offset_mapping"][w]
        context_tokens = [k for k, t in enumerate(feats["token_type_ids"][w])
                          if t == 1 and offsets[k][1] > offsets[k][0]]
        answers = example["answers"]
        if not answers["text"]:
            assert s == e == CLS_INDEX
            continue
        a0 = answers["answer_start"][0]
        a1 = a0 + len(answers["text"][0])
        lo, hi = offsets[context_tokens[0]][0], offsets[context_tokens[-1]][1]
        if lo <= a0 and a1 <= hi:  # the window holds the whole answer
            assert CLS_INDEX < s <= e
            assert example["context"][offsets[s][0]:offsets[e][1]] == answers["text"][0]
        else:
            assert s == e == CLS_INDEX
