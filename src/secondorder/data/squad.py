"""SQuAD 2.0 records from the Hub, local files or the embedded generator, and their QA features.

Every source yields the same flat schema as the Hub's `squad_v2`
(`id, title, context, question, answers{text, answer_start}`), so one feature pipeline
serves all of them. Features follow the transformers question-answering example: the question
first, only the context truncated, overflowing windows of `max_length` tokens that overlap by
`doc_stride`, offset mappings, and unanswerable or out-of-window answers labelled at the CLS
index.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from secondorder.data.squad_files import read_squad_file
from secondorder.data.synthetic import generate_squad_v2
from secondorder.hub import hub_load

log = logging.getLogger(__name__)

SPLITS = ("train", "validation")
CLS_INDEX = 0  # every tokenizer we use puts its CLS token first (question-first pairs)


def load_records(data_cfg: Mapping):
    """Raw records per split as `datasets.Dataset`s: {"train": ..., "validation": ...}."""
    import datasets

    files = {"train": data_cfg.get("train_file"), "validation": data_cfg.get("validation_file")}
    source = data_cfg["source"]
    if any(files.values()):
        missing = [f"data.{split}_file" for split, path in files.items() if not path]
        if missing:
            raise ValueError(
                f"data.train_file and data.validation_file go together; set {', '.join(missing)}"
            )
        splits = {split: datasets.Dataset.from_list(read_squad_file(p)) for split, p in files.items()}
    elif source == "synthetic":
        splits = {
            split: datasets.Dataset.from_list(
                generate_squad_v2(
                    int(data_cfg[f"num_{split}"]),
                    seed=int(data_cfg["seed"]),
                    unanswerable_fraction=float(data_cfg["unanswerable_fraction"]),
                    facts_per_paragraph=tuple(data_cfg.get("facts_per_paragraph", (3, 6))),
                    questions_per_paragraph=tuple(data_cfg.get("questions_per_paragraph", (2, 4))),
                    name_pool=data_cfg.get("name_pool"),
                    same_relation_share=data_cfg.get("same_relation_share", 1.0),
                    paraphrase_share=data_cfg.get("paraphrase_share", 0.0),
                    overlap_distractors=data_cfg.get("overlap_distractors", 0.0),
                    two_sentence_share=data_cfg.get("two_sentence_share", 0.0),
                    near_miss_share=data_cfg.get("near_miss_share", 0.0),
                    min_context_words=data_cfg.get("min_context_words", 40),
                    bridge_share=data_cfg.get("bridge_share", 0.0),
                    split=split,
                )
            )
            for split in SPLITS
        }
    elif source == "hub":
        name = data_cfg["hub_name"]
        with hub_load(
            f"data set '{name}'",
            "Download it once where the Hub is reachable (it is cached under HF_HOME / "
            "HF_DATASETS_CACHE) and set HF_DATASETS_OFFLINE=1 on the compute nodes; or point "
            "data.train_file / data.validation_file at train-v2.0.json / dev-v2.0.json; or run "
            "the embedded default with data=synthetic.",
        ):
            loaded = datasets.load_dataset(name)
        splits = {split: loaded[split] for split in SPLITS}
    else:
        raise ValueError(f"data.source must be one of synthetic, hub; got {source!r}")

    limits = {"train": data_cfg.get("max_train_samples"), "validation": data_cfg.get("max_eval_samples")}
    for split, limit in limits.items():
        if limit is not None and int(limit) < len(splits[split]):
            # A seeded random subset: SQuAD files are ordered by article, so a prefix would
            # cover only a few topics.
            rng = np.random.default_rng(int(data_cfg.get("subsample_seed", 0)))
            keep = np.sort(rng.choice(len(splits[split]), size=int(limit), replace=False))
            splits[split] = splits[split].select(keep.tolist())
    for split in SPLITS:
        log.info("%s: %d examples", split, len(splits[split]))
    return splits


def corpus_texts(records) -> Iterator[str]:
    """Unique contexts and all questions: the text a local tokenizer is trained on."""
    seen = set()
    for context in records["context"]:
        if context not in seen:
            seen.add(context)
            yield context
    yield from records["question"]


@dataclass(frozen=True)
class FeatureConfig:
    max_length: int = 384
    doc_stride: int = 128
    max_question_length: int = 64

    def __post_init__(self):
        budget = self.max_length - self.max_question_length - 3  # [CLS] q [SEP] c [SEP]
        if budget <= 0 or not 0 <= self.doc_stride < budget:
            raise ValueError(
                f"data.doc_stride={self.doc_stride} must be >= 0 and smaller than the context "
                f"budget max_length - max_question_length - 3 = {budget}; lower doc_stride or "
                "max_question_length, or raise max_length"
            )


def _truncate_questions(questions: Sequence[str], tokenizer, max_tokens: int) -> list[str]:
    """Strip leading white space (as the HF example does) and cut questions to `max_tokens`."""
    questions = [q.lstrip() for q in questions]
    enc = tokenizer(questions, add_special_tokens=False, return_offsets_mapping=True)
    out = []
    for question, ids, offsets in zip(questions, enc["input_ids"], enc["offset_mapping"], strict=True):
        out.append(question[: offsets[max_tokens - 1][1]] if len(ids) > max_tokens else question)
    return out


def _tokenize(batch, tokenizer, fc: FeatureConfig):
    questions = _truncate_questions(batch["question"], tokenizer, fc.max_question_length)
    return tokenizer(
        questions,
        batch["context"],
        truncation="only_second",
        max_length=fc.max_length,
        stride=fc.doc_stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        return_token_type_ids=True,
        padding=False,
    )


def prepare_train_features(batch, tokenizer, fc: FeatureConfig, with_offsets: bool = False) -> dict:
    """Tokenised windows with start/end token labels (CLS for no answer in the window).

    `with_offsets` also keeps each window's offsets and example index (for inspection).
    """
    enc = _tokenize(batch, tokenizer, fc)
    starts, ends = [], []
    for i, offsets in enumerate(enc["offset_mapping"]):
        answers = batch["answers"][enc["overflow_to_sample_mapping"][i]]
        seq_ids = enc.sequence_ids(i)
        context = [k for k, s in enumerate(seq_ids) if s == 1]
        if not answers["answer_start"] or not context:
            starts.append(CLS_INDEX)
            ends.append(CLS_INDEX)
            continue
        start_char = answers["answer_start"][0]
        end_char = start_char + len(answers["text"][0])
        first, last = context[0], context[-1]
        if offsets[first][0] > start_char or offsets[last][1] < end_char:
            starts.append(CLS_INDEX)  # the answer is not wholly inside this window
            ends.append(CLS_INDEX)
            continue
        start_tok = next(k for k in context if offsets[k][1] > start_char)
        end_tok = next(k for k in reversed(context) if offsets[k][0] < end_char)
        starts.append(start_tok)
        ends.append(end_tok)
    features = {
        "input_ids": enc["input_ids"],
        "token_type_ids": enc["token_type_ids"],
        "attention_mask": enc["attention_mask"],
        "start_positions": starts,
        "end_positions": ends,
    }
    if with_offsets:
        features["offset_mapping"] = enc["offset_mapping"]
        features["example_index"] = enc["overflow_to_sample_mapping"]
    return features


def prepare_eval_features(batch, tokenizer, fc: FeatureConfig) -> dict:
    """Tokenised windows with their example id and context-only offsets (None elsewhere)."""
    enc = _tokenize(batch, tokenizer, fc)
    example_ids, offset_mapping = [], []
    for i, offsets in enumerate(enc["offset_mapping"]):
        seq_ids = enc.sequence_ids(i)
        example_ids.append(batch["id"][enc["overflow_to_sample_mapping"][i]])
        offset_mapping.append([o if s == 1 else None for o, s in zip(offsets, seq_ids, strict=True)])
    return {
        "input_ids": enc["input_ids"],
        "token_type_ids": enc["token_type_ids"],
        "attention_mask": enc["attention_mask"],
        "example_id": example_ids,
        "offset_mapping": offset_mapping,
    }


def build_features(records, tokenizer, fc: FeatureConfig, *, train: bool, num_proc: int | None = None):
    """Map a records `Dataset` to its features `Dataset` (one row per window)."""
    prepare = prepare_train_features if train else prepare_eval_features
    return records.map(
        prepare,
        batched=True,
        remove_columns=records.column_names,
        fn_kwargs={"tokenizer": tokenizer, "fc": fc},
        num_proc=num_proc,
        desc=f"tokenizing {'train' if train else 'eval'} features",
    )


MODEL_INPUTS = ("input_ids", "token_type_ids", "attention_mask")
LABELS = ("start_positions", "end_positions")


def collate(rows: Mapping[str, list], pad_token_id: int, pad_to_multiple_of: int = 8) -> dict:
    """Pad a batch of variable-length features (dict of lists) to one tensor per key."""
    lengths = [len(ids) for ids in rows["input_ids"]]
    width = -(-max(lengths) // pad_to_multiple_of) * pad_to_multiple_of
    batch = {}
    for key in MODEL_INPUTS:
        fill = pad_token_id if key == "input_ids" else 0
        arr = np.full((len(lengths), width), fill, dtype=np.int64)
        for i, seq in enumerate(rows[key]):
            arr[i, : len(seq)] = seq
        batch[key] = torch.from_numpy(arr)
    for key in LABELS:
        if key in rows:
            batch[key] = torch.tensor(rows[key], dtype=torch.long)
    return batch


def epoch_order(num_rows: int, seed: int, epoch: int) -> list[int]:
    """The shuffled row order of one epoch: a pure function of (seed, epoch), so resumable."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(num_rows, generator=gen).tolist()


def iterate_batches(features, order: Sequence[int], batch_size: int, pad_token_id: int, *, start: int = 0):
    """Yield collated batches of `features` in `order`, from batch number `start` on.

    The last batch may be smaller: no example is dropped.
    """
    columns = [c for c in (*MODEL_INPUTS, *LABELS) if c in features.column_names]
    view = features.select_columns(columns)
    for b in range(start, -(-len(order) // batch_size)):
        idx = list(order[b * batch_size : (b + 1) * batch_size])
        yield collate(view[idx], pad_token_id)
