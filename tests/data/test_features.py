"""QA features: labels decode to the gold answer through the offsets, windows overlap."""

from __future__ import annotations

import pytest

from secondorder.data.squad import (
    CLS_INDEX,
    FeatureConfig,
    build_features,
    collate,
    epoch_order,
    iterate_batches,
    prepare_eval_features,
    prepare_train_features,
)

# Short windows so that most contexts need several of them.
FC = FeatureConfig(max_length=64, doc_stride=24, max_question_length=20)


@pytest.fixture(scope="module")
def train_features(small_records, small_tokenizer):
    records = small_records["train"]
    return records, records.map(
        prepare_train_features, batched=True, remove_columns=records.column_names,
        fn_kwargs={"tokenizer": small_tokenizer, "fc": FC, "with_offsets": True},
    )


def test_labelled_span_decodes_to_the_gold_answer(train_features):
    records, features = train_features
    windows_per_example = {}
    labelled = 0
    for f in features:
        example = records[f["example_index"]]
        windows_per_example[f["example_index"]] = windows_per_example.get(f["example_index"], 0) + 1
        start, end = f["start_positions"], f["end_positions"]
        if start == CLS_INDEX:
            assert end == CLS_INDEX
            continue
        labelled += 1
        offsets = f["offset_mapping"]
        text = example["context"][offsets[start][0] : offsets[end][1]]
        assert text == example["answers"]["text"][0]
        assert offsets[start][0] == example["answers"]["answer_start"][0]
        # the labelled tokens are context tokens (token type 1)
        assert f["token_type_ids"][start] == 1 and f["token_type_ids"][end] == 1
    assert labelled > 100
    multi = sum(1 for n in windows_per_example.values() if n >= 3)
    assert multi > len(records) / 2, "the test needs contexts spanning several windows"
    assert len(windows_per_example) == len(records)  # no example lost


def test_every_answerable_example_has_a_labelled_window(train_features):
    records, features = train_features
    labelled = {f["example_index"] for f in features if f["start_positions"] != CLS_INDEX}
    for i, example in enumerate(records):
        if example["answers"]["text"]:
            assert i in labelled  # answers are shorter than the stride: some window holds them
        else:
            assert i not in labelled  # unanswerable: every window points at CLS


def test_windows_overlap_by_the_stride(train_features, small_tokenizer):
    records, features = train_features
    first = [f for f in features if f["example_index"] == 0]
    assert len(first) >= 2
    context_tokens = [
        [tuple(o) for o, t in zip(f["offset_mapping"], f["token_type_ids"], strict=True) if t == 1][:-1]
        for f in first  # drop the final [SEP], which has token type 1 too
    ]
    for a, b in zip(context_tokens, context_tokens[1:], strict=False):
        assert a[-FC.doc_stride :] == b[: FC.doc_stride]
    assert all(len(f["input_ids"]) <= FC.max_length for f in features)


def test_eval_features_keep_context_offsets_only(small_records, small_tokenizer):
    records = small_records["validation"].select(range(20))
    feats = prepare_eval_features(records[:], small_tokenizer, FC)
    for i, offsets in enumerate(feats["offset_mapping"]):
        assert offsets[0] is None  # CLS
        ids = feats["input_ids"][i]
        sep = ids.index(small_tokenizer.sep_token_id)
        assert all(o is None for o in offsets[: sep + 1])  # question and its [SEP]
        assert offsets[-1] is None  # final [SEP]
        assert feats["example_id"][i] in set(records["id"])


def test_long_questions_are_cut_to_max_question_length(small_tokenizer):
    question = " ".join(["which river"] * 40) + "?"
    batch = {"id": ["q"], "question": [question], "context": ["The river flows."],
             "answers": [{"text": [], "answer_start": []}]}
    feats = prepare_train_features(batch, small_tokenizer, FC)
    ids = feats["input_ids"][0]
    assert ids.index(small_tokenizer.sep_token_id) - 1 == FC.max_question_length


def test_stride_must_fit_the_context_budget():
    with pytest.raises(ValueError, match="doc_stride"):
        FeatureConfig(max_length=64, doc_stride=50, max_question_length=20)


def test_batches_cover_every_feature_once_and_pad(small_records, small_tokenizer):
    feats = build_features(small_records["validation"], small_tokenizer, FC, train=True)
    order = epoch_order(len(feats), seed=1, epoch=0)
    assert sorted(order) == list(range(len(feats)))
    assert order != epoch_order(len(feats), seed=1, epoch=1)
    assert order == epoch_order(len(feats), seed=1, epoch=0)
    seen = 0
    for batch in iterate_batches(feats, order, 32, small_tokenizer.pad_token_id):
        assert batch["input_ids"].shape[1] % 8 == 0
        seen += len(batch["input_ids"])
    assert seen == len(feats)  # the last, smaller batch is kept
    resumed = list(iterate_batches(feats, order, 32, small_tokenizer.pad_token_id, start=2))
    assert sum(len(b["input_ids"]) for b in resumed) == len(feats) - 64


def test_collate_pads_with_the_pad_id():
    rows = {"input_ids": [[5, 6, 7], [5]], "token_type_ids": [[0, 1, 1], [0]],
            "attention_mask": [[1, 1, 1], [1]], "start_positions": [1, 0], "end_positions": [2, 0]}
    batch = collate(rows, pad_token_id=9, pad_to_multiple_of=4)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 9], [5, 9, 9, 9]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0], [1, 0, 0, 0]]
    assert batch["start_positions"].tolist() == [1, 0]
