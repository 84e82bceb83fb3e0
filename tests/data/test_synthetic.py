"""Tests for the embedded synthetic SQuAD-2.0 data set."""

from __future__ import annotations

import random
import re
import statistics

import pytest

from secondorder.data.squad import corpus_texts
from secondorder.data.synthetic import _TEMPLATE_WORDS, _generate, generate_squad_v2

N = 3000
YEAR_RE = re.compile(r"\b(1[7-9]\d\d|20[0-2]\d)\b")


@pytest.fixture(scope="module")
def data():
    return _generate(N, seed=7)


@pytest.fixture(scope="module")
def records(data):
    return data[0]


def _answerable(data):
    return [(r, m) for r, m in zip(*data, strict=True) if r["answers"]["text"]]


def _unanswerable(data):
    return [(r, m) for r, m in zip(*data, strict=True) if not r["answers"]["text"]]


def _name_words(question: str) -> list[str]:
    """Capitalised words of a question except its first word (i.e. the named entity)."""
    return re.findall(r"[A-Z][a-z]+", question)[1:]


# ----------------------------------------------------------------------------- schema


def test_schema_spans_and_ids(records):
    assert len(records) == N
    for r in records:
        assert list(r) == ["id", "title", "context", "question", "answers"]
        assert all(isinstance(r[k], str) and r[k] for k in ("id", "title", "context", "question"))
        assert list(r["answers"]) == ["text", "answer_start"]
        texts, starts = r["answers"]["text"], r["answers"]["answer_start"]
        assert isinstance(texts, list) and isinstance(starts, list)
        assert len(texts) == len(starts) <= 1
        for text, start in zip(texts, starts, strict=True):
            assert isinstance(text, str) and type(start) is int
            assert r["context"][start : start + len(text)] == text
            assert 1 <= len(text.split()) <= 4
            assert text == text.strip()
        assert r["question"].endswith("?")
    ids = [r["id"] for r in records]
    assert len(set(ids)) == len(ids)
    assert ids[0] == "train-7-000000" and ids[-1] == f"train-7-{N - 1:06d}"


def test_paragraphs_are_shared_and_consecutive(records):
    runs: list[str] = []  # one entry per run of consecutive records with the same context
    for k, r in enumerate(records):
        if k == 0 or r["context"] != records[k - 1]["context"]:
            runs.append(r["context"])
        else:
            assert r["title"] == records[k - 1]["title"]
    assert len(set(runs)) == len(runs), "a paragraph's questions must be consecutive"
    assert 2.5 < len(records) / len(runs) <= 4  # default questions_per_paragraph=(2, 4)
    # no question is asked twice about the same paragraph
    pairs = [(r["context"], r["question"]) for r in records]
    assert len(set(pairs)) == len(pairs)


def test_context_length_and_vocabulary(records):
    contexts = list(dict.fromkeys(r["context"] for r in records))
    n_words = [len(c.split()) for c in contexts]
    assert 40 <= statistics.median(n_words) <= 120
    assert sum(30 <= n <= 130 for n in n_words) / len(n_words) > 0.95
    # the non-name vocabulary (lowercase words) stays small
    texts = [*contexts, *(r["question"] for r in records)]
    lower = {w for t in texts for w in re.findall(r"\b[a-z]+\b", t)}
    assert len(lower) < 300


# ----------------------------------------------------------------------------- determinism


def test_deterministic_and_salted():
    a = generate_squad_v2(300, seed=3)
    state = random.getstate()
    random.seed(12345)  # global RNG state must not matter ...
    b = generate_squad_v2(300, seed=3)
    random.setstate(state)
    assert a == b
    before = random.getstate()
    generate_squad_v2(50, seed=3)
    assert random.getstate() == before  # ... nor be touched
    assert generate_squad_v2(300, seed=4) != a
    val = generate_squad_v2(300, seed=3, split="validation")
    assert val[0]["id"] == "validation-3-000000"
    assert {r["context"] for r in val}.isdisjoint({r["context"] for r in a})
    assert [r["question"] for r in val] != [r["question"] for r in a]
    assert generate_squad_v2(1, seed=3) == generate_squad_v2(1, seed=3)


# ----------------------------------------------------------------------------- answerability


@pytest.mark.parametrize("fraction", [1 / 3, 0.5])
def test_unanswerable_fraction(fraction):
    records = generate_squad_v2(N, seed=11, unanswerable_fraction=fraction)
    measured = sum(not r["answers"]["text"] for r in records) / len(records)
    assert abs(measured - fraction) <= 0.03
    assert sum(not r["answers"]["text"] for r in records) == round(fraction * N)


def test_zero_unanswerable():
    records = generate_squad_v2(200, seed=0, unanswerable_fraction=0.0)
    assert all(r["answers"]["text"] for r in records)


def test_answerable_questions_name_an_entity_of_the_context(data):
    for r, m in _answerable(data):
        words = _name_words(r["question"])
        assert words, r["question"]
        assert all(w in r["context"] for w in words), (r["question"], r["context"])
        assert m.given_value in r["question"] and m.given_value in r["context"]
        # well posed: exactly one fact of the asked relation names that entity
        matching = [
            f for f in m.paragraph.facts_of(m.relation) if f.values[m.given_slot] == m.given_value
        ]
        assert len(matching) == 1
        assert matching[0].values[m.answer_slot] == r["answers"]["text"][0]
        assert matching[0].spans[m.answer_slot] == r["answers"]["answer_start"][0]


def test_unanswerable_questions_are_adversarial(data):
    unanswerable = _unanswerable(data)
    kinds = [m.kind for _, m in unanswerable]
    assert set(kinds) == {"unanswerable-mentioned", "unanswerable-absent"}
    assert 0.3 < kinds.count("unanswerable-mentioned") / len(kinds) < 0.8
    with_distractor = 0
    for r, m in unanswerable:
        para = m.paragraph
        facts = para.facts_of(m.relation)
        assert facts, "the asked relation must be stated (for someone else)"
        assert all(f.values[m.given_slot] != m.given_value for f in facts)
        if m.kind == "unanswerable-mentioned":
            assert m.given_value in r["context"]
        else:
            assert any(w not in r["context"] for w in _name_words(r["question"]))
        with_distractor += any(mention.type == m.answer_type for mention in para.mentions)
    assert with_distractor / len(unanswerable) >= 0.9


def test_mentions_match_context(data):
    for para in {id(m.paragraph): m.paragraph for m in data[1]}.values():
        for mention in para.mentions:
            assert para.context[mention.start : mention.start + len(mention.text)] == mention.text


def test_answers_have_distractors_of_the_same_type(data):
    answerable = _answerable(data)
    with_distractor = 0
    for r, m in answerable:
        gold = r["answers"]["text"][0]
        with_distractor += any(
            mention.type == m.answer_type and mention.text != gold
            for mention in m.paragraph.mentions
        )
    assert with_distractor / len(answerable) >= 0.9
    # independent re-parse for year answers: another year is always in the context
    years = [(r, m) for r, m in answerable if m.answer_type == "year"]
    assert len(years) > 50
    for r, _ in years:
        found = YEAR_RE.findall(r["context"])
        assert r["answers"]["text"][0] in found
        assert len(set(found)) >= 2


# ----------------------------------------------------------------------------- no shortcuts


def test_answer_positions_are_spread(data):
    rel = [r["answers"]["answer_start"][0] / len(r["context"]) for r, _ in _answerable(data)]
    assert statistics.pstdev(rel) > 0.15
    # and the answer is not usually in the first or last sentence
    first_sentence = [
        r["answers"]["answer_start"][0] < r["context"].index(". ") for r, _ in _answerable(data)
    ]
    assert sum(first_sentence) / len(first_sentence) < 0.1


def test_question_blind_baselines_fail(data):
    answerable = _answerable(data)
    # knows only the answer type (from the wh-word): first candidate of that type
    first_of_type = 0
    # knows the relation, not the entity: first answer-slot value of that relation
    first_of_relation = 0
    for r, m in answerable:
        gold = r["answers"]["answer_start"][0]
        first = next(x for x in m.paragraph.mentions if x.type == m.answer_type)
        first_of_type += first.start == gold
        starts = sorted(f.spans[m.answer_slot] for f in m.paragraph.facts_of(m.relation))
        first_of_relation += starts[0] == gold
    assert first_of_type / len(answerable) < 0.45
    assert first_of_relation / len(answerable) < 0.55
    # nor does a type-only model answer years: first year of the context
    years = [(r, m) for r, m in answerable if m.answer_type == "year"]
    hits = sum(YEAR_RE.search(r["context"]).group(0) == r["answers"]["text"][0] for r, _ in years)
    assert hits / len(years) < 0.6


# ----------------------------------------------------------------------------- options


def test_paragraph_options():
    records, metas = _generate(
        200, seed=5, facts_per_paragraph=(2, 2), questions_per_paragraph=(5, 5)
    )
    assert len(records) == 200
    assert all(len(m.paragraph.facts) == 2 for m in metas)
    contexts = list(dict.fromkeys(r["context"] for r in records))
    assert len(records) / len(contexts) > 3
    single = generate_squad_v2(50, seed=5, facts_per_paragraph=(1, 1))
    assert len(single) == 50
    for r in single:
        for text, start in zip(r["answers"]["text"], r["answers"]["answer_start"], strict=True):
            assert r["context"][start : start + len(text)] == text
    big = generate_squad_v2(
        100, seed=5, facts_per_paragraph=(24, 24), questions_per_paragraph=(1, 1)
    )
    assert len(big) == 100


@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_questions": 0},
        {"num_questions": -5},
        {"num_questions": 2.5},
        {"unanswerable_fraction": 1.0},
        {"unanswerable_fraction": -0.1},
        {"unanswerable_fraction": "0.3"},
        {"facts_per_paragraph": (0, 3)},
        {"facts_per_paragraph": (4, 3)},
        {"facts_per_paragraph": (3,)},
        {"facts_per_paragraph": (3, 100)},
        {"questions_per_paragraph": (2, 1)},
        {"questions_per_paragraph": (0, 0)},
        {"questions_per_paragraph": (1.0, 2)},
        {"split": ""},
        {"seed": "1"},
        {"same_relation_share": 1.5},
        {"same_relation_share": -0.1},
        {"same_relation_share": "0.5"},
    ],
)
def test_validation(kwargs):
    args = {"num_questions": 10, "seed": 0, **kwargs}
    with pytest.raises(ValueError):
        generate_squad_v2(args.pop("num_questions"), **args)


def test_corpus_texts():
    import datasets

    records = generate_squad_v2(100, seed=2)
    texts = list(corpus_texts(datasets.Dataset.from_list(records)))
    contexts = list(dict.fromkeys(r["context"] for r in records))
    assert [t for t in texts if t in set(contexts)] == contexts
    assert [t for t in texts if t not in set(contexts)] == [r["question"] for r in records]
    assert len(texts) == len(contexts) + len(records)


def test_name_pool_limits_and_shares_names_across_splits():
    pooled = {
        split: generate_squad_v2(1500, seed=4, name_pool=60, split=split)
        for split in ("train", "validation")
    }
    # Invented names are capitalised words outside the templates; with a pool of 60 per kind
    # (first names, surnames, towns, rivers, organisations, languages) at most 6 * 60 occur.
    def names(records):
        return {w for r in records for w in re.findall(r"\b[A-Z][a-z]+\b", r["context"])
                if w.lower() not in _TEMPLATE_WORDS}

    train, validation = names(pooled["train"]), names(pooled["validation"])
    assert len(train) <= 6 * 60
    assert len(validation & train) >= 0.9 * len(validation)  # the splits share the pool
    fresh = names(generate_squad_v2(1500, seed=4, split="train"))
    assert len(fresh) > 3 * len(train)  # without a pool names are invented afresh
    assert generate_squad_v2(200, seed=4, name_pool=60) == generate_squad_v2(200, seed=4, name_pool=60)
    for records in pooled.values():  # still exact substrings at answer_start
        for r in records:
            for text, start in zip(r["answers"]["text"], r["answers"]["answer_start"], strict=True):
                assert r["context"][start : start + len(text)] == text
    with pytest.raises(ValueError, match="name_pool"):
        generate_squad_v2(10, seed=0, name_pool=5)


def test_same_relation_share():
    # 1 is the default construction, record for record
    assert generate_squad_v2(300, seed=3, same_relation_share=1.0) == generate_squad_v2(300, seed=3)

    def groups(metas):  # facts per relation, one list per paragraph
        paras = {id(m.paragraph): m.paragraph for m in metas}.values()
        return [[len(p.facts_of(r)) for r in dict.fromkeys(f.relation.name for f in p.facts)]
                for p in paras]

    for share, lo, hi in ((0.0, 0.0, 0.0), (0.3, 0.2, 0.4), (1.0, 1.0, 1.0)):
        records, metas = _generate(2000, seed=3, facts_per_paragraph=(2, 4),
                                   same_relation_share=share)
        sizes = [size for para in groups(metas) for size in para]
        assert all(1 <= size <= 3 for size in sizes)
        # a group of 2-3 is drawn with probability `share` (one cut short by the paragraph's
        # fact count becomes a singleton, hence the band below 0.3)
        multi = sum(size >= 2 for size in sizes) / len(sizes)
        assert lo <= multi <= hi, multi
        for r, m in zip(records, metas, strict=True):
            for text, start in zip(r["answers"]["text"], r["answers"]["answer_start"], strict=True):
                assert r["context"][start : start + len(text)] == text
            if m.kind == "answerable":  # the asked fact is still the only one of its kind
                facts = [f for f in m.paragraph.facts_of(m.relation)
                         if f.values[m.given_slot] == m.given_value]
                assert len(facts) == 1
            if share == 0.0:  # no same-relation groups: every question's relation stated once
                assert len(m.paragraph.facts_of(m.relation)) == 1


# ----------------------------------------------------------------------------- difficulty knobs
# Each knob is measured on generated text: the number each test computes rises (or falls) with
# the knob, from its value with the knob off (the original generator) to its value on.

HARD_BASE = {"facts_per_paragraph": (2, 3), "same_relation_share": 0.0, "name_pool": 200}
STOPWORDS = frozenset(
    "what which who whom whose where when how many much in of the a an is was does did do has "
    "have on at to by for with from s be been can one".split()
)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def _sentence_spans(context: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence; no name or value contains '. '."""
    spans, start = [], 0
    for m in re.finditer(r"\. ", context):
        spans.append((start, m.start() + 1))
        start = m.end()
    return [*spans, (start, len(context))]


def _sentence_at(context: str, pos: int) -> tuple[int, int]:
    return next(s for s in _sentence_spans(context) if s[0] <= pos < s[1])


def _content_words(record, meta) -> set[str]:
    """Question words other than stop words and the named entity."""
    entity = set(_words(meta.given_value))
    return {w for w in _words(record["question"]) if w not in STOPWORDS and w not in entity}


def _hard(n: int, seed: int = 1, **knobs):
    return _generate(n, seed=seed, **{**HARD_BASE, **knobs})


def _check_well_posed(records, metas):
    for r, m in zip(records, metas, strict=True):
        for text, start in zip(r["answers"]["text"], r["answers"]["answer_start"], strict=True):
            assert r["context"][start : start + len(text)] == text
        matching = [f for f in m.paragraph.facts_of(m.relation)
                    if f.values[m.given_slot] == m.given_value]
        if m.kind.startswith("answerable"):  # "answerable" or "answerable-bridge"
            assert len(matching) == 1
            assert matching[0].values[m.answer_slot] == r["answers"]["text"][0]
            assert matching[0].spans[m.answer_slot] == r["answers"]["answer_start"][0]
            assert m.named in r["question"] and m.named in r["context"]
        else:
            assert not matching and not r["answers"]["text"]


def test_knobs_off_are_the_original_generator():
    off = {"paraphrase_share": 0.0, "overlap_distractors": 0.0, "two_sentence_share": 0.0,
           "near_miss_share": 0.0, "min_context_words": 40, "bridge_share": 0.0}
    assert generate_squad_v2(400, seed=3, **off) == generate_squad_v2(400, seed=3)
    assert (generate_squad_v2(400, seed=3, **HARD_BASE, **off)
            == generate_squad_v2(400, seed=3, **HARD_BASE))


def test_paraphrase_share_lowers_question_overlap_with_the_answer_sentence():
    measured = {}
    for share in (0.0, 0.5, 1.0):
        records, metas = _hard(500, paraphrase_share=share)
        hits = total = 0
        for r, m in zip(records, metas, strict=True):
            if m.kind != "answerable":
                continue
            lo, hi = _sentence_at(r["context"], r["answers"]["answer_start"][0])
            sentence = set(_words(r["context"][lo:hi]))
            content = _content_words(r, m)
            hits += len(content & sentence)
            total += len(content)
        measured[share] = hits / total
    assert measured[0.0] > 0.3, measured
    assert measured[1.0] < 0.1, measured
    assert measured[0.0] > measured[0.5] > measured[1.0], measured


def _overlap_share(records, metas) -> float:
    """Answerable questions some non-answer sentence overlaps at least as much as the answer's."""
    hit = n = 0
    for r, m in zip(records, metas, strict=True):
        if m.kind != "answerable":
            continue
        n += 1
        question = {w for w in _words(r["question"]) if w not in STOPWORDS}
        answer = _sentence_at(r["context"], r["answers"]["answer_start"][0])
        overlaps = {s: len(question & set(_words(r["context"][s[0] : s[1]])))
                    for s in _sentence_spans(r["context"])}
        hit += any(o >= overlaps[answer] for s, o in overlaps.items() if s != answer)
    return hit / n


def test_overlap_distractors_match_the_question_as_well_as_the_answer():
    measured = {p: _overlap_share(*_hard(500, overlap_distractors=p)) for p in (0.0, 0.5, 1.0)}
    assert measured[0.0] < 0.35, measured
    assert measured[1.0] > 0.75, measured
    assert measured[0.0] < measured[0.5] < measured[1.0], measured
    records, metas = _hard(500, overlap_distractors=1.0)
    _check_well_posed(records, metas)
    # the distractors' wrong answers (a sister's birthplace, ...) are never named in a question
    assert all(m.given_value not in m.paragraph.decoys for m in metas)
    assert sum(len(m.paragraph.decoys) > 0 for m in metas) / len(metas) > 0.9


def _away_share(records, metas, *, adjacent: bool) -> float:
    """Answers whose sentence does not name the question's entity (``adjacent``: the entity is
    then named in the sentence before or after, which the pronoun refers to or from)."""
    away = n = 0
    for r, m in zip(records, metas, strict=True):
        if not r["answers"]["text"]:
            continue
        n += 1
        context = r["context"]
        spans = _sentence_spans(context)
        k = spans.index(_sentence_at(context, r["answers"]["answer_start"][0]))
        if m.named not in context[spans[k][0] : spans[k][1]]:
            away += 1
            if adjacent:
                near = [context[a:b] for a, b in spans[max(k - 1, 0) : k + 2]]
                assert any(m.named in s for s in near), (r["question"], context)
    return away / n


def test_two_sentence_share_moves_the_answer_away_from_the_named_entity():
    measured = {}
    for share in (0.0, 0.5, 1.0):
        records, metas = _hard(500, two_sentence_share=share)
        _check_well_posed(records, metas)
        measured[share] = _away_share(records, metas, adjacent=True)
    assert measured[0.0] == 0.0, measured
    assert measured[1.0] > 0.7, measured
    assert measured[0.0] < measured[0.5] < measured[1.0], measured


def test_bridge_share_asks_through_a_second_fact():
    measured = {}
    for share in (0.0, 0.5, 1.0):
        records, metas = _hard(600, bridge_share=share)
        _check_well_posed(records, metas)
        assert sum(not r["answers"]["text"] for r in records) == 200
        measured[share] = _away_share(records, metas, adjacent=False)
        for r, m in zip(records, metas, strict=True):
            if m.via:  # the inner fact names the bridge entity for the question's entity
                inner = [f for f in m.paragraph.facts_of(m.via[0]) if f.values[m.via[1]] == m.via[2]]
                assert len(inner) == 1 and m.given_value in inner[0].values.values()
                assert m.given_value not in r["question"]
    assert measured[0.0] == 0.0, measured
    assert measured[1.0] > 0.6, measured
    assert measured[0.0] < measured[0.5] < measured[1.0], measured


def _near_miss_share(records, metas) -> float:
    """Unanswerable questions with a sentence naming their entity next to a right-type span."""
    hit = n = 0
    for r, m in zip(records, metas, strict=True):
        if m.kind == "answerable":
            continue
        n += 1
        context = r["context"]
        for lo, hi in _sentence_spans(context):
            if m.given_value not in context[lo:hi]:
                continue
            if any(lo <= x.start < hi and x.type == m.answer_type and x.text != m.given_value
                   for x in m.paragraph.mentions):
                hit += 1
                break
    return hit / n


def test_near_miss_share_gives_unanswerable_questions_a_plausible_answer():
    measured = {}
    for share in (0.0, 0.5, 1.0):
        records, metas = _hard(900, near_miss_share=share)
        _check_well_posed(records, metas)
        assert sum(not r["answers"]["text"] for r in records) == round(900 / 3)
        measured[share] = _near_miss_share(records, metas)
    assert measured[0.0] < 0.25, measured
    assert measured[1.0] > 0.8, measured
    assert measured[0.0] < measured[0.5] < measured[1.0], measured


def test_min_context_words_makes_contexts_longer_than_one_window(small_tokenizer):
    from secondorder.data.squad import FeatureConfig, prepare_train_features

    fc = FeatureConfig(max_length=256, doc_stride=64, max_question_length=48)  # data=synthetic
    budget = fc.max_length - fc.max_question_length - 3
    measured = {}
    for words in (40, 250):
        records, metas = _hard(300, min_context_words=words)
        _check_well_posed(records, metas)
        batch = {k: [r[k] for r in records] for k in ("question", "context", "answers")}
        features = prepare_train_features(batch, small_tokenizer, fc, with_offsets=True)
        measured[words] = len(features["input_ids"]) / len(records)
        contexts = list(dict.fromkeys(r["context"] for r in records))
        # conservative: every word is at least one token
        longer = sum(len(c.split()) > budget for c in contexts) / len(contexts)
        if words == 40:
            assert longer == 0.0
        else:
            assert longer > 0.9, longer
            # answers sit in every part of the context: many only in a later window
            first_labelled: dict[int, int] = {}  # example -> its first window with the answer
            seen: dict[int, int] = {}
            for start, example in zip(features["start_positions"], features["example_index"],
                                      strict=True):
                k = seen[example] = seen.get(example, -1) + 1
                if start != 0:
                    first_labelled.setdefault(example, k)
            answerable = sum(bool(r["answers"]["text"]) for r in records)
            assert len(first_labelled) == answerable
            later = sum(k > 0 for k in first_labelled.values()) / answerable
            assert later > 0.2, later
    assert measured[40] == 1.0, measured
    assert measured[250] >= 1.8, measured


def test_hard_settings_keep_schema_determinism_and_fraction():
    knobs = {"paraphrase_share": 0.5, "overlap_distractors": 0.5, "two_sentence_share": 0.5,
             "near_miss_share": 0.5, "min_context_words": 150, "bridge_share": 0.5}
    records, metas = _hard(1200, seed=9, **knobs)
    _check_well_posed(records, metas)
    assert sum(not r["answers"]["text"] for r in records) == 400
    for r in records:
        assert list(r) == ["id", "title", "context", "question", "answers"]
        assert r["question"].endswith("?")
        for text in r["answers"]["text"]:
            assert 1 <= len(text.split()) <= 4 and text == text.strip()
    ids = [r["id"] for r in records]
    assert len(set(ids)) == len(ids)
    assert _hard(300, seed=9, **knobs)[0] == _hard(300, seed=9, **knobs)[0]
    assert _hard(300, seed=9, **knobs)[0] != _hard(300, seed=10, **knobs)[0]
    # every question still names an entity of its context
    for r, m in zip(records, metas, strict=True):
        assert m.named in r["question"]
        assert m.kind == "unanswerable-absent" or m.named in r["context"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"paraphrase_share": 1.5},
        {"overlap_distractors": -0.1},
        {"two_sentence_share": "0.5"},
        {"near_miss_share": True},
        {"min_context_words": 39},
        {"min_context_words": 100.0},
        {"min_context_words": 5000},
        {"bridge_share": 2},
    ],
)
def test_knob_validation(kwargs):
    with pytest.raises(ValueError):
        generate_squad_v2(10, seed=0, **kwargs)


def test_data_configs_reach_the_generator():
    """configs/data/synthetic*.yaml pass every knob through load_records."""
    from pathlib import Path

    from omegaconf import OmegaConf

    from secondorder.data.squad import load_records

    root = Path(__file__).resolve().parents[2] / "configs" / "data"
    knobs = ("facts_per_paragraph", "same_relation_share", "paraphrase_share",
             "overlap_distractors", "two_sentence_share", "near_miss_share", "min_context_words",
             "bridge_share")
    easy = OmegaConf.load(root / "synthetic_easy.yaml")
    assert all(easy[k] in (0, 0.0, 40) for k in knobs[2:])
    for name in ("synthetic.yaml", "synthetic_easy.yaml"):
        cfg = OmegaConf.load(root / name)
        cfg.num_train, cfg.num_validation = 40, 20
        loaded = load_records(cfg)
        kwargs = {k: cfg[k] for k in knobs}
        kwargs["facts_per_paragraph"] = tuple(kwargs["facts_per_paragraph"])
        expected = generate_squad_v2(20, seed=cfg.seed, split="validation", name_pool=cfg.name_pool,
                                     unanswerable_fraction=cfg.unanswerable_fraction,
                                     questions_per_paragraph=tuple(cfg.questions_per_paragraph),
                                     **kwargs)
        assert loaded["validation"].to_list() == expected
